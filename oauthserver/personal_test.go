package oauthserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/caddymcp/caddymcp/mcpgateway"
)

// Personal gateway tokens, end to end in one Caddy: minted on the admin endpoint for
// a user, accepted by the gateway with that user's groups deciding per tool, never
// listed with their secret, and refused on the very next request once revoked, once
// their user is removed, or when longer-lived than the server honours.
func TestPersonalTokens(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(up.Close)
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	admin, site := free(), free()
	base := "http://" + site
	cfg, _ := json.Marshal(map[string]any{
		"admin":   map[string]any{"listen": admin, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage":        map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
				"health":         map[string]any{"disabled": true},
				"encryption_key": strings.Repeat("ef", 32),
				"servers":        []any{map[string]any{"name": "up", "upstream": up.URL + "/mcp"}},
			},
			"http": map[string]any{"servers": map[string]any{"site": map[string]any{
				"listen": []string{site},
				"routes": []any{
					map[string]any{
						"match": []any{map[string]any{"path": []string{"/oauth/*"}}},
						"handle": []any{map[string]any{"handler": "mcp_oauth_server", "issuer": base + "/oauth", "resource": base,
							"personal_token_max_lifetime": "2h"}},
					},
					map[string]any{"handle": []any{map[string]any{"handler": "mcp_gateway", "auth": map[string]any{
						"resource": base,
						"policy": map[string]any{
							"group_mappings": map[string]any{"eng": []string{"eng"}},
							"scopes": map[string]any{"eng": []any{map[string]any{
								"server": "up", "methods": []string{"tools/call"}, "tools": []string{"echo"},
							}}},
						},
					}}}},
				},
			}}},
		},
	})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		off, _ := json.Marshal(map[string]any{"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}}})
		caddy.Load(off, true)
		caddy.Stop()
	})
	client := &http.Client{Timeout: 10 * time.Second}
	req := func(method, url, body string, h http.Header) (int, string) {
		t.Helper()
		r, _ := http.NewRequest(method, url, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		for k, v := range h {
			r.Header[k] = v
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	mint := func(user, lifetime string) (id, token string) {
		t.Helper()
		code, body := req("POST", "http://"+admin+"/mcp_oauth/tokens", fmt.Sprintf(`{"user":%q,"name":"test","lifetime":%q}`, user, lifetime), nil)
		var v tokenView
		if code != 201 || json.Unmarshal([]byte(body), &v) != nil || !strings.HasPrefix(v.Token, personalTokenPrefix) {
			t.Fatalf("mint for %s: %d %s", user, code, body)
		}
		return v.ID, v.Token
	}
	call := func(token, tool string) int {
		t.Helper()
		h := http.Header{"Authorization": {"Bearer " + token}, "Accept": {"application/json, text/event-stream"}}
		code, _ := req("POST", base+"/up/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`","arguments":{}}}`, h)
		return code
	}

	if code, body := req("POST", "http://"+admin+"/mcp_oauth/users", `{"name":"alice","password":"correct horse battery","groups":["eng"]}`, nil); code != 201 {
		t.Fatalf("add alice: %d %s", code, body)
	}
	id, tok := mint("alice", "1h")
	if code := call(tok, "echo"); code != 200 {
		t.Fatalf("echo with alice's personal token: %d", code)
	}
	if code := call(tok, "delete_everything"); code != 403 {
		t.Errorf("a tool alice's groups do not grant: %d", code)
	}
	if code, body := req("GET", "http://"+admin+"/mcp_oauth/tokens?user=alice", "", nil); code != 200 || strings.Contains(body, tok) ||
		strings.Contains(body, strings.Split(tok, "_")[2]) || !strings.Contains(body, id) {
		t.Errorf("list: %d %s", code, body)
	}
	n := hits.Load()
	for name, bad := range map[string]string{
		"forged secret": strings.TrimSuffix(tok, tok[len(tok)-4:]) + "AAAA",
		"unknown id":    personalTokenPrefix + "NOSUCHID_" + strings.Repeat("A", 52),
		"no secret":     personalTokenPrefix + id,
		"longer than the server honours": func() string {
			_, long := mint("alice", "3h")
			return long
		}(),
	} {
		if code := call(bad, "echo"); code != 401 {
			t.Errorf("%s: %d", name, code)
		}
	}
	if code, _ := req("DELETE", "http://"+admin+"/mcp_oauth/tokens/"+id, "", nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if code := call(tok, "echo"); code != 401 {
		t.Errorf("a revoked token, on the next request: %d", code)
	}
	_, tok2 := mint("alice", "1h")
	if code, _ := req("DELETE", "http://"+admin+"/mcp_oauth/users/alice", "", nil); code != 204 {
		t.Fatal("remove alice")
	}
	if code := call(tok2, "echo"); code != 401 {
		t.Errorf("a removed user's token: %d", code)
	}
	if hits.Load() != n {
		t.Errorf("refused tokens reached the upstream (%d requests)", hits.Load()-n)
	}
	for _, bad := range []string{`{"user":"bob","lifetime":"9000h"}`, `{"user":"../x"}`, `{"user":"bob","lifetime":"-1h"}`, `{"user":"bob","extra":1}`} {
		if code, body := req("POST", "http://"+admin+"/mcp_oauth/tokens", bad, nil); code != 400 {
			t.Errorf("mint %s: %d %s", bad, code, body)
		}
	}
	if code, body := req("POST", "http://"+admin+"/mcp_oauth/tokens", `{"user":"bob","name":"`+strings.Repeat("n", 20<<10)+`"}`, nil); code != 413 {
		t.Errorf("mint with an oversized body: %d %s", code, body)
	}
	if code, body := req("POST", "http://"+admin+"/mcp_oauth/tokens", `{"user":"bob"}{"user":"mallory"}`, nil); code != 400 {
		t.Errorf("mint with two objects: %d %s", code, body)
	}
	if code, _ := req("DELETE", "http://"+admin+"/mcp_oauth/tokens/"+id, "", nil); code != 404 {
		t.Errorf("revoking twice: %d", code)
	}
}
