package mcpgateway

import (
	"net/http"
	"strings"
	"testing"
)

// TestTokenAudiencePerServer (RFC 8707): a token the client obtained for one server's
// MCP URL is accepted there only; a token for the gateway's base resource everywhere.
// audience_scope any accepts a server's token on every server.
func TestTokenAudiencePerServer(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	up := startRecordingUpstream(t)
	cfg := testAuthConfig(t, good, down)
	base := authCaddy(t, up, cfg)
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	forGithub := bearer(good.token(t, testResource+"/github/mcp", "platform-admins"))
	forAll := bearer(good.token(t, testResource, "platform-admins"))

	before := up.count()
	res := post(t, base+"/everything/mcp", forGithub, ping)
	if res.status != http.StatusUnauthorized || !strings.Contains(res.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("github's token on everything: %d %q %s", res.status, res.header.Get("WWW-Authenticate"), res.body)
	}
	if up.count() != before {
		t.Error("a token for another server reached the upstream")
	}
	for _, tc := range []struct {
		url string
		h   http.Header
	}{{base + "/github/mcp", forGithub}, {base + "/github/mcp", forAll}, {base + "/everything/mcp", forAll}} {
		if res := post(t, tc.url, tc.h, ping); res.status != 200 {
			t.Errorf("%s: %d %s", tc.url, res.status, res.body)
		}
	}
	// The same applies to the GET stream.
	req, _ := http.NewRequest(http.MethodGet, base+"/everything/mcp", nil)
	req.Header = forGithub
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET with github's token on everything: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}

	cfg["audience_scope"] = "any"
	base = authCaddy(t, startRecordingUpstream(t), cfg)
	if res := post(t, base+"/everything/mcp", forGithub, ping); res.status != 200 {
		t.Errorf("audience_scope any: github's token on everything: %d %s", res.status, res.body)
	}
}
