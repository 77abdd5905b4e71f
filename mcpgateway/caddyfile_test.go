package mcpgateway

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	g := new(Gateway)
	err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`mcp_gateway {
		prefix /servers
		max_body_size 1MiB
		allowed_origins https://a.example.com http://localhost:6274
		allowed_hosts mcp.example.com
		dial_timeout 2s
		response_header_timeout 1m
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if g.Prefix != "/servers" || g.MaxBodySize != 1<<20 || len(g.AllowedOrigins) != 2 || g.AllowedHosts[0] != "mcp.example.com" ||
		g.DialTimeout != caddy.Duration(2*time.Second) || g.ResponseHeaderTimeout != caddy.Duration(time.Minute) {
		t.Fatalf("parsed %+v", g)
	}
	for _, bad := range []string{
		"mcp_gateway /x",
		"mcp_gateway {\n bogus\n}",
		"mcp_gateway {\n max_body_size lots\n}",
		"mcp_gateway {\n max_body_size 0\n}",
		"mcp_gateway {\n dial_timeout\n}",
		"mcp_gateway {\n dial_timeout soon\n}",
		"mcp_gateway {\n prefix /a /b\n}",
		"mcp_gateway {\n allowed_origins\n}",
	} {
		if err := new(Gateway).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if err := (&Gateway{AllowedOrigins: []string{"example.com"}}).Validate(); err == nil {
		t.Error("an origin without a scheme must fail validation")
	}
}
