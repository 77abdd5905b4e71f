package mcpgateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSessionSealOpen(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s, err := newSessionSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	alice := &sessionBinding{issuer: "https://idp", subject: "alice", server: "everything"}
	sealed, err := s.seal("upstream-1", alice)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "upstream-1") {
		t.Fatalf("sealed id %q shows the upstream's id", sealed)
	}
	if got, ok := s.open(sealed, alice); !ok || got != "upstream-1" {
		t.Fatalf("open = %q, %v", got, ok)
	}
	again, _ := s.seal("upstream-1", alice)
	if again == sealed {
		t.Fatal("two seals of one id are equal: the nonce is not fresh")
	}
	other, _ := newSessionSealer(make([]byte, 32))
	flip := []byte(sealed)
	flip[len(flip)/2] ^= 1
	for name, tc := range map[string]struct {
		id string
		b  *sessionBinding
		s  *sessionSealer
	}{
		"other subject":     {sealed, &sessionBinding{issuer: "https://idp", subject: "bob", server: "everything"}, s},
		"other issuer":      {sealed, &sessionBinding{issuer: "https://evil", subject: "alice", server: "everything"}, s},
		"other server":      {sealed, &sessionBinding{issuer: "https://idp", subject: "alice", server: "github"}, s},
		"legacy transport":  {sealed, &sessionBinding{issuer: "https://idp", subject: "alice", server: "everything", legacy: true}, s},
		"anonymous":         {sealed, &sessionBinding{server: "everything"}, s},
		"field shift":       {sealed, &sessionBinding{issuer: "https://idpa", subject: "lice", server: "everything"}, s},
		"other key":         {sealed, alice, other},
		"bit flipped":       {string(flip), alice, s},
		"raw upstream id":   {"upstream-1", alice, s},
		"empty":             {"", alice, s},
		"not base64":        {sealed[:20] + "!!" + sealed[22:], alice, s},
		"too long":          {strings.Repeat("A", maxSealedSessionID+4), alice, s},
		"truncated":         {sealed[:len(sealed)-3], alice, s},
		"padded":            {sealed + "==", alice, s},
		"wrong version":     {base64.RawURLEncoding.EncodeToString(append([]byte{9}, make([]byte, 40)...)), alice, s},
		"all zero, minimal": {base64.RawURLEncoding.EncodeToString(make([]byte, 1+nonceSize+tagSize)), alice, s},
	} {
		if got, ok := tc.s.open(tc.id, tc.b); ok {
			t.Errorf("%s: opened to %q", name, got)
		}
	}
	if _, err := s.seal(strings.Repeat("x", maxUpstreamSessionID+1), alice); err == nil {
		t.Error("an over-long upstream id was sealed")
	}
	long, err := s.seal(strings.Repeat("x", maxUpstreamSessionID), alice)
	if err != nil || len(long) > maxSealedSessionID {
		t.Fatalf("longest upstream id: sealed to %d bytes (max %d), %v", len(long), maxSealedSessionID, err)
	}
	if _, ok := s.open(long, alice); !ok {
		t.Fatal("the longest sealed id does not open")
	}
}

func TestSessionKey(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, 32)
	b64 := base64.StdEncoding.EncodeToString(raw)
	t.Setenv("MCP_TEST_SESSION_KEY", b64)
	k, src, err := sessionKey("{env.MCP_TEST_SESSION_KEY}", "")
	if err != nil || !bytes.Equal(k, raw) || src != "session_key" {
		t.Fatalf("session_key: %x %q %v", k, src, err)
	}
	k2, src, err := sessionKey("", fmt.Sprintf("%x", raw))
	if err != nil || src != "registry encryption_key" || len(k2) != 32 || bytes.Equal(k2, raw) {
		t.Fatalf("derived: %x %q %v (must differ from the registry's own key)", k2, src, err)
	}
	k3, _, _ := sessionKey("", b64)
	if !bytes.Equal(k2, k3) {
		t.Fatal("the same registry key in hex and base64 derives different session keys")
	}
	r1, src, _ := sessionKey("", "")
	r2, _, _ := sessionKey("", "")
	if src != "random per process" || !bytes.Equal(r1, r2) || bytes.Equal(r1, make([]byte, 32)) {
		t.Fatalf("random key not stable per process: %q", src)
	}
	for _, bad := range []string{"short", strings.Repeat("z", 64), base64.StdEncoding.EncodeToString(make([]byte, 31))} {
		if _, _, err := sessionKey(bad, ""); err == nil {
			t.Errorf("session_key %q accepted", bad)
		}
	}
}

func BenchmarkSessionSealOpen(b *testing.B) {
	s, _ := newSessionSealer(make([]byte, 32))
	bind := &sessionBinding{issuer: "https://idp.example.com/realms/x", subject: "0f5c2e9a-1111-4c3b-9d2e-3a7b6c5d4e21", server: "everything"}
	sealed, _ := s.seal("a3f1c2d4-5b6e-4f70-8a91-b2c3d4e5f607", bind)
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = s.seal("a3f1c2d4-5b6e-4f70-8a91-b2c3d4e5f607", bind)
		}
	})
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := s.open(sealed, bind); !ok {
				b.Fatal("open failed")
			}
		}
	})
}

// sessionUpstream is a stateful MCP server stand-in: initialize opens a session with a
// fresh id; every other request must carry a session id it issued, else 404. It records
// the session id (header or sessionId query) of each request it got.
type sessionUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD session" per request
	n    int
	// sse is the legacy transport's event stream writer, once a client opened /sse.
	sse chan string
}

func (u *sessionUpstream) record(s string) {
	u.mu.Lock()
	u.seen = append(u.seen, s)
	u.mu.Unlock()
}

func (u *sessionUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func startSessionUpstream(t *testing.T) *sessionUpstream {
	u := &sessionUpstream{sse: make(chan string, 1)}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.URL.Path == "/legacy/sse":
			u.mu.Lock()
			u.n++
			id := fmt.Sprintf("legacy-%d", u.n)
			u.mu.Unlock()
			u.record("SSE " + id)
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: endpoint\ndata: /legacy/message?sessionId=%s\n\n", id)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		case r.URL.Path == "/legacy/message":
			u.record(r.Method + " " + r.URL.RawQuery)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		sid := r.Header.Get("Mcp-Session-Id")
		if bytes.Contains(body, []byte(`"initialize"`)) {
			u.mu.Lock()
			u.n++
			sid = fmt.Sprintf("upstream-session-%d", u.n)
			u.mu.Unlock()
			w.Header().Set("Mcp-Session-Id", sid)
			w.Header().Set("Content-Type", "application/json")
			u.record(r.Method + " new " + sid)
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}`)
			return
		}
		u.record(r.Method + " " + sid)
		if !strings.HasPrefix(sid, "upstream-session-") {
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Mcp-Session-Id", sid) // echoed on every answer, as TypeScript SDK servers do
		switch r.Method {
		case http.MethodPost:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}`)
		case http.MethodGet:
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func sessionRequest(t *testing.T, method, url string, h http.Header, body string) rpcResult {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range h {
		req.Header[k] = v
	}
	ctx, cancel := contextWithTimeout(2 * time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b []byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel() // an open stream: its head is the answer
	} else {
		b, _ = io.ReadAll(resp.Body)
	}
	return rpcResult{resp.StatusCode, resp.Header, string(b)}
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// TestSessionsBelongToTheirCaller is the session hijack: bob holds alice's session id
// (from a shared log, a proxy, a screenshot) and tries to call tools in it, answer its
// requests, take over its stream and delete it. Each attempt is answered as an unknown
// session (404, JSON-RPC error) and reaches nothing upstream; alice's own requests get
// through with the upstream's id.
func TestSessionsBelongToTheirCaller(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	up := startSessionUpstream(t)
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	c := &testCaddy{
		Servers: []any{
			map[string]any{"name": "everything", "upstream": up.srv.URL + "/mcp"},
			map[string]any{"name": "other", "upstream": up.srv.URL + "/mcp"},
		},
		Gateway:  map[string]any{"auth": testAuthConfig(t, good, down)},
		LogFiles: map[string]string{AuditLoggerName: auditLog},
	}
	base := c.start(t)
	url := base + "/everything/mcp"
	tok := func(sub string) http.Header {
		return bearer(signClaims(t, good.key, good.kid, map[string]any{
			"iss": good.url, "sub": sub, "aud": testResource, "exp": time.Now().Add(time.Hour).Unix(),
			"groups": []string{"platform-admins"},
		}))
	}
	alice, bob := tok("alice"), tok("bob")

	init := sessionRequest(t, http.MethodPost, url, alice, initializeBody)
	sealed := init.header.Get("Mcp-Session-Id")
	if init.status != http.StatusOK || sealed == "" {
		t.Fatalf("initialize: %d %q", init.status, sealed)
	}
	if strings.Contains(sealed, "upstream-session") {
		t.Fatalf("the client sees the upstream's session id: %q", sealed)
	}
	with := func(h http.Header, sid string) http.Header {
		h = h.Clone()
		h.Set("Mcp-Session-Id", sid)
		return h
	}
	listTools := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	answer := `{"jsonrpc":"2.0","id":"srv-1","result":{"action":"accept"}}`

	before := len(up.requests())
	for _, tc := range []struct {
		name, method, body string
		h                  http.Header
	}{
		{"bob calls a tool in alice's session", http.MethodPost, listTools, with(bob, sealed)},
		{"bob answers alice's elicitation", http.MethodPost, answer, with(bob, sealed)},
		{"bob takes over alice's stream", http.MethodGet, "", with(bob, sealed)},
		{"bob resumes alice's stream", http.MethodGet, "", with(http.Header{"Authorization": bob["Authorization"], "Last-Event-Id": {"1"}}, sealed)},
		{"bob deletes alice's session", http.MethodDelete, "", with(bob, sealed)},
		{"the raw upstream id", http.MethodPost, listTools, with(alice, "upstream-session-1")},
		{"a forged id", http.MethodPost, listTools, with(alice, base64.RawURLEncoding.EncodeToString(make([]byte, 60)))},
		{"a garbled id", http.MethodGet, "", with(alice, sealed[:len(sealed)-2]+"xx")},
		{"an over-long id", http.MethodPost, listTools, with(alice, strings.Repeat("A", 4096))},
		{"two session headers", http.MethodPost, listTools, http.Header{"Authorization": alice["Authorization"], "Mcp-Session-Id": {sealed, sealed}}},
	} {
		res := sessionRequest(t, tc.method, url, tc.h, tc.body)
		if res.status != http.StatusNotFound && !(tc.name == "two session headers" && res.status == http.StatusBadRequest) {
			t.Errorf("%s: status %d, want 404 (body %s)", tc.name, res.status, res.body)
			continue
		}
		if !strings.Contains(res.body, `"error"`) {
			t.Errorf("%s: body %q is not a JSON-RPC error", tc.name, res.body)
		}
	}
	// The same sealed id for another server of the same upstream is someone else's too.
	if res := sessionRequest(t, http.MethodPost, base+"/other/mcp", with(alice, sealed), listTools); res.status != http.StatusNotFound {
		t.Errorf("alice's session on another server: %d, want 404", res.status)
	}
	if got := up.requests()[before:]; len(got) != 0 {
		t.Fatalf("refused requests reached the upstream: %q", got)
	}

	// Alice's own requests carry the upstream's id to the upstream.
	for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
		body := ""
		if m == http.MethodPost {
			body = listTools
		}
		res := sessionRequest(t, m, url, with(alice, sealed), body)
		if res.status != http.StatusOK {
			t.Errorf("alice %s: %d %s", m, res.status, res.body)
		}
		if got := res.header.Get("Mcp-Session-Id"); got != sealed {
			t.Errorf("alice %s: the echoed session id came back as %q, not the client's %q", m, got, sealed)
		}
	}
	got := up.requests()[before:]
	want := []string{"POST upstream-session-1", "GET upstream-session-1", "DELETE upstream-session-1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("upstream saw %q, want %q", got, want)
	}

	// Logs show the sealed id, never the upstream's.
	waitFor(t, "audit entries", func() bool {
		b, _ := os.ReadFile(auditLog)
		return bytes.Count(b, []byte("\n")) >= 15
	})
	logged, _ := os.ReadFile(auditLog)
	for _, line := range bytes.Split(logged, []byte("\n")) {
		// Only the request that itself sent the raw id may show it.
		if bytes.Contains(line, []byte("upstream-session-1")) && !bytes.Contains(line, []byte(`"status":404`)) {
			t.Errorf("audit entry shows the upstream's session id: %s", line)
		}
	}
	if !bytes.Contains(logged, []byte(sealed)) {
		t.Error("the audit log does not show the sealed session id")
	}
	if !bytes.Contains(logged, []byte(`"status":404`)) {
		t.Error("no audit entry for the refused sessions")
	}
}

// TestLegacySessionsBelongToTheirCaller: the legacy transport's sessionId (in the
// endpoint event's URI, then on every POST /message) is sealed the same way.
func TestLegacySessionsBelongToTheirCaller(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	up := startSessionUpstream(t)
	c := &testCaddy{
		Servers: []any{map[string]any{"name": "old", "upstream": up.srv.URL + "/legacy/sse", "transport": "sse"}},
		Gateway: map[string]any{"auth": testAuthConfig(t, good, down)},
	}
	base := c.start(t)
	tok := func(sub string) http.Header {
		return bearer(signClaims(t, good.key, good.kid, map[string]any{
			"iss": good.url, "sub": sub, "aud": testResource, "exp": time.Now().Add(time.Hour).Unix(),
			"groups": []string{"platform-admins"},
		}))
	}
	alice, bob := tok("alice"), tok("bob")

	req, _ := http.NewRequest(http.MethodGet, base+"/old/sse", nil)
	req.Header = alice.Clone()
	ctx, cancel := contextWithTimeout(5 * time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ev := readEvent(t, bufio.NewReader(resp.Body))
	_, uri, _ := strings.Cut(ev, "data: ")
	uri = strings.TrimSpace(uri)
	if strings.Contains(uri, "legacy-1") || !strings.HasPrefix(uri, "/old/message?sessionId=") {
		t.Fatalf("endpoint event %q", ev)
	}
	before := len(up.requests())
	ping := `{"jsonrpc":"2.0","id":3,"method":"ping"}`
	for name, tc := range map[string]struct {
		uri string
		h   http.Header
	}{
		"bob with alice's sessionId": {uri, bob},
		"alice with the raw id":      {"/old/message?sessionId=legacy-1", alice},
		"alice with python's name":   {"/old/message?session_id=legacy-1", alice},
		"alice with a garbled id":    {uri[:len(uri)-2] + "xx", alice},
	} {
		if res := sessionRequest(t, http.MethodPost, base+tc.uri, tc.h, ping); res.status != http.StatusNotFound || !strings.Contains(res.body, `"error"`) {
			t.Errorf("%s: %d %s, want 404 with a JSON-RPC error", name, res.status, res.body)
		}
	}
	if got := up.requests()[before:]; len(got) != 0 {
		t.Fatalf("refused requests reached the upstream: %q", got)
	}
	if res := sessionRequest(t, http.MethodPost, base+uri, alice, ping); res.status != http.StatusAccepted {
		t.Fatalf("alice's own POST: %d %s", res.status, res.body)
	}
	if got := up.requests()[before:]; len(got) != 1 || got[0] != "POST sessionId=legacy-1" {
		t.Fatalf("upstream saw %q", got)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// anonymousSession is the id a client of a gateway without auth, session_key or
// registry encryption_key sees for the upstream session id on server.
func anonymousSession(t *testing.T, server, id string) string {
	t.Helper()
	s, err := newSessionSealer(processSessionKey())
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.seal(id, &sessionBinding{server: server})
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}
