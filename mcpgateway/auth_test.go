package mcpgateway

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	down atomic.Bool
}

var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func startIssuer(t *testing.T, down bool) *testIssuer {
	return startIssuerWithKey(t, testRSAKey(), down)
}

// startIssuerWithKey is startIssuer with the given signing key.
func startIssuerWithKey(t *testing.T, key *rsa.PrivateKey, down bool) *testIssuer {
	is := &testIssuer{key: key, kid: "k1"}
	is.down.Store(down)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
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

// authCaddy loads an in-process Caddy whose gateway serves "everything" (JSON answers),
// "github" (event-stream answers) and "gz" from up, with the auth block given (nil:
// none) and the auth placeholders echoed in response headers. Each opt may change the
// config before it is loaded.
func authCaddy(t *testing.T, up *recordingUpstream, auth map[string]any, opts ...func(*testCaddy)) string {
	t.Helper()
	c := &testCaddy{
		Servers: []any{
			map[string]any{"name": "everything", "upstream": up.srv.URL + "/json/mcp"},
			map[string]any{"name": "github", "upstream": up.srv.URL + "/sse/mcp"},
			map[string]any{"name": "gz", "upstream": up.srv.URL + "/gz/mcp"},
		},
		Before: []any{map[string]any{"handler": "headers", "response": map[string]any{"deferred": true, "set": map[string]any{
			"X-Sub":    []string{"{http.mcp.auth.subject}"},
			"X-Groups": []string{"{http.mcp.auth.groups}"},
			"X-Client": []string{"{http.mcp.auth.client_id}"},
		}}}},
	}
	if auth != nil {
		c.Gateway = map[string]any{"auth": auth}
	}
	for _, opt := range opts {
		opt(c)
	}
	return c.start(t)
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
	case "completion/complete":
		params = `{"ref":{"type":"ref/prompt","name":"simple-prompt"},"argument":{"name":"a","value":""}}`
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
			challenge := `Bearer error="insufficient_scope", scope="` + tc.scopes + `", ` + prm
			if tc.scopes == "" {
				challenge = "" // no scope cures it: no step-up challenge
			}
			rejected(t, res, n, 403, challenge, codeInsufficientScope)
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
		res := post(t, base+"/gz/mcp", bearer(good.token(t, testResource, "platform-admins")), call(9, "tools/list", ""))
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
	base := (&testCaddy{
		Servers: []any{
			map[string]any{"name": "everything", "upstream": legacy.URL + "/sse", "transport": "sse"},
			map[string]any{"name": "x", "upstream": up.srv.URL + "/json/mcp"},
		},
		Gateway: map[string]any{"auth": auth},
	}).start(t)
	req, _ := http.NewRequest(http.MethodGet, base+"/everything/sse", nil)
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
	if got, want := readEvent(t, br), "event: endpoint\ndata: /everything/message?sessionId="; !strings.HasPrefix(got, want) || strings.Contains(got, "sessionId=1\n") {
		t.Fatalf("endpoint event %q, want %q and a sealed session", got, want)
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
		if _, err := provisionAuth(t.Context(), a, zap.NewNop(), "", nil); err == nil {
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

// signClaims signs claims with key (RS256) under the header kid.
func signClaims(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// rawJWT assembles a compact JWS from a header, claims and signature of the caller's choice.
func rawJWT(header, claims any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	b := base64.RawURLEncoding
	return b.EncodeToString(h) + "." + b.EncodeToString(c) + "." + b.EncodeToString(sig)
}

// hs256JWT is the algorithm-confusion attack: HS256 keyed with public key bytes.
func hs256JWT(kid string, claims any, secret []byte) string {
	h, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(claims)
	b := base64.RawURLEncoding
	input := b.EncodeToString(h) + "." + b.EncodeToString(c)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b.EncodeToString(mac.Sum(nil))
}

// TestAuthGatewayBadTokens sends the bad-token battery through the real gateway: every
// rejection is a clean 401 (never 500, never 503) with the RFC 6750 challenge and a
// JSON-RPC error body, and nothing reaches the upstream.
func TestAuthGatewayBadTokens(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	weakKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := startIssuerWithKey(t, weakKey, false)
	flaky := startIssuer(t, false)
	up := startRecordingUpstream(t)
	auth := testAuthConfig(t, good, down)
	auth["issuers"] = append(auth["issuers"].([]any),
		map[string]any{"issuer": weak.url, "jwks_url": weak.url + "/jwks"},
		map[string]any{"issuer": flaky.url, "jwks_url": flaky.url + "/jwks"},
	)
	base := authCaddy(t, up, auth)
	everything := base + "/everything/mcp"
	aud := testResource + "/everything/mcp"
	prm := `resource_metadata="` + testResource + `/.well-known/oauth-protected-resource/everything/mcp"`
	noToken := `Bearer ` + prm + `, scope="servers/all servers/readonly"`
	invalidToken := func(reason string) string {
		return `Bearer error="invalid_token", error_description="` + reason + `", ` + prm
	}

	now := time.Now()
	claims := func(kv ...any) map[string]any {
		c := map[string]any{
			"iss": good.url, "sub": "alice", "aud": aud, "groups": []string{"readers"},
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	pub := &good.key.PublicKey
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	validSig := signClaims(t, good.key, "k1", claims())
	segs := strings.Split(validSig, ".")
	tok17k := signClaims(t, good.key, "k1", claims("pad", strings.Repeat("x", 12<<10)))
	if len(tok17k) <= 16<<10 || len(tok17k) > 18<<10 {
		t.Fatalf("17 KiB token is %d bytes", len(tok17k))
	}

	type tcase struct {
		name    string
		url     string // default: everything
		h       http.Header
		wwwAuth string
	}
	cases := []tcase{
		// Algorithm attacks.
		{name: "alg none", h: bearer(rawJWT(map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"}, claims(), nil)), wwwAuth: invalidToken("unsupported algorithm")},
		{name: "alg none with signature", h: bearer(rawJWT(map[string]any{"alg": "none", "kid": "k1"}, claims(), []byte("sig"))), wwwAuth: invalidToken("unsupported algorithm")},
		{name: "alg None", h: bearer(rawJWT(map[string]any{"alg": "None", "kid": "k1"}, claims(), nil)), wwwAuth: invalidToken("unsupported algorithm")},
		{name: "HS256 with PEM public key", h: bearer(hs256JWT("k1", claims(), pemBytes)), wwwAuth: invalidToken("unsupported algorithm")},
		{name: "HS256 with DER public key", h: bearer(hs256JWT("k1", claims(), pkix)), wwwAuth: invalidToken("unsupported algorithm")},
		{name: "HS256 with PKCS1 DER public key", h: bearer(hs256JWT("k1", claims(), pkcs1)), wwwAuth: invalidToken("unsupported algorithm")},
		{name: "HS256 with PKCS1 PEM public key", h: bearer(hs256JWT("k1", claims(), pkcs1PEM)), wwwAuth: invalidToken("unsupported algorithm")},
		// Keys.
		{name: "unknown kid", h: bearer(signClaims(t, good.key, "nope", claims())), wwwAuth: invalidToken("unknown signing key")},
		{name: "kid path traversal", h: bearer(signClaims(t, good.key, "../../etc/passwd", claims())), wwwAuth: invalidToken("unknown signing key")},
		{name: "kid /jwks", h: bearer(signClaims(t, good.key, "/jwks", claims())), wwwAuth: invalidToken("unknown signing key")},
		{name: "kid URL", h: bearer(signClaims(t, good.key, good.url+"/jwks", claims())), wwwAuth: invalidToken("unknown signing key")},
		{name: "signed by another key under k1", h: bearer(signClaims(t, otherKey, "k1", claims())), wwwAuth: invalidToken("invalid signature")},
		{name: "signature of another token", h: bearer(segs[0] + "." + b64([]byte(`{"iss":"`+good.url+`","sub":"root","aud":"`+aud+`","groups":["platform-admins"],"exp":`+fmt.Sprint(now.Add(time.Hour).Unix())+`}`)) + "." + segs[2]), wwwAuth: invalidToken("invalid signature")},
		{name: "1024-bit RSA issuer", h: bearer(signClaims(t, weakKey, "k1", claims("iss", weak.url))), wwwAuth: invalidToken("unknown signing key")},
		// Claims.
		{name: "expired", h: bearer(signClaims(t, good.key, "k1", claims("exp", now.Add(-time.Hour).Unix(), "iat", now.Add(-2*time.Hour).Unix()))), wwwAuth: invalidToken("expired")},
		{name: "no exp", h: bearer(signClaims(t, good.key, "k1", claims("exp", nil))), wwwAuth: invalidToken("missing expiry")},
		{name: "future nbf", h: bearer(signClaims(t, good.key, "k1", claims("nbf", now.Add(time.Hour).Unix()))), wwwAuth: invalidToken("not yet valid")},
		{name: "wrong iss", h: bearer(signClaims(t, good.key, "k1", claims("iss", "https://evil.example.com"))), wwwAuth: invalidToken("untrusted issuer")},
		{name: "iss with trailing slash", h: bearer(signClaims(t, good.key, "k1", claims("iss", good.url+"/"))), wwwAuth: invalidToken("untrusted issuer")},
		{name: "iss of the weak issuer, signed by the good key", h: bearer(signClaims(t, good.key, "k1", claims("iss", weak.url))), wwwAuth: invalidToken("unknown signing key")},
		{name: "wrong aud", h: bearer(signClaims(t, good.key, "k1", claims("aud", "https://other.example.com/mcp"))), wwwAuth: invalidToken("wrong audience")},
		{name: "aud of the gateway's origin with another path", h: bearer(signClaims(t, good.key, "k1", claims("aud", testResource+"/other/mcp"))), wwwAuth: invalidToken("wrong audience")},
		{name: "aud missing", h: bearer(signClaims(t, good.key, "k1", claims("aud", nil))), wwwAuth: invalidToken("wrong audience")},
		// Malformed.
		{name: "1 segment", h: bearer(segs[0]), wwwAuth: invalidToken("malformed token")},
		{name: "2 segments", h: bearer(segs[0] + "." + segs[1]), wwwAuth: invalidToken("malformed token")},
		{name: "4 segments", h: bearer(validSig + "." + segs[2]), wwwAuth: invalidToken("malformed token")},
		{name: "5 segments (JWE shape)", h: bearer(segs[0] + ".." + segs[1] + "." + segs[2] + "." + segs[2]), wwwAuth: invalidToken("malformed token")},
		{name: "empty segments", h: bearer(".."), wwwAuth: invalidToken("malformed token")},
		{name: "bad base64 header", h: bearer("eyJ+/." + segs[1] + "." + segs[2]), wwwAuth: invalidToken("malformed token")},
		{name: "padding inside the token", h: bearer(segs[0] + "=." + segs[1] + "." + segs[2]), wwwAuth: invalidToken("malformed authorization header")},
		{name: "padded signature", h: bearer(validSig + "=="), wwwAuth: invalidToken("malformed token")},
		{name: "bad JSON header", h: bearer(b64([]byte(`{"alg":"RS256",`)) + "." + segs[1] + "." + segs[2]), wwwAuth: invalidToken("malformed token")},
		{name: "header not an object", h: bearer(b64([]byte(`["RS256"]`)) + "." + segs[1] + "." + segs[2]), wwwAuth: invalidToken("malformed token")},
		{name: "bad JSON payload", h: bearer(segs[0] + "." + b64([]byte(`{"sub":`)) + "." + segs[2]), wwwAuth: invalidToken("malformed token")},
		// Over the validator's 16 KiB limit, under Caddy's default header limit (16 KiB
		// + net/http's 4 KiB slack). 64 KiB tokens: TestAuthGatewayHugeToken.
		{name: "17 KiB token", h: bearer(tok17k), wwwAuth: invalidToken("token too large")},
		// Headers.
		{name: "query string token", url: everything + "?access_token=" + validSig, wwwAuth: noToken},
		{name: "Basic", h: http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret"))}}, wwwAuth: noToken},
		{name: "Basic carrying a valid JWT", h: http.Header{"Authorization": {"Basic " + validSig}}, wwwAuth: noToken},
		{name: "two Authorization headers", h: http.Header{"Authorization": {"Bearer " + validSig, "Bearer " + validSig}}, wwwAuth: invalidToken("malformed authorization header")},
		{name: "two Authorization headers, one Basic", h: http.Header{"Authorization": {"Basic eDp5", "Bearer " + validSig}}, wwwAuth: invalidToken("malformed authorization header")},
		{name: "empty bearer", h: http.Header{"Authorization": {"Bearer "}}, wwwAuth: invalidToken("malformed authorization header")},
		{name: "bearer with spaces", h: http.Header{"Authorization": {"Bearer " + segs[0] + " " + segs[1]}}, wwwAuth: invalidToken("malformed authorization header")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				url = everything
			}
			n := up.count()
			res := post(t, url, tc.h, call(1, "tools/call", "echo"))
			if res.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 (%s)", res.status, res.body)
			}
			if got := res.header.Get("WWW-Authenticate"); got != tc.wwwAuth {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, tc.wwwAuth)
			}
			var m struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Error   struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(res.body), &m); err != nil || m.JSONRPC != "2.0" || m.Error.Code != codeUnauthorized || m.Error.Message == "" {
				t.Errorf("body %s: want a JSON-RPC error %d", res.body, codeUnauthorized)
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if n2 := up.count(); n2 != n {
				t.Errorf("the upstream received %d request(s) for a rejected call", n2-n)
			}
		})
	}

	// The valid token the battery was built around is accepted (the battery rejects for
	// the reason tested, not because the setup is broken).
	if res := post(t, everything, bearer(validSig), call(1, "tools/call", "echo")); res.status != 200 {
		t.Fatalf("valid token: %d %s", res.status, res.body)
	}

	t.Run("JWKS down after a successful fetch", func(t *testing.T) {
		tok1 := signClaims(t, flaky.key, "k1", claims("iss", flaky.url, "sub", "bob"))
		if res := post(t, everything, bearer(tok1), call(1, "ping", "")); res.status != 200 {
			t.Fatalf("before the outage: %d %s", res.status, res.body)
		}
		flaky.down.Store(true)
		defer flaky.down.Store(false)
		n := up.count()
		// The validated token (token cache).
		if res := post(t, everything, bearer(tok1), call(2, "ping", "")); res.status != 200 {
			t.Fatalf("cached token during the outage: %d %s", res.status, res.body)
		}
		// A new token signed by the cached key.
		tok2 := signClaims(t, flaky.key, "k1", claims("iss", flaky.url, "sub", "carol", "iat", now.Add(-time.Second).Unix()))
		if res := post(t, everything, bearer(tok2), call(3, "ping", "")); res.status != 200 {
			t.Fatalf("new token, cached key, during the outage: %d %s", res.status, res.body)
		}
		if up.count() != n+2 {
			t.Errorf("upstream received %d requests, want 2", up.count()-n)
		}
		// An unknown kid during the outage: the refetch fails, the answer is still a
		// clean 401 (the issuer's keys are known), never 500.
		tok3 := signClaims(t, flaky.key, "k2", claims("iss", flaky.url))
		res := post(t, everything, bearer(tok3), call(4, "ping", ""))
		if res.status != 401 || res.header.Get("WWW-Authenticate") != invalidToken("unknown signing key") {
			t.Errorf("unknown kid during the outage: %d %q %s", res.status, res.header.Get("WWW-Authenticate"), res.body)
		}
		if up.count() != n+2 {
			t.Error("the rejected call reached the upstream")
		}
	})
}

// TestAuthGatewayHugeToken: a 64 KiB bearer token. Under Caddy's default header limit
// (max_header_bytes 16 KiB) net/http answers 431 before the gateway runs; with a server
// that accepts large headers the validator's own limit (16 KiB) answers 401. Neither
// reaches the upstream; neither is a 500.
func TestAuthGatewayHugeToken(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	huge := good.token(t, testResource+"/everything/mcp", "readers", strings.Repeat("g", 64<<10))
	if len(huge) < 64<<10 {
		t.Fatalf("token is only %d bytes", len(huge))
	}
	prm := `resource_metadata="` + testResource + `/.well-known/oauth-protected-resource/everything/mcp"`
	for _, tc := range []struct {
		name     string
		maxBytes int
		status   int
	}{
		{"default header limit", 0, http.StatusRequestHeaderFieldsTooLarge},
		{"1 MiB header limit", 1 << 20, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startRecordingUpstream(t)
			base := authCaddy(t, up, testAuthConfig(t, good, down), func(c *testCaddy) {
				if tc.maxBytes > 0 {
					c.Server = map[string]any{"max_header_bytes": tc.maxBytes}
				}
			})
			for _, tok := range []string{huge, strings.Repeat("A", 64<<10)} {
				res := post(t, base+"/everything/mcp", bearer(tok), call(1, "tools/call", "echo"))
				if res.status != tc.status {
					t.Fatalf("status %d, want %d (%s)", res.status, tc.status, res.body)
				}
				if tc.status == http.StatusUnauthorized {
					if got, want := res.header.Get("WWW-Authenticate"), `Bearer error="invalid_token", error_description="token too large", `+prm; got != want {
						t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, want)
					}
					if !strings.Contains(res.body, `"jsonrpc":"2.0"`) || !strings.Contains(res.body, fmt.Sprint(codeUnauthorized)) {
						t.Errorf("body %s", res.body)
					}
				}
				if up.count() != 0 {
					t.Errorf("the upstream received %d request(s)", up.count())
				}
			}
		})
	}
}

// Inline UI scopes in the Caddyfile policy block map to policy.Config.UIScopes.
func TestAuthCaddyfileUIScopes(t *testing.T) {
	in := `mcp_gateway {
	auth {
		api_key ` + strings.Repeat("a", 64) + ` admins
		policy {
			group admins registry-admin
			group readers registry-viewer
			ui_scope registry-admin {
				list_service all
				register_service all
				toggle_service all
				modify_service all
				health_check_service all
			}
			ui_scope registry-viewer {
				list_service everything github
				list_service fetch
				health_check_service /everything/
			}
		}
	}
}`
	var g Gateway
	if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	got := g.Auth.Policy.UIScopes
	want := map[string]map[string][]string{
		"registry-admin": {
			"list_service": {"all"}, "register_service": {"all"}, "toggle_service": {"all"},
			"modify_service": {"all"}, "health_check_service": {"all"},
		},
		"registry-viewer": {"list_service": {"everything", "github", "fetch"}, "health_check_service": {"/everything/"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UIScopes\n got %v\nwant %v", got, want)
	}
	p, warnings, err := policy.Compile(g.Auth.Policy)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("compile: %v %v", err, warnings)
	}
	viewer := p.Resolve([]string{"readers"})
	for _, c := range []struct {
		perm   policy.UIPermission
		server string
		want   bool
	}{
		{policy.ListService, "github", true},
		{policy.ListService, "fetch", true},
		{policy.ListService, "other", false},
		{policy.HealthCheckService, "everything", true},
		{policy.RegisterService, "github", false},
		{policy.ToggleService, "everything", false},
	} {
		if got := viewer.AllowUI(c.perm, c.server); got != c.want {
			t.Errorf("viewer %s on %s: %v, want %v", c.perm, c.server, got, c.want)
		}
	}
	if !p.Resolve([]string{"admins"}).AllowUI(policy.ModifyService, "anything") {
		t.Error("admin cannot modify_service on anything")
	}
	// The JSON form is policy.Config's: "ui_scopes".
	b, err := json.Marshal(g.Auth.Policy)
	if err != nil || !strings.Contains(string(b), `"ui_scopes":{"registry-admin":{`) {
		t.Errorf("JSON %s %v", b, err)
	}

	for _, bad := range []string{
		"ui_scope s {\n delete_service all\n }",
		"ui_scope s {\n list_service\n }",
		"ui_scope {\n list_service all\n }",
		"ui_scope s t {\n list_service all\n }",
		"ui_scope s {\n list_service all\n }\n ui_scope s {\n toggle_service all\n }",
	} {
		in := "mcp_gateway {\n auth {\n policy {\n " + bad + "\n }\n }\n}"
		if err := new(Gateway).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("no error for %q", bad)
		} else if strings.Contains(bad, "delete_service") && !strings.Contains(err.Error(), `unknown ui_scope permission "delete_service"`) {
			t.Errorf("error for an unknown permission: %v", err)
		}
	}
}
