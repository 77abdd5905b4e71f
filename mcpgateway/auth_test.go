package mcpgateway

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/policy"
)

// recordingUpstream is an MCP server stand-in that records every request it receives.
// Under /json it answers POSTs with application/json, under /sse with an event stream.
type recordingUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path string
	header       http.Header
	body         string
}

func (u *recordingUpstream) requests() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.reqs...)
}

func (u *recordingUpstream) count() int { return len(u.requests()) }

func (u *recordingUpstream) last(t *testing.T) recorded {
	t.Helper()
	r := u.requests()
	if len(r) == 0 {
		t.Fatal("nothing reached the upstream")
	}
	return r[len(r)-1]
}

func resultFor(method string) string {
	switch method {
	case "tools/list":
		return `{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"add","inputSchema":{"type":"object"}},{"name":"search_repositories"},{"name":"delete_repo"}],"nextCursor":"c1"}`
	case "prompts/list":
		return `{"prompts":[{"name":"simple-prompt"},{"name":"complex-prompt"}]}`
	}
	return `{}`
}

func startRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, recorded{r.Method, r.URL.Path, r.Header.Clone(), string(body)})
		u.mu.Unlock()
		if r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") != "" {
			// Resuming a POST's stream: its answer is replayed here.
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, "id: 2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":8,\"result\":%s}\n\n", resultFor("tools/list"))
			return
		}
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var msgs []map[string]any
		batch := len(body) > 0 && body[0] == '['
		if batch {
			_ = json.Unmarshal(body, &msgs)
		} else {
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			msgs = append(msgs, m)
		}
		var out []string
		for _, m := range msgs {
			id, ok := m["id"]
			if !ok {
				continue
			}
			idj, _ := json.Marshal(id)
			method, _ := m["method"].(string)
			out = append(out, `{"jsonrpc":"2.0","id":`+string(idj)+`,"result":`+resultFor(method)+`}`)
		}
		if len(out) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		payload := out[0]
		if batch {
			payload = "[" + strings.Join(out, ",") + "]"
		}
		if strings.HasPrefix(r.URL.Path, "/sse") {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, "event: message\ndata: %s\n\n", payload)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/gz") {
			w.Header().Set("Content-Encoding", "gzip") // ignores Accept-Encoding: identity
		}
		_, _ = io.WriteString(w, payload)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// testIssuer serves a JWKS for one RSA key and signs tokens with it.
type testIssuer struct {
	url  string
	key  *rsa.PrivateKey
	kid  string
	down bool
}

var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func startIssuer(t *testing.T, down bool) *testIssuer {
	is := &testIssuer{key: testRSAKey(), kid: "k1", down: down}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.down {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		pk, err := jwk.FromRaw(is.key.Public())
		if err != nil {
			t.Error(err)
			return
		}
		_ = pk.Set(jwk.KeyIDKey, is.kid)
		_ = pk.Set(jwk.AlgorithmKey, jwa.RS256)
		set := jwk.NewSet()
		_ = set.AddKey(pk)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	is.url = srv.URL
	return is
}

func (is *testIssuer) token(t *testing.T, aud string, groups ...string) string {
	t.Helper()
	claims := map[string]any{
		"iss": is.url, "sub": "alice", "aud": aud, "client_id": "cli-1",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "groups": groups,
	}
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, is.kid)
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256, is.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

const (
	testResource = "https://mcp.example.com"
	testAPIKey   = "ci-key-0123456789"
	githubGUID   = "0f5c2e9a-1111-4c3b-9d2e-3a7b6c5d4e21"
)

// authCaddy loads an in-process Caddy whose gateway serves "everything" (JSON answers)
// and "github" (event-stream answers) from up, with the auth block given (nil: none).
func authCaddy(t *testing.T, up *recordingUpstream, auth map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	handler := map[string]any{"handler": "mcp_gateway"}
	if auth != nil {
		handler["auth"] = auth
	}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "caddy")},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage": map[string]any{"path": filepath.Join(dir, "registry.db")},
				// No background health checks: these upstreams count what they receive.
				"health":                 map[string]any{"disabled": true},
				"disable_builtin_server": true,
				"servers": []any{
					map[string]any{"name": "everything", "upstream": up.srv.URL + "/json/mcp"},
					map[string]any{"name": "github", "upstream": up.srv.URL + "/sse/mcp"},
					map[string]any{"name": "gz", "upstream": up.srv.URL + "/gz/mcp"},
				},
			},
			"http": map[string]any{"servers": map[string]any{"gw": map[string]any{
				"listen": []string{listen},
				"routes": []any{map[string]any{"handle": []any{
					map[string]any{"handler": "headers", "response": map[string]any{"deferred": true, "set": map[string]any{
						"X-Sub":    []string{"{http.mcp.auth.subject}"},
						"X-Groups": []string{"{http.mcp.auth.groups}"},
						"X-Client": []string{"{http.mcp.auth.client_id}"},
					}}},
					handler,
				}}},
				"automatic_https": map[string]any{"disable": true},
			}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(b, true); err != nil {
		t.Fatalf("loading Caddy: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return "http://" + listen
}

func testAuthConfig(t *testing.T, good, down *testIssuer) map[string]any {
	t.Setenv("MCP_TEST_SCOPES_FILE", filepath.Join("..", "testdata", "policy", "scopes.yml"))
	sum := sha256.Sum256([]byte(testAPIKey))
	return map[string]any{
		"issuers": []any{
			map[string]any{"issuer": good.url, "jwks_url": good.url + "/jwks"},
			map[string]any{"issuer": down.url, "jwks_url": down.url + "/jwks"},
		},
		"resource":    testResource,
		"policy_file": "{env.MCP_TEST_SCOPES_FILE}",
		"api_keys":    []any{map[string]any{"sha256": hex.EncodeToString(sum[:]), "groups": []string{"readers"}}},
	}
}

type rpcResult struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, url string, h http.Header, body string) rpcResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rpcResult{resp.StatusCode, resp.Header, string(b)}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func call(id int, method, name string) string {
	params := `{}`
	switch method {
	case "tools/call", "prompts/get":
		params = `{"name":` + strconvQuote(name) + `}`
	case "resources/read":
		params = `{"uri":` + strconvQuote(name) + `}`
	}
	if strings.HasPrefix(method, "notifications/") {
		return `{"jsonrpc":"2.0","method":"` + method + `","params":{}}`
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestAuthGateway(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	up := startRecordingUpstream(t)
	base := authCaddy(t, up, testAuthConfig(t, good, down))
	everything, github := base+"/everything/mcp", base+"/github/mcp"
	audE, audG := testResource+"/everything/mcp", testResource+"/github/mcp"
	prmE := `resource_metadata="` + testResource + `/.well-known/oauth-protected-resource/everything/mcp"`

	// rejected checks a rejection: status, exact WWW-Authenticate, a JSON-RPC error body,
	// and that nothing reached the upstream.
	rejected := func(t *testing.T, res rpcResult, before, status int, wwwAuth string, code int) {
		t.Helper()
		if res.status != status {
			t.Fatalf("status %d, want %d (%s)", res.status, status, res.body)
		}
		if got := res.header.Get("WWW-Authenticate"); got != wwwAuth {
			t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, wwwAuth)
		}
		var m struct {
			JSONRPC string `json:"jsonrpc"`
			Error   struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(res.body), &m); err != nil || m.JSONRPC != "2.0" || m.Error.Code != code {
			t.Errorf("body %s: want a JSON-RPC error %d", res.body, code)
		}
		if n := up.count(); n != before {
			t.Errorf("the upstream received %d request(s) for a rejected call", n-before)
		}
	}

	t.Run("401 no token", func(t *testing.T) {
		n := up.count()
		res := post(t, everything, nil, call(1, "initialize", ""))
		rejected(t, res, n, 401, `Bearer `+prmE+`, scope="servers/all servers/readonly"`, codeUnauthorized)
		// A token in the query string is never looked at.
		res = post(t, everything+"?access_token="+good.token(t, audE, "readers"), nil, call(1, "initialize", ""))
		rejected(t, res, n, 401, `Bearer `+prmE+`, scope="servers/all servers/readonly"`, codeUnauthorized)
	})
	t.Run("401 invalid token", func(t *testing.T) {
		n := up.count()
		for name, tc := range map[string]struct{ tok, reason string }{
			"garbage":        {"abc.def.ghi", "malformed token"},
			"wrong audience": {good.token(t, "https://other.example.com/mcp", "readers"), "wrong audience"},
		} {
			res := post(t, everything, bearer(tc.tok), call(1, "initialize", ""))
			t.Log(name)
			rejected(t, res, n, 401, `Bearer error="invalid_token", error_description="`+tc.reason+`", `+prmE, codeUnauthorized)
		}
		res := post(t, everything, http.Header{"X-Api-Key": {"wrong"}}, call(1, "initialize", ""))
		rejected(t, res, n, 401, `Bearer error="invalid_token", error_description="malformed token", `+prmE, codeUnauthorized)
	})
	t.Run("503 keys unavailable", func(t *testing.T) {
		n := up.count()
		res := post(t, everything, bearer(down.token(t, audE, "readers")), call(1, "initialize", ""))
		rejected(t, res, n, 503, "", codeAuthUnavailable)
		if res.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})

	readers := bearer(good.token(t, audE, "readers"))
	admins := bearer(good.token(t, audE, "platform-admins"))
	ghUser := bearer(good.token(t, audG, githubGUID))
	nobody := bearer(good.token(t, audE, "unknown-group"))
	apiKey := http.Header{"X-Api-Key": {testAPIKey}}
	apiKeyBearer := bearer(testAPIKey)

	type tcase struct {
		name   string
		url    string
		h      http.Header
		body   string
		allow  bool
		scopes string // scope="…" of the 403
	}
	cases := []tcase{
		{"readers initialize", everything, readers, call(1, "initialize", ""), true, ""},
		{"readers notifications/initialized", everything, readers, call(0, "notifications/initialized", ""), true, ""},
		{"readers notifications/cancelled", everything, readers, call(0, "notifications/cancelled", ""), true, ""},
		{"readers tools/call echo", everything, readers, call(2, "tools/call", "echo"), true, ""},
		{"readers tools/call add", everything, readers, call(2, "tools/call", "add"), false, "servers/all"},
		{"readers prompts/get simple", everything, readers, call(3, "prompts/get", "simple-prompt"), true, ""},
		{"readers prompts/get complex", everything, readers, call(3, "prompts/get", "complex-prompt"), false, ""},
		{"readers resources/read", everything, readers, call(4, "resources/read", "file:///x"), true, ""},
		{"readers completion/complete", everything, readers, call(5, "completion/complete", ""), false, ""},
		{"readers on github", github, bearer(good.token(t, audG, "readers")), call(1, "initialize", ""), false, "servers/all servers/github-read"},
		{"readers batch one denied", everything, readers, "[" + call(1, "tools/call", "echo") + "," + call(2, "tools/call", "add") + "]", false, "servers/all"},
		{"readers batch with response", everything, readers, `[` + call(1, "ping", "") + `,{"jsonrpc":"2.0","id":"s1","result":{}}]`, true, ""},
		{"admins any tool", everything, admins, call(2, "tools/call", "anything"), true, ""},
		{"admins prompts/list not granted", everything, admins, call(2, "prompts/list", ""), false, "servers/readonly"},
		{"github user allowed tool", github, ghUser, call(2, "tools/call", "search_repositories"), true, ""},
		{"github user denied tool", github, ghUser, call(2, "tools/call", "delete_repo"), false, "servers/all"},
		{"github user on everything", everything, bearer(good.token(t, audE, githubGUID)), call(1, "initialize", ""), false, "servers/all servers/readonly"},
		{"no group", everything, nobody, call(1, "initialize", ""), false, "servers/all servers/readonly"},
		{"api key header", everything, apiKey, call(2, "tools/call", "echo"), true, ""},
		{"api key bearer", everything, apiKeyBearer, call(2, "tools/call", "echo"), true, ""},
		{"api key denied tool", everything, apiKey, call(2, "tools/call", "add"), false, "servers/all"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := up.count()
			res := post(t, tc.url, tc.h, tc.body)
			if tc.allow {
				if res.status/100 != 2 {
					t.Fatalf("status %d, want 2xx: %s", res.status, res.body)
				}
				got := up.last(t)
				if up.count() != n+1 || got.body != tc.body {
					t.Fatalf("upstream got %q, want %q", got.body, tc.body)
				}
				// No token passthrough.
				if got.header.Get("Authorization") != "" || got.header.Get("X-Api-Key") != "" {
					t.Errorf("credentials reached the upstream: %v", got.header)
				}
				return
			}
			prm := strings.Replace(prmE, "/everything/", "/"+strings.TrimSuffix(strings.TrimPrefix(tc.url, base+"/"), "/mcp")+"/", 1)
			rejected(t, res, n, 403, `Bearer error="insufficient_scope", scope="`+tc.scopes+`", `+prm, codeInsufficientScope)
			if !strings.Contains(res.body, "is not allowed") {
				t.Errorf("403 body %s does not name the call", res.body)
			}
		})
	}

	t.Run("GET stream needs access to the server", func(t *testing.T) {
		n := up.count()
		req, _ := http.NewRequest(http.MethodGet, github, nil)
		req.Header = bearer(good.token(t, audG, "readers"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 || up.count() != n {
			t.Errorf("GET by a caller without access: %d, upstream requests %d", resp.StatusCode, up.count()-n)
		}
		req, _ = http.NewRequest(http.MethodGet, github, nil)
		req.Header = ghUser.Clone()
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || up.count() != n+1 || up.last(t).header.Get("Authorization") != "" {
			t.Errorf("GET by an allowed caller: %d (want the upstream's 405, without the token)", resp.StatusCode)
		}
	})

	t.Run("tools/list filtered JSON", func(t *testing.T) {
		res := post(t, everything, readers, call(7, "tools/list", ""))
		want := `{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}],"nextCursor":"c1"}}`
		if res.status != 200 || res.body != want {
			t.Fatalf("%d %s\nwant %s", res.status, res.body, want)
		}
		if res.header.Get("Content-Length") != fmt.Sprint(len(want)) {
			t.Errorf("Content-Length %q", res.header.Get("Content-Length"))
		}
		if got := up.last(t).header.Get("Accept-Encoding"); got != "identity" {
			t.Errorf("Accept-Encoding upstream %q, want identity", got)
		}
		// A batch holding a list call, and prompts/list.
		res = post(t, everything, readers, "["+call(1, "prompts/list", "")+","+call(2, "tools/list", "")+"]")
		if !strings.Contains(res.body, `"prompts":[{"name":"simple-prompt"}]`) || strings.Contains(res.body, `"add"`) {
			t.Errorf("batch: %s", res.body)
		}
		// Admins see everything.
		res = post(t, everything, admins, call(7, "tools/list", ""))
		if !strings.Contains(res.body, `"delete_repo"`) {
			t.Errorf("admins: %s", res.body)
		}
	})

	t.Run("tools/list filtered SSE", func(t *testing.T) {
		res := post(t, github, ghUser, call(8, "tools/list", ""))
		want := "event: message\ndata: " + `{"jsonrpc":"2.0","id":8,"result":{"tools":[{"name":"search_repositories"}],"nextCursor":"c1"}}` + "\n\n"
		if res.status != 200 || res.body != want {
			t.Fatalf("%d %q\nwant %q", res.status, res.body, want)
		}
	})

	t.Run("resumed GET stream filtered", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, github, nil)
		req.Header = ghUser.Clone()
		req.Header.Set("Last-Event-ID", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "id: 2\nevent: message\ndata: " + `{"jsonrpc":"2.0","id":8,"result":{"tools":[{"name":"search_repositories"}],"nextCursor":"c1"}}` + "\n\n"
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("%d %q\nwant %q", resp.StatusCode, b, want)
		}
	})

	t.Run("placeholders", func(t *testing.T) {
		res := post(t, everything, bearer(good.token(t, audE, "readers", "ci-jobs")), call(1, "ping", ""))
		if res.status != 200 {
			t.Fatalf("ping: %d %s", res.status, res.body)
		}
		if res.header.Get("X-Sub") != "alice" || res.header.Get("X-Groups") != "readers,ci-jobs" || res.header.Get("X-Client") != "cli-1" {
			t.Errorf("placeholders: %v", res.header)
		}
	})

	t.Run("list filter fails closed", func(t *testing.T) {
		// The upstream compresses despite Accept-Encoding: identity: nothing of it passes.
		res := post(t, base+"/gz/mcp", admins, call(9, "tools/list", ""))
		if res.status != 502 || !strings.Contains(res.body, fmt.Sprint(codeFilterFailed)) || strings.Contains(res.body, "echo") {
			t.Errorf("%d %v %s", res.status, res.header, res.body)
		}
	})
}

// Without an auth block the gateway behaves as before: no token needed, headers
// (including Authorization) pass through, list responses are not touched.
func TestAuthAbsent(t *testing.T) {
	up := startRecordingUpstream(t)
	base := authCaddy(t, up, nil)
	res := post(t, base+"/everything/mcp", http.Header{"Authorization": {"Bearer upstream-own"}}, call(1, "tools/list", ""))
	if res.status != 200 || !strings.Contains(res.body, `"delete_repo"`) {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if got := up.last(t).header.Get("Authorization"); got != "Bearer upstream-own" {
		t.Errorf("Authorization upstream %q", got)
	}
}

// The legacy /sse stream carries list responses: with auth on it is filtered too.
func TestAuthLegacySSEFiltered(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	events := make(chan string, 4)
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("token reached the legacy upstream")
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "event: endpoint\ndata: /messages?sessionId=1\n\n")
		w.(http.Flusher).Flush()
		for ev := range events {
			fmt.Fprint(w, ev)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(legacy.Close)
	t.Cleanup(func() { close(events) })
	up := startRecordingUpstream(t)
	auth := testAuthConfig(t, good, down)
	dir := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	listen := ln.Addr().String()
	ln.Close()
	cfg, _ := json.Marshal(map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "caddy")},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage": map[string]any{"path": filepath.Join(dir, "registry.db")},
				// No background health checks: these upstreams count what they receive.
				"health":                 map[string]any{"disabled": true},
				"disable_builtin_server": true,
				"servers": []any{
					map[string]any{"name": "everything", "upstream": legacy.URL + "/sse", "transport": "sse"},
					map[string]any{"name": "x", "upstream": up.srv.URL + "/json/mcp"},
				},
			},
			"http": map[string]any{"servers": map[string]any{"gw": map[string]any{
				"listen":          []string{listen},
				"routes":          []any{map[string]any{"handle": []any{map[string]any{"handler": "mcp_gateway", "auth": auth}}}},
				"automatic_https": map[string]any{"disable": true},
			}}},
		},
	})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/everything/sse", nil)
	req.Header = bearer(good.token(t, testResource+"/everything/sse", "readers"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if got, want := readEvent(t, br), "event: endpoint\ndata: /everything/message?sessionId=1\n\n"; got != want {
		t.Fatalf("endpoint event %q, want %q", got, want)
	}
	events <- "event: message\ndata: " + `{"jsonrpc":"2.0","id":3,"result":` + resultFor("tools/list") + `}` + "\n\n"
	want := "event: message\ndata: " + `{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}],"nextCursor":"c1"}}` + "\n\n"
	if got := readEvent(t, br); got != want {
		t.Fatalf("list event %q\nwant %q", got, want)
	}
}

func TestAuthConfigErrors(t *testing.T) {
	for name, a := range map[string]*AuthConfig{
		"nothing":             {},
		"no audience":         {Issuers: []AuthIssuer{{Issuer: "https://idp.example.com", JWKSURL: "https://idp.example.com/jwks"}}},
		"bad api key":         {APIKeys: []AuthAPIKey{{SHA256: "abc", Groups: []string{"g"}}}},
		"both policies":       {PolicyFile: "x.yml", Policy: &policy.Config{}, APIKeys: []AuthAPIKey{{SHA256: strings.Repeat("a", 64)}}},
		"relative resource":   {Resource: "mcp.example.com", APIKeys: []AuthAPIKey{{SHA256: strings.Repeat("a", 64)}}},
		"missing policy file": {PolicyFile: "/nonexistent/scopes.yml", APIKeys: []AuthAPIKey{{SHA256: strings.Repeat("a", 64)}}},
	} {
		if _, err := a.provision(t.Context(), zap.NewNop(), "", nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for _, in := range []string{
		"mcp_gateway {\n auth {\n bogus\n }\n}",
		"mcp_gateway {\n auth {\n api_key abc\n }\n}",
		"mcp_gateway {\n auth {\n policy {\n scope s {\n rule * {\n verbs x\n }\n }\n }\n }\n}",
		"mcp_gateway {\n auth {\n issuer https://a {\n nope x\n }\n }\n}",
		"mcp_gateway {\n auth {\n resource\n }\n}",
	} {
		if err := new(Gateway).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("no error for %q", in)
		}
	}
}
