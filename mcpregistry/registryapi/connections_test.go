package registryapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/internal/testenv"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

// fakeUpstreamAS is an authorization server that redeems any code.
func fakeUpstreamAS(t *testing.T) string {
	var n atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize",
				"token_endpoint": srv.URL + "/token", "code_challenge_methods_supported": []string{"S256"}})
		case "/token":
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "upstream-secret-" + strconv.FormatInt(n.Add(1), 10),
				"token_type": "Bearer", "expires_in": 3600, "refresh_token": "upstream-refresh", "scope": "mcp"})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// apiKeySubject is the subject the gateway's auth gives the caller with key.
func apiKeySubject(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "api-key:" + hex.EncodeToString(sum[:])[:12]
}

// connectVia stores a connection of the API key caller of group to server, through
// the same steps as the connect page.
func connectVia(t *testing.T, app *mcpregistry.App, group, server string) {
	t.Helper()
	ctx := context.Background()
	sub := apiKeySubject(restKeys[group])
	authURL, err := app.BeginConnect(ctx, server, "", sub, "https://gw.example/"+server+"/connect/callback", "nonce")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(authURL)
	f, err := app.TakeConnectFlow(server, u.Query().Get("state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := app.FinishConnect(ctx, f, "code", ""); err != nil {
		t.Fatal(err)
	}
}

func startConnectionsREST(t *testing.T, auth map[string]any) *restEnv {
	t.Helper()
	as := fakeUpstreamAS(t)
	oauth := map[string]any{"client_id": "gw", "client_secret": "gw-secret", "authorization_server": as, "scopes": []string{"mcp"}}
	port := testenv.FreePort(t)
	handler := map[string]any{"handler": "mcp_registry_api", "prefix": "/reg"}
	if auth != nil {
		handler["auth"] = auth
	}
	loadConfigApps(t, map[string]any{
		"mcp_registry": map[string]any{
			"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
			"runtime_upstreams": loopbackUpstreams,
			"health":            map[string]any{"disabled": true},
			"encryption_key":    strings.Repeat("ab", 32),
			"servers": []any{
				map[string]any{"name": "saas", "upstream": "http://127.0.0.1:3001/mcp", "backend_auth": map[string]any{"scheme": "oauth"}, "backend_oauth": oauth},
				map[string]any{"name": "tracker", "upstream": "http://127.0.0.1:3002/mcp", "backend_auth": map[string]any{"scheme": "oauth"}, "backend_oauth": oauth},
			},
		},
		"http": map[string]any{"servers": map[string]any{"rest": map[string]any{
			"listen": []string{"127.0.0.1:" + strconv.Itoa(port)},
			"routes": []any{map[string]any{"handle": []any{handler}}},
		}}},
	})
	t.Cleanup(func() { caddy.Stop() })
	return &restEnv{t: t, base: "http://127.0.0.1:" + strconv.Itoa(port) + "/reg/api", app: runningApp(t)}
}

func connectionServers(r restResp) []string {
	var out []string
	list, _ := r.body["connections"].([]any)
	for _, c := range list {
		out = append(out, c.(map[string]any)["server"].(string))
	}
	return out
}

// A user's own connections over REST: each caller sees and removes only their own;
// no token is ever returned; anonymous callers and callers without a user are
// refused; a query naming another user is not honoured.
func TestRESTConnections(t *testing.T) {
	e := startConnectionsREST(t, restAuth())
	connectVia(t, e.app, "viewers", "saas")
	connectVia(t, e.app, "viewers", "tracker")
	connectVia(t, e.app, "operators", "saas")

	e.do("GET", "/connections", "", nil).want(t, "no token", 401, "unauthorized")
	e.do("DELETE", "/connections/saas", "", nil).want(t, "no token, delete", 401, "unauthorized")

	mine := e.do("GET", "/connections", "viewers", nil).want(t, "viewer's list", 200)
	if got := connectionServers(mine); len(got) != 2 || got[0] != "saas" || got[1] != "tracker" {
		t.Fatalf("viewer's connections %v: %s", got, mine.raw)
	}
	for _, leak := range []string{"upstream-secret", "upstream-refresh", "sealed", "api-key:", `"sub"`} {
		if strings.Contains(mine.raw, leak) {
			t.Fatalf("the listing carries %q: %s", leak, mine.raw)
		}
	}
	c := mine.body["connections"].([]any)[0].(map[string]any)
	if c["scope"] != "mcp" || c["connected_at"] == nil || c["expires_at"] == nil {
		t.Fatalf("a connection lacks scope, since or expiry: %v", c)
	}
	// Another user's subject in the query is ignored: still the caller's own.
	other := "?issuer=&subject=" + url.QueryEscape(apiKeySubject(restKeys["viewers"]))
	if got := connectionServers(e.do("GET", "/connections"+other, "operators", nil).want(t, "operator naming the viewer", 200)); len(got) != 1 || got[0] != "saas" {
		t.Fatalf("operator's list with a foreign subject in the query: %v", got)
	}
	// The operator removes their own saas connection; the viewer's stays.
	e.do("DELETE", "/connections/saas"+other, "operators", nil).want(t, "operator removes own", 204)
	e.do("DELETE", "/connections/saas", "operators", nil).want(t, "removed twice", 404, "not_found")
	if got := connectionServers(e.do("GET", "/connections", "viewers", nil)); len(got) != 2 {
		t.Fatalf("the viewer lost connections to another caller's delete: %v", got)
	}
	if got := connectionServers(e.do("GET", "/connections", "operators", nil)); len(got) != 0 {
		t.Fatalf("operator after removing: %v", got)
	}
	if _, err := e.app.UpstreamAuthorization(context.Background(), e.app.Server("saas"), mcpregistry.UpstreamCaller{Subject: apiKeySubject(restKeys["operators"])}); err == nil {
		t.Fatal("a removed connection is still sent")
	}
	// Bad input.
	e.do("DELETE", "/connections/", "viewers", nil).want(t, "no server", 404, "not_found")
	e.do("DELETE", "/connections/"+strings.Repeat("x", 300), "viewers", nil).want(t, "long name", 400, "invalid_field")
	e.do("DELETE", "/connections/a%2Fb", "viewers", nil).want(t, "escaped slash", 404, "not_found")
	e.do("POST", "/connections", "viewers", nil).want(t, "POST", 405, "method_not_allowed")
	e.do("GET", "/connections/saas", "viewers", nil).want(t, "GET one", 405, "method_not_allowed")
}

// Without auth there is no user whose connections could be listed.
func TestRESTConnectionsAnonymous(t *testing.T) {
	e := startConnectionsREST(t, nil)
	e.do("GET", "/connections", "", nil).want(t, "anonymous", 403, "forbidden")
	e.do("DELETE", "/connections/saas", "", nil).want(t, "anonymous delete", 403, "forbidden")
}
