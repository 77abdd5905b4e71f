package published

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	var s Site
	var own string
	err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`mcp_ui {
		prefix /dash
		public_url https://mcp.example.com
		gateway_prefix /servers
		sign_in https://mcp.example.com/oauth
		auth {
			resource https://mcp.example.com
		}
	}`), "mcp_ui", map[string]*string{"sign_in": &own})
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix != "/dash" || s.PublicURL != "https://mcp.example.com" || s.GatewayPrefix != "/servers" || s.Auth == nil || own != "https://mcp.example.com/oauth" {
		t.Errorf("%+v %q", s, own)
	}
	for input, want := range map[string]string{
		"mcp_ui x":                          "wrong argument count",
		"mcp_ui {\nbogus 1\n}":              `unknown mcp_ui option "bogus"`,
		"mcp_ui {\nprefix /a\nprefix /b\n}": "prefix given twice",
		"mcp_ui {\nsign_in a\nsign_in b\n}": "sign_in given twice",
		"mcp_ui {\nsign_in a b\n}":          "wrong argument count",
		"mcp_ui {\npublic_url\n}":           "wrong argument count",
		"mcp_ui {\nauth {\n}\nauth {\n}\n}": "auth given twice",
		"mcp_ui {\ntoken_env X\n}":          `unknown mcp_ui option "token_env"`,
	} {
		var s Site
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input), "mcp_ui", map[string]*string{"sign_in": new(string)})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", input, err, want)
		}
	}
}

func TestCleanPrefix(t *testing.T) {
	for in, want := range map[string]string{"": "/ui", "/": "", "dash": "/dash", "/dash/": "/dash"} {
		if got := cleanPrefix(in, "/ui"); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
