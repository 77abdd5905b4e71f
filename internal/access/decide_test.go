package access

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestHousekeeping(t *testing.T) {
	for method, want := range map[string]bool{
		"initialize": true, "ping": true, "logging/setLevel": true, "server/discover": true,
		"notifications/initialized": true, "notifications/cancelled": true,
		"tools/call": false, "tools/list": false, "resources/subscribe": false,
		"completion/complete": false, "subscriptions/listen": false, "notifications": false,
	} {
		if got := Housekeeping(method); got != want {
			t.Errorf("Housekeeping(%q) = %v", method, got)
		}
	}
}

func TestCaddyfileStrictAndAudienceScope(t *testing.T) {
	d := caddyfile.NewTestDispenser(`auth {
		resource https://mcp.example.com
		strict
		audience_scope any
		api_key 0000000000000000000000000000000000000000000000000000000000000000 g
	}`)
	d.Next()
	cfg, err := UnmarshalCaddyfile(d)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Strict || cfg.AudienceScope != AudienceAny {
		t.Fatalf("strict %v, audience_scope %q", cfg.Strict, cfg.AudienceScope)
	}
	for _, bad := range []string{"auth {\n strict yes\n}", "auth {\n audience_scope everywhere\n}"} {
		d := caddyfile.NewTestDispenser(bad)
		d.Next()
		if _, err := UnmarshalCaddyfile(d); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
