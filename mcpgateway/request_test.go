package mcpgateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSubPathSafe(t *testing.T) {
	for sub, want := range map[string]bool{
		"":             true,
		"/":            true,
		"/a":           true,
		"/a/b":         true,
		"/a/b/":        true,
		"/a.b/c..d":    true,
		"/..":          false,
		"/../admin":    false,
		"/a/../../x":   false,
		"/./a":         false,
		"/a/.":         false,
		"//a":          false,
		"/a//b":        false,
		"/a\\..\\b":    false,
		"/a\\b":        false,
		"/a\x00b":      false,
		"/a\nb":        false,
		"/a/%2e%2e/b":  false, // still encoded after one decoding: a second decoder would see ..
		"/a%2fb":       false,
		"/a%5cb":       false,
		"/a%252e%252e": false,
	} {
		if got := subPathSafe(sub); got != want {
			t.Errorf("subPathSafe(%q) = %v, want %v", sub, got, want)
		}
	}
}

// rawExchange sends request bytes as they are (no client-side cleaning) and returns
// the status line's code, the headers and the body.
func rawExchange(t *testing.T, addr, req string) (int, http.Header, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, resp.Header, string(b)
}

// TestOnlyInspectedBytesReachUpstreams sends what the transports do not define: other
// HTTP methods with bodies (with or without an override header), GET and DELETE with
// bodies, protocol upgrades, and sub-paths escaping the server's MCP path. None of them
// reaches the upstream; each answer is a JSON-RPC error.
func TestOnlyInspectedBytesReachUpstreams(t *testing.T) {
	up := startRecordingUpstream(t)
	c := &testCaddy{Servers: []any{
		map[string]any{"name": "everything", "upstream": up.srv.URL + "/json/mcp"},
		map[string]any{"name": "legacy", "upstream": up.srv.URL + "/sse/sse", "transport": "sse"},
	}}
	base := c.start(t)
	addr := strings.TrimPrefix(base, "http://")
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo"}}`
	req := func(method, path string, extra string, body string) string {
		s := method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n" + extra
		if body != "" {
			s += "Content-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n"
		}
		return s + "\r\n" + body
	}
	for _, tc := range []struct {
		name      string
		raw       string
		status    int
		wantAllow string
	}{
		{"PUT with a body", req("PUT", "/everything/mcp", "", body), 405, "GET, POST, DELETE"},
		{"PATCH with a body", req("PATCH", "/everything/mcp", "", body), 405, "GET, POST, DELETE"},
		{"OPTIONS", req("OPTIONS", "/everything/mcp", "", ""), 405, "GET, POST, DELETE"},
		{"HEAD", req("HEAD", "/everything/mcp", "", ""), 405, "GET, POST, DELETE"},
		{"PUT with an override to POST", req("PUT", "/everything/mcp", "X-HTTP-Method-Override: POST\r\n", body), 405, "GET, POST, DELETE"},
		{"GET /message", req("GET", "/legacy/message", "", ""), 405, "POST"},
		{"POST /sse", req("POST", "/legacy/sse", "", body), 405, "GET"},
		{"GET with a body", req("GET", "/everything/mcp", "", body), 400, ""},
		{"DELETE with a body", req("DELETE", "/everything/mcp", "", body), 400, ""},
		{"GET with a chunked body", "GET /everything/mcp HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", 400, ""},
		{"GET with an override to POST and a body", req("GET", "/everything/mcp", "X-HTTP-Method-Override: POST\r\n", body), 400, ""},
		{"websocket upgrade", req("GET", "/everything/mcp", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", ""), 400, ""},
		{"h2c upgrade on POST", req("POST", "/everything/mcp", "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n", body), 400, ""},
		{"Upgrade header alone", req("GET", "/everything/mcp", "Upgrade: tcp\r\n", ""), 400, ""},
		{"dot-dot sub-path", req("GET", "/everything/mcp/../../admin", "", ""), 400, ""},
		{"encoded dot-dot", req("GET", "/everything/mcp/%2e%2e/%2e%2e/admin", "", ""), 400, ""},
		{"dot-dot and encoded slash", req("GET", "/everything/mcp/..%2f..%2fadmin", "", ""), 400, ""},
		{"double-encoded dot-dot", req("GET", "/everything/mcp/%252e%252e/admin", "", ""), 400, ""},
		{"dot segment", req("POST", "/everything/mcp/./x", "", body), 400, ""},
		{"double slash", req("GET", "/everything/mcp//admin", "", ""), 400, ""},
		{"backslash", req("GET", "/everything/mcp/..\\..\\admin", "", ""), 400, ""},
		{"encoded backslash", req("GET", "/everything/mcp/..%5c..%5cadmin", "", ""), 400, ""},
	} {
		before := up.count()
		status, h, b := rawExchange(t, addr, tc.raw)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, status, tc.status, b)
		}
		if tc.wantAllow != "" && h.Get("Allow") != tc.wantAllow {
			t.Errorf("%s: Allow %q, want %q", tc.name, h.Get("Allow"), tc.wantAllow)
		}
		if !strings.HasPrefix(tc.raw, "HEAD") && !strings.Contains(b, `"error"`) {
			t.Errorf("%s: body %q is not a JSON-RPC error", tc.name, b)
		}
		if n := up.count() - before; n != 0 {
			t.Errorf("%s: %d request(s) reached the upstream: %+v", tc.name, n, up.requests()[before:])
		}
	}

	// Allowed shapes still pass, and lose their method-override headers on both proxy
	// paths (GET: the hijacked stream path; POST: ReverseProxy).
	overrides := "X-HTTP-Method-Override: PUT\r\nX-HTTP-Method: PUT\r\nX-Method-Override: PUT\r\n"
	for _, raw := range []string{
		req("GET", "/everything/mcp", overrides, ""),
		req("POST", "/everything/mcp", overrides, `{"jsonrpc":"2.0","id":1,"method":"ping"}`),
		req("POST", "/everything/mcp/sub/path", overrides, `{"jsonrpc":"2.0","id":1,"method":"ping"}`),
		req("DELETE", "/everything/mcp", overrides, ""),
	} {
		before := up.count()
		if status, _, b := rawExchange(t, addr, raw); status >= 500 || status == 400 {
			t.Errorf("%q: %d %s", raw[:30], status, b)
			continue
		}
		if up.count() != before+1 {
			t.Errorf("%q did not reach the upstream", raw[:30])
			continue
		}
		got := up.last(t)
		for _, k := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
			if v := got.header.Get(k); v != "" {
				t.Errorf("%s %s: %s: %q reached the upstream", got.method, got.path, k, v)
			}
		}
		if !strings.HasPrefix(got.path, "/json/mcp") {
			t.Errorf("upstream path %q escapes /json/mcp", got.path)
		}
	}
}

// TestUpstreamSwitchingProtocolsNotRelayed: an upstream answering 101 to a request that
// asked for no upgrade gets a 502, and nothing after its 101 reaches the client.
func TestUpstreamSwitchingProtocolsNotRelayed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, r.Body)
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nSMUGGLED")
			}()
		}
	}()
	c := &testCaddy{Servers: []any{map[string]any{"name": "s", "upstream": "http://" + ln.Addr().String() + "/mcp"}}}
	base := c.start(t)
	addr := strings.TrimPrefix(base, "http://")
	for _, raw := range []string{
		"POST /s/mcp HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		"GET /s/mcp HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\nAccept: text/event-stream\r\n\r\n",
	} {
		status, _, b := rawExchange(t, addr, raw)
		if status != http.StatusBadGateway || strings.Contains(b, "SMUGGLED") {
			t.Errorf("%q: %d %q, want 502 and nothing relayed", raw[:12], status, b)
		}
	}
}
