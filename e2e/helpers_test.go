package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// Bounds used throughout: no wait in this package is unbounded.
const (
	requestTimeout = 20 * time.Second // one HTTP exchange, body included
	eventTimeout   = 10 * time.Second // the next SSE event of an open stream
)

// ---------------------------------------------------------------------------
// caddy

// caddyInstance is a caddy binary running one Caddyfile.
type caddyInstance struct {
	*testenv.Process
	Base   string // http://127.0.0.1:PORT, the site under test
	Admin  string // http://127.0.0.1:APORT, caddy's admin API
	Dir    string // holds the Caddyfile, the registry db, XDG dirs and HOME
	Config string // the Caddyfile as run, tokens substituted
}

// startCaddy runs `caddy run --config <dir>/Caddyfile --adapter caddyfile`. The
// Caddyfile must contain {{PORT}} (the site's port, a free one) and {{ADMIN}} (a free
// loopback admin address); {{DB}} is replaced by a registry db path in the test's temp
// dir. env adds variables for {$VAR} placeholders. XDG_DATA_HOME, XDG_CONFIG_HOME and
// HOME point into the temp dir. It returns once the site's port accepts connections;
// the process is killed when the test ends, its log printed if the test failed, and
// the test fails if the race detector or net/http reported a problem in it. Under
// go test -short (no caddy is built) it skips the test.
func startCaddy(t *testing.T, caddyfile string, env map[string]string) (string, *caddyInstance) {
	t.Helper()
	testenv.SkipIfShort(t)
	for _, tok := range []string{"{{PORT}}", "{{ADMIN}}"} {
		if !strings.Contains(caddyfile, tok) {
			t.Fatalf("startCaddy: the Caddyfile has no %s:\n%s", tok, caddyfile)
		}
	}
	caddyfile = withoutHealthChecks(caddyfile)
	dir := t.TempDir()
	ci := &caddyInstance{Dir: dir}
	cfgPath := filepath.Join(dir, "Caddyfile")
	db := filepath.Join(dir, "registry.db")
	xdgData, xdgConfig, home := filepath.Join(dir, "data"), filepath.Join(dir, "config"), filepath.Join(dir, "home")
	for _, d := range []string{xdgData, xdgConfig, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var extra []string
	for k, v := range env {
		extra = append(extra, k+"="+v)
	}
	slices.Sort(extra)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caddy ran this Caddyfile:\n%s", ci.Config)
		}
	})

	p := testenv.StartCommand(t, testenv.Command{
		Name: "caddy",
		Path: caddyBin,
		Dir:  dir,
		Args: func(port int) []string {
			admin := testenv.FreePort(t)
			for admin == port {
				admin = testenv.FreePort(t)
			}
			ci.Admin = "http://127.0.0.1:" + strconv.Itoa(admin)
			ci.Config = strings.NewReplacer(
				"{{PORT}}", strconv.Itoa(port),
				"{{ADMIN}}", "127.0.0.1:"+strconv.Itoa(admin),
				"{{DB}}", db,
			).Replace(caddyfile)
			if err := os.WriteFile(cfgPath, []byte(ci.Config), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"run", "--config", cfgPath, "--adapter", "caddyfile"}
		},
		Env: func(int) []string {
			return append([]string{
				"XDG_DATA_HOME=" + xdgData,
				"XDG_CONFIG_HOME=" + xdgConfig,
				"HOME=" + home,
			}, extra...)
		},
	})
	ci.Process = p
	ci.Base = p.BaseURL
	// Registered after StartCommand, so it runs before the process is killed.
	t.Cleanup(func() {
		out := p.Output()
		for _, bad := range []string{"WARNING: DATA RACE", "http: panic serving"} {
			if strings.Contains(out, bad) {
				t.Errorf("caddy reported %q (its log follows)", bad)
			}
		}
	})
	return ci.Base, ci
}

var goroutineTotal = regexp.MustCompile(`^goroutine profile: total (\d+)\n`)

// goroutines reads caddy's goroutine count from its admin API (pprof, debug=1), and the
// whole profile for diagnostics.
func (c *caddyInstance) goroutines(t *testing.T) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: requestTimeout}
	resp, err := client.Get(c.Admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatalf("reading caddy's goroutine profile: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("reading caddy's goroutine profile: status %d, %v: %s", resp.StatusCode, err, b)
	}
	m := goroutineTotal.FindSubmatch(b)
	if m == nil {
		t.Fatalf("goroutine profile does not start with \"goroutine profile: total N\":\n%.300s", b)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n, string(b)
}

// exampleCaddyfile reads caddyfile-examples/name and replaces, exactly once each, the
// site address :8080 by :{{PORT}}, the admin line by admin {{ADMIN}} and the bbolt
// storage path by {{DB}}, so that startCaddy can run it in isolation. It fails if the
// example no longer has that shape (so a changed example is noticed, not skipped).
func exampleCaddyfile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "caddyfile-examples", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range []struct{ re, repl string }{
		{`(?m)^(\s*)admin\s+\S+[ \t]*$`, "${1}admin {{ADMIN}}"},
		{`(?m)^(\s*)storage bbolt \S+`, "${1}storage bbolt {{DB}}"},
		{`(?m)^:8080 \{`, ":{{PORT}} {"},
	} {
		re := regexp.MustCompile(r.re)
		if n := len(re.FindAllStringIndex(s, -1)); n != 1 {
			t.Fatalf("%s: want exactly one match of %s, found %d:\n%s", name, r.re, n, s)
		}
		s = re.ReplaceAllString(s, r.repl)
	}
	return s
}

// ---------------------------------------------------------------------------
// raw HTTP

// newHTTPClient returns a client of its own (its idle connections are closed when the
// test ends). Requests carry their own deadlines.
func newHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// hdr builds a header from name/value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// mcpHeader is what a streamable HTTP client sends with a POST: JSON in, JSON or SSE
// out, plus the session and protocol version when given.
func mcpHeader(session, version string) http.Header {
	h := hdr("Content-Type", "application/json", "Accept", "application/json, text/event-stream")
	if session != "" {
		h.Set("Mcp-Session-Id", session)
	}
	if version != "" {
		h.Set("MCP-Protocol-Version", version)
	}
	return h
}

// send performs one exchange and reads the whole response body, within requestTimeout.
func send(t *testing.T, c *http.Client, method, url string, h http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	return sendReader(t, c, method, url, h, strings.NewReader(body), int64(len(body)))
}

// sendReader is send with a body of the given length (-1: unknown, sent chunked).
func sendReader(t *testing.T, c *http.Client, method, url string, h http.Header, body io.Reader, length int64) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if method == http.MethodGet || method == http.MethodDelete {
		if length == 0 {
			body = nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length // -1: unknown, sent chunked
	for k, v := range h {
		if strings.EqualFold(k, "Host") {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the %d response: %v (read %q)", method, url, resp.StatusCode, err, b)
	}
	return resp, b
}

// openStream starts a request whose response is read as it arrives. The body is
// closed when the test ends.
func openStream(t *testing.T, c *http.Client, method, url string, h http.Header, body string) (*http.Response, *sseStream, context.CancelFunc) {
	t.Helper()
	resp, cancel := openResponse(t, c, method, url, h, body)
	s := readSSE(resp.Body)
	t.Cleanup(s.Close)
	return resp, s, cancel
}

// openResponse starts a request and returns once the response headers are in, its
// body unread. The request is cancelled when the test ends.
func openResponse(t *testing.T, c *http.Client, method, url string, h http.Header, body string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	type result struct {
		resp *http.Response
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := c.Do(req)
		ch <- result{resp, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-time.After(requestTimeout):
		cancel()
		t.Fatalf("%s %s: no response headers within %v", method, url, requestTimeout)
	}
	if r.err != nil {
		cancel()
		t.Fatalf("%s %s: %v", method, url, r.err)
	}
	return r.resp, cancel
}

// ---------------------------------------------------------------------------
// JSON-RPC

type rpcError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// messages decodes a response body, JSON (one message or a batch) or an SSE stream
// (one message or batch per event with data), into its JSON-RPC messages.
func messages(t *testing.T, resp *http.Response, body []byte) []rpcMessage {
	t.Helper()
	var datas [][]byte
	if isSSE(resp) {
		for _, ev := range parseSSE(body) {
			if strings.TrimSpace(ev.Data) != "" {
				datas = append(datas, []byte(ev.Data))
			}
		}
	} else {
		datas = append(datas, body)
	}
	var out []rpcMessage
	for _, d := range datas {
		d = bytes.TrimSpace(d)
		if len(d) > 0 && d[0] == '[' {
			var batch []rpcMessage
			if err := json.Unmarshal(d, &batch); err != nil {
				t.Fatalf("decoding a JSON-RPC batch: %v\n%s", err, d)
			}
			out = append(out, batch...)
			continue
		}
		var m rpcMessage
		if err := json.Unmarshal(d, &m); err != nil {
			t.Fatalf("decoding a JSON-RPC message: %v\n%s", err, d)
		}
		out = append(out, m)
	}
	return out
}

// response finds the response with the given id (its JSON text, e.g. `1` or `"a"`).
func response(t *testing.T, msgs []rpcMessage, id string) rpcMessage {
	t.Helper()
	for _, m := range msgs {
		if m.Method == "" && string(m.ID) == id {
			return m
		}
	}
	t.Fatalf("no response with id %s among %d messages: %+v", id, len(msgs), msgs)
	return rpcMessage{}
}

func isSSE(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
}

// wantRPCError asserts a gateway- or upstream-made JSON-RPC error answer: the HTTP
// status, Content-Type application/json, a JSON-RPC 2.0 error with the given code,
// the given id (JSON text, e.g. "null" or "5") and a message containing each of
// msgParts.
func wantRPCError(t *testing.T, what string, resp *http.Response, body []byte, status, code int, id string, msgParts ...string) rpcMessage {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d; body %s", what, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var m rpcMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: body is not one JSON-RPC message: %v\n%s", what, err, body)
	}
	if m.JSONRPC != "2.0" || m.Error == nil || m.Result != nil || m.Method != "" {
		t.Fatalf("%s: not a JSON-RPC 2.0 error response: %s", what, body)
	}
	if m.Error.Code != code {
		t.Errorf("%s: error code %d, want %d: %s", what, m.Error.Code, code, body)
	}
	if string(m.ID) != id {
		t.Errorf("%s: id %s, want %s: %s", what, m.ID, id, body)
	}
	for _, p := range msgParts {
		if !strings.Contains(m.Error.Message, p) {
			t.Errorf("%s: error message %q does not contain %q", what, m.Error.Message, p)
		}
	}
	return m
}

// gatewayMade asserts the marks of an answer the gateway wrote itself (as opposed to
// one relayed from an upstream): Cache-Control no-store and an exact Content-Length.
func gatewayMade(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want the gateway's no-store", what, cc)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("%s: Content-Length %q for a %d-byte body", what, cl, len(body))
	}
}

const initializeFmt = `{"jsonrpc":"2.0","id":%s,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"caddymcp-e2e","version":"1"}}}`

// initSession initializes a session with raw HTTP (initialize, then
// notifications/initialized, which must be answered 202) and returns the
// Mcp-Session-Id and the initialize response's SSE events (nil for a JSON answer).
func initSession(t *testing.T, c *http.Client, url, version string) (string, []sseEvent) {
	t.Helper()
	resp, body := send(t, c, "POST", url, mcpHeader("", version), fmt.Sprintf(initializeFmt, "1", version))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize via %s: status %d: %s", url, resp.StatusCode, body)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("initialize via %s: no Mcp-Session-Id in %v", url, resp.Header)
	}
	init := response(t, messages(t, resp, body), "1")
	var res struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if init.Error != nil || json.Unmarshal(init.Result, &res) != nil || res.ProtocolVersion != version {
		t.Fatalf("initialize via %s: want protocolVersion %s, got %s", url, version, body)
	}
	var events []sseEvent
	if isSSE(resp) {
		events = parseSSE(body)
	}
	resp, body = send(t, c, "POST", url, mcpHeader(sid, version), `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if resp.StatusCode != http.StatusAccepted || len(body) != 0 {
		t.Fatalf("notifications/initialized via %s: status %d, body %q; want 202 and no body", url, resp.StatusCode, body)
	}
	return sid, events
}

// ---------------------------------------------------------------------------
// SSE

type sseEvent struct {
	Event, ID, Data, Retry string
	HasData                bool
	Comments               []string
	At                     time.Time // when the blank line ending it was read
}

// parseSSE splits a complete event-stream body into events (comment-only blocks
// included, as events with only Comments).
func parseSSE(b []byte) []sseEvent {
	s := readSSE(io.NopCloser(bytes.NewReader(b)))
	var out []sseEvent
	for ev := range s.Events {
		out = append(out, ev)
	}
	return out
}

// sseStream reads an event stream as it arrives.
type sseStream struct {
	Events chan sseEvent // closed when the body ends or fails

	body   io.ReadCloser
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error // why the body ended (io.EOF for a clean end)
}

func readSSE(body io.ReadCloser) *sseStream {
	s := &sseStream{Events: make(chan sseEvent, 64), body: body, closed: make(chan struct{})}
	go s.run()
	return s
}

func (s *sseStream) run() {
	defer close(s.Events)
	br := bufio.NewReader(s.body)
	var ev sseEvent
	started := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if started {
				ev.At = time.Now()
				select {
				case s.Events <- ev:
				case <-s.closed:
					return
				}
			}
			ev, started = sseEvent{}, false
			continue
		}
		started = true
		if c, ok := strings.CutPrefix(line, ":"); ok {
			ev.Comments = append(ev.Comments, strings.TrimSpace(c))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Event = value
		case "id":
			ev.ID = value
		case "retry":
			ev.Retry = value
		case "data":
			if ev.HasData {
				ev.Data += "\n"
			}
			ev.Data += value
			ev.HasData = true
		}
	}
}

// Close stops reading and closes the body.
func (s *sseStream) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.body.Close()
	})
}

// Err is why the stream ended; valid once Events is closed.
func (s *sseStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// next returns the next event; ok is false if the stream ended first. It fails the
// test if nothing happens within eventTimeout.
func (s *sseStream) next(t *testing.T) (ev sseEvent, ok bool) {
	t.Helper()
	select {
	case ev, ok = <-s.Events:
		return ev, ok
	case <-time.After(eventTimeout):
		t.Fatalf("no SSE event within %v", eventTimeout)
		return sseEvent{}, false
	}
}

// nextMessage skips comment-only and data-less events and decodes the next message.
func (s *sseStream) nextMessage(t *testing.T) (rpcMessage, sseEvent) {
	t.Helper()
	for {
		ev, ok := s.next(t)
		if !ok {
			t.Fatalf("the event stream ended (%v) before the next message", s.Err())
		}
		if strings.TrimSpace(ev.Data) == "" {
			continue
		}
		var m rpcMessage
		if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
			t.Fatalf("event data is not a JSON-RPC message: %v\n%s", err, ev.Data)
		}
		return m, ev
	}
}

// ---------------------------------------------------------------------------
// Upstreams made in the test process, for what only they can observe

// echoUpstream is an httptest server that records every request it gets and answers:
//   - with X-Echo-Status: that status, X-Echo-Body as body and each X-Echo-Header
//     ("Name: value") as a response header;
//   - a POSTed JSON-RPC notification: 202, no body;
//   - a POSTed request or batch: 200 application/json with {"echo": method} results;
//   - anything else: 200 {"echo":"<METHOD>"}.
type echoUpstream struct {
	*httptest.Server
	MCP string // URL+"/mcp"

	mu   sync.Mutex
	reqs []echoRequest
}

type echoRequest struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         []byte
}

func startEchoUpstream(t *testing.T) *echoUpstream {
	u := new(echoUpstream)
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	u.MCP = u.URL + "/mcp"
	t.Cleanup(u.Close)
	return u
}

func (u *echoUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, echoRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone(), body})
	u.mu.Unlock()

	if s := r.Header.Get("X-Echo-Status"); s != "" {
		code, _ := strconv.Atoi(s)
		for _, kv := range r.Header.Values("X-Echo-Header") {
			k, v, _ := strings.Cut(kv, ":")
			w.Header().Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, r.Header.Get("X-Echo-Body"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost {
		fmt.Fprintf(w, `{"echo":%q}`, r.Method)
		return
	}
	type msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	answer := func(m msg) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"echo":%q}}`, m.ID, m.Method)
	}
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		var batch []msg
		_ = json.Unmarshal(t, &batch)
		var out []string
		for _, m := range batch {
			if len(m.ID) > 0 {
				out = append(out, answer(m))
			}
		}
		if len(out) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		_, _ = io.WriteString(w, "["+strings.Join(out, ",")+"]")
		return
	}
	var m msg
	_ = json.Unmarshal(body, &m)
	if len(m.ID) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	_, _ = io.WriteString(w, answer(m))
}

func (u *echoUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *echoUpstream) last(t *testing.T) echoRequest {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the echo upstream received no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// startHangUpstream listens on 127.0.0.1, accepts connections and reads from them but
// never answers. It returns an MCP endpoint URL.
func startHangUpstream(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String() + "/mcp"
}

// closedPortURL is an MCP endpoint on a loopback port nothing listens on.
func closedPortURL(t *testing.T) string {
	return "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/mcp"
}

// ---------------------------------------------------------------------------
// go-sdk client

// connect connects a go-sdk client (protocol version: the SDK's latest if empty) and
// closes the session when the test ends.
func connect(t *testing.T, transport mcp.Transport, opts *mcp.ClientOptions, version string) *mcp.ClientSession {
	t.Helper()
	// The legacy SSE transport ties its event stream to Connect's context, so the
	// context must outlive Connect: it ends with the test, or if Connect hangs.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	watchdog := time.AfterFunc(requestTimeout, cancel)
	defer watchdog.Stop()
	client := mcp.NewClient(&mcp.Implementation{Name: "caddymcp-e2e", Version: "1"}, opts)
	var so *mcp.ClientSessionOptions
	if version != "" {
		so = &mcp.ClientSessionOptions{ProtocolVersion: version}
	}
	cs, err := client.Connect(ctx, transport, so)
	if err != nil {
		t.Fatalf("go-sdk client: connecting: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("go-sdk client: tools/list: %v", err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func callTool(t *testing.T, cs *mcp.ClientSession, params *mcp.CallToolParams) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("go-sdk client: tools/call %s: %v", params.Name, err)
	}
	return res
}

// text joins the text contents of a tool result.
func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// recorder is an http.RoundTripper that remembers each exchange of a go-sdk client.
type recorder struct {
	mu        sync.Mutex
	exchanges []exchange
}

type exchange struct {
	Method     string // HTTP method
	RPCMethod  string // JSON-RPC method of a POSTed single message
	ReqHeader  http.Header
	Status     int
	RespHeader http.Header
}

func (r *recorder) client() *http.Client { return &http.Client{Transport: r} }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchange{Method: req.Method, ReqHeader: req.Header.Clone()}
	if req.Body != nil && req.Method == http.MethodPost {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		var m struct {
			Method string `json:"method"`
		}
		_ = json.Unmarshal(b, &m)
		x.RPCMethod = m.Method
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		x.Status, x.RespHeader = resp.StatusCode, resp.Header.Clone()
	}
	r.mu.Lock()
	r.exchanges = append(r.exchanges, x)
	r.mu.Unlock()
	return resp, err
}

// find returns the recorded exchanges for the given HTTP method and JSON-RPC method
// ("" for any).
func (r *recorder) find(method, rpcMethod string) []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exchange
	for _, x := range r.exchanges {
		if x.Method == method && (rpcMethod == "" || x.RPCMethod == rpcMethod) {
			out = append(out, x)
		}
	}
	return out
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// withoutHealthChecks turns the registry's background health checks off unless the
// Caddyfile configures them: their connections would otherwise compete with tests that
// count upstream requests, goroutines, or use upstreams that take one connection at a
// time. Health checks are tested against real servers in mcpregistry.
func withoutHealthChecks(caddyfile string) string {
	if strings.Contains(caddyfile, "\t\thealth") || !strings.Contains(caddyfile, "mcp_registry {\n") {
		return caddyfile
	}
	return strings.Replace(caddyfile, "mcp_registry {\n", "mcp_registry {\n\t\thealth off\n", 1)
}
