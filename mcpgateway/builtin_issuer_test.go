package mcpgateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"

	_ "github.com/caddymcp/caddymcp/oauthserver"
)

// The built-in authorization server of the same config is trusted with no issuer in
// the gateway's auth block: a machine token it issues for the gateway (or for one
// server's MCP URL) is accepted there, with the client's groups deciding per tool; a
// token for another server's URL is not; no token reaches the upstream.
func TestGatewayTrustsBuiltinIssuer(t *testing.T) {
	var hits atomic.Int64
	var sawAuth atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		sawAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	}))
	t.Cleanup(up.Close)
	base := startBuiltinIssuerGateway(t, up.URL+"/mcp", []string{"everything", "other"}, []string{"ci-bot"})

	token := func(resource string) string {
		t.Helper()
		form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("ci-bot", "machine-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != 200 || tr.AccessToken == "" {
			t.Fatalf("token for %s: %d %v", resource, resp.StatusCode, err)
		}
		return tr.AccessToken
	}
	callAs := func(tok, server, tool string) rpcResult {
		return post(t, base+"/"+server+"/mcp", bearer(tok), call(1, "tools/call", tool))
	}

	gw := token(base)
	if res := callAs(gw, "everything", "echo"); res.status != 200 {
		t.Fatalf("gateway-wide token on everything: %d %s", res.status, res.body)
	}
	if got, _ := sawAuth.Load().(string); got != "" {
		t.Errorf("the upstream received Authorization %q", got)
	}
	if res := callAs(gw, "everything", "add"); res.status != 403 {
		t.Errorf("a tool the client's groups do not grant: %d %s", res.status, res.body)
	}
	one := token(base + "/everything/mcp")
	if res := callAs(one, "everything", "echo"); res.status != 200 {
		t.Errorf("token for everything's URL on everything: %d %s", res.status, res.body)
	}
	n := hits.Load()
	if res := callAs(one, "other", "echo"); res.status != 401 || hits.Load() != n {
		t.Errorf("token for everything's URL on other: %d %s", res.status, res.body)
	}
}

// A built-in server's access token revoked at its revocation endpoint (RFC 7009) is
// refused by the gateway on its next use, although the gateway had it cached; a
// token of another client, or revoked by someone else's client, keeps working.
func TestGatewayHonoursBuiltinRevocation(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	}))
	t.Cleanup(up.Close)
	base := startBuiltinIssuerGateway(t, up.URL+"/mcp", []string{"everything"}, []string{"ci-bot", "other-bot"})
	form := func(client string, v url.Values, endpoint string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth/"+endpoint, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client, "machine-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&tr)
		return resp.StatusCode, tr.AccessToken
	}
	_, mine := form("ci-bot", url.Values{"grant_type": {"client_credentials"}}, "token")
	_, theirs := form("other-bot", url.Values{"grant_type": {"client_credentials"}}, "token")
	echo := func(tok string) int {
		return post(t, base+"/everything/mcp", bearer(tok), call(1, "tools/call", "echo")).status
	}
	if echo(mine) != 200 || echo(theirs) != 200 {
		t.Fatal("fresh tokens refused")
	}
	// other-bot cannot revoke ci-bot's token (RFC 7009: 200, left alone).
	if st, _ := form("other-bot", url.Values{"token": {mine}}, "revoke"); st != 200 || echo(mine) != 200 {
		t.Fatalf("revocation by another client: %d, then the token got %d", st, echo(mine))
	}
	if st, _ := form("ci-bot", url.Values{"token": {mine}, "token_type_hint": {"access_token"}}, "revoke"); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	res := post(t, base+"/everything/mcp", bearer(mine), call(1, "tools/call", "echo"))
	if res.status != 401 || !strings.Contains(res.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("revoked token: %d %q, want 401 invalid_token", res.status, res.header.Get("WWW-Authenticate"))
	}
	if echo(theirs) != 200 {
		t.Error("another client's token stopped working")
	}
}

// startBuiltinIssuerGateway runs a config with the built-in authorization server at
// /oauth (confidential machine clients with secret "machine-secret" and group bots),
// servers routed to upstream, and a gateway whose policy lets bots call echo anywhere.
// It returns the base URL.
func startBuiltinIssuerGateway(t *testing.T, upstream string, servers, clients []string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("machine-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCaddy{Registry: map[string]any{"encryption_key": strings.Repeat("cd", 32)}}
	for _, name := range servers {
		c.Servers = append(c.Servers, map[string]any{"name": name, "upstream": upstream})
	}
	var cl []any
	for _, id := range clients {
		cl = append(cl, map[string]any{"id": id, "secret": string(hash), "groups": []string{"bots"}})
	}
	c.Listen = freeAddr(t)
	base := "http://" + c.Listen
	c.Routes = []any{map[string]any{
		"match": []any{map[string]any{"path": []string{"/oauth/*", "/.well-known/*"}}},
		"handle": []any{map[string]any{
			"handler": "mcp_oauth_server", "issuer": base + "/oauth", "resource": base, "clients": cl,
		}},
	}}
	c.Gateway = map[string]any{"auth": map[string]any{
		"resource": base,
		"policy": map[string]any{
			"group_mappings": map[string]any{"bots": []string{"bots"}},
			"scopes": map[string]any{"bots": []any{map[string]any{
				"server": "*", "methods": []string{"tools/call"}, "tools": []string{"echo"},
			}}},
		},
	}}
	c.start(t)
	return base
}
