package mcpgateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/testenv"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Bounds for every wait in these tests.
const streamTestTimeout = 10 * time.Second

// sseUpstream is an upstream whose GET handler answers an event stream and writes, and
// flushes, each string sent on events; it ends the stream (cleanly) when events is
// closed, and records every request it got.
type sseUpstream struct {
	*httptest.Server
	events chan string
	mu     sync.Mutex
	reqs   []*http.Request
	open   sync.WaitGroup // handlers running
	gone   chan struct{}  // one value per handler that saw its client go away
}

func startSSEUpstream(t *testing.T) *sseUpstream {
	t.Helper()
	u := &sseUpstream{events: make(chan string), gone: make(chan struct{}, 16)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.open.Add(1)
		defer u.open.Done()
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Clone(context.Background()))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Upstream", "sse")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		for {
			select {
			case ev, ok := <-u.events:
				if !ok {
					return
				}
				io.WriteString(w, ev)
				http.NewResponseController(w).Flush()
			case <-r.Context().Done():
				u.gone <- struct{}{}
				return
			}
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *sseUpstream) lastRequest(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream got no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// send hands the upstream handler one event to write, failing after the timeout.
func (u *sseUpstream) send(t *testing.T, ev string) {
	t.Helper()
	select {
	case u.events <- ev:
	case <-time.After(streamTestTimeout):
		t.Fatal("the upstream handler did not take an event")
	}
}

// gatewayFixture is a Gateway (no Caddy) behind an httptest server: <seg>/mcp and
// <seg>/sse go through forward; /old/<seg>/... maps the URL the same way but always
// takes the ReverseProxy path, for comparisons.
type gatewayFixture struct {
	g      *Gateway
	srv    *httptest.Server
	server *model.Server
}

func newGatewayFixture(t *testing.T, upstream string, transport model.Transport, wrap func(http.ResponseWriter) http.ResponseWriter) *gatewayFixture {
	t.Helper()
	g := &Gateway{Prefix: "/gw", DialTimeout: caddy.Duration(2 * time.Second), logger: zap.NewNop()}
	g.proxy = g.newReverseProxy()
	g.proxy.Transport = &http.Transport{}
	f := &gatewayFixture{g: g, server: &model.Server{Name: "srv", Upstream: upstream, Transport: transport, Enabled: true}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wrap != nil {
			w = wrap(w)
		}
		old := false
		path := r.URL.Path
		if p, ok := strings.CutPrefix(path, "/old"); ok {
			old, path = true, p
		}
		segment, sub, ep, ok := splitRoute(path, g.Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if !old {
			_ = g.forward(w, r, f.server, segment, sub, ep)
			return
		}
		tg, _ := g.targets.get(upstream)
		r.URL.Path = tg.path + sub
		r.URL.RawPath = ""
		r.URL.Scheme, r.URL.Host = tg.scheme, tg.host
		r.URL.RawQuery = joinQuery(tg.query, r.URL.RawQuery)
		g.proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		f.srv.Close()
		_ = g.Cleanup()
	})
	return f
}

func (f *gatewayFixture) url(endpoint string) string { return f.srv.URL + "/gw/seg/" + endpoint }

// waitFor polls cond until it holds, failing the test after the timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(streamTestTimeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openGet opens a GET stream with a client that keeps no idle connections.
func openGet(t *testing.T, url string, h http.Header) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close(); tr.CloseIdleConnections() })
	return resp, cancel
}

// readEvent reads one event (up to and including its blank line), failing after the
// timeout.
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var b strings.Builder
		for {
			line, err := br.ReadString('\n')
			b.WriteString(line)
			if err != nil {
				ch <- result{b.String(), err}
				return
			}
			if line == "\n" {
				ch <- result{b.String(), nil}
				return
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading an event: %v (got %q)", r.err, r.s)
		}
		return r.s
	case <-time.After(streamTestTimeout):
		t.Fatal("no event within the timeout")
		return ""
	}
}

// readEnd reads the rest of the body and returns the error it ended with (nil: clean).
func readEnd(t *testing.T, body io.Reader) (string, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(body)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		return string(r.b), r.err
	case <-time.After(streamTestTimeout):
		t.Fatal("the stream did not end within the timeout")
		return "", nil
	}
}

// Events reach the client one at a time, each as soon as the upstream flushed it, over
// the hijacked connection; a clean end upstream is a clean end for the client.
func TestStreamEventsFlushedOneByOne(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, nil)

	resp, _ := openGet(t, f.url("mcp"), http.Header{"Accept": {"text/event-stream"}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Upstream") != "sse" {
		t.Fatalf("GET: %d %v", resp.StatusCode, resp.Header)
	}
	if !slices.Equal(resp.TransferEncoding, []string{"chunked"}) || !resp.Close {
		t.Errorf("framing: Transfer-Encoding %v, Connection: close %v; want chunked, close", resp.TransferEncoding, resp.Close)
	}
	waitFor(t, "the stream to be hijacked", func() bool { return f.g.streams.len() == 1 })

	br := bufio.NewReader(resp.Body)
	for i := range 5 {
		want := fmt.Sprintf("id: %d\ndata: {\"n\":%d}\n\n", i, i)
		up.send(t, want) // the upstream sends the next only once the previous arrived
		if got := readEvent(t, br); got != want {
			t.Fatalf("event %d: got %q, want %q", i, got, want)
		}
	}
	// A big event (several copy buffers) arrives whole.
	big := "data: " + strings.Repeat("x", 100_000) + "\n\n"
	up.send(t, big)
	if got := readEvent(t, br); got != big {
		t.Fatalf("big event: got %d bytes, want %d", len(got), len(big))
	}
	close(up.events) // the upstream ends the stream cleanly
	if rest, err := readEnd(t, br); err != nil || rest != "" {
		t.Fatalf("after a clean upstream end: %q, %v; want a clean EOF", rest, err)
	}
	waitFor(t, "the stream to be released", func() bool { return f.g.streams.len() == 0 })
}

// An upstream that dies mid-stream cuts the client's stream (no last chunk: the client
// sees an error, not a clean end).
func TestStreamUpstreamKilled(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, nil)
	resp, _ := openGet(t, f.url("mcp"), nil)
	br := bufio.NewReader(resp.Body)
	up.send(t, "data: one\n\n")
	readEvent(t, br)

	up.CloseClientConnections() // the upstream's connections reset, its handler left hanging
	_, err := readEnd(t, br)
	if err == nil {
		t.Fatal("the client saw a clean end of a stream whose upstream died")
	}
	t.Logf("client stream ended with: %v", err)
	waitFor(t, "the stream to be released", func() bool { return f.g.streams.len() == 0 })
}

// A client that goes away closes the upstream connection.
func TestStreamClientDisconnect(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, nil)
	resp, cancel := openGet(t, f.url("mcp"), nil)
	br := bufio.NewReader(resp.Body)
	up.send(t, "data: one\n\n")
	readEvent(t, br)
	if f.g.streams.len() != 1 {
		t.Fatalf("%d hijacked streams open, want 1", f.g.streams.len())
	}
	cancel()
	resp.Body.Close()
	select {
	case <-up.gone:
	case <-time.After(streamTestTimeout):
		t.Fatal("the upstream did not see the client go away")
	}
	waitFor(t, "the stream to be released", func() bool { return f.g.streams.len() == 0 })
}

// The outbound request is ReverseProxy's (hop-by-hop headers removed, X-Forwarded-*,
// the upstream's Host, the client's other headers such as Last-Event-ID and
// Mcp-Session-Id), plus Connection: close.
func TestStreamOutboundRequest(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/base/mcp?fixed=1", model.TransportStreamableHTTP, nil)
	h := http.Header{
		"Accept":               {"text/event-stream"},
		"Last-Event-Id":        {"42"},
		"Mcp-Session-Id":       {"sess-1"},
		"Mcp-Protocol-Version": {"2025-06-18"},
		"Authorization":        {"Bearer t"},
		"Connection":           {"X-Hop, keep-alive"},
		"X-Hop":                {"drop me"},
		"Keep-Alive":           {"timeout=5"},
		"Proxy-Authorization":  {"Basic x"},
		"Te":                   {"trailers"},
		"X-Forwarded-For":      {"203.0.113.7"},
		"X-Forwarded-Host":     {"spoofed"},
		"Forwarded":            {"for=198.51.100.1"},
		"User-Agent":           {},
	}
	var got [2]*http.Request
	for i, path := range []string{"/gw/seg/mcp/x?q=1", "/old/gw/seg/mcp/x?q=1"} {
		resp, cancel := openGet(t, f.srv.URL+path, h)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		waitFor(t, "the upstream request", func() bool {
			up.mu.Lock()
			defer up.mu.Unlock()
			return len(up.reqs) == i+1
		})
		got[i] = up.lastRequest(t)
		cancel()
		resp.Body.Close()
	}
	stream, old := got[0], got[1]
	if stream.Host != strings.TrimPrefix(up.URL, "http://") || stream.RequestURI != "/base/mcp/x?fixed=1&q=1" {
		t.Errorf("stream path sent Host %q, URI %q", stream.Host, stream.RequestURI)
	}
	if !stream.Close {
		t.Error("stream path did not send Connection: close")
	}
	for _, k := range []string{"Last-Event-Id", "Mcp-Session-Id", "Authorization"} {
		if stream.Header.Get(k) != h.Get(k) {
			t.Errorf("%s: sent %q, want %q", k, stream.Header.Get(k), h.Get(k))
		}
	}
	// Everything else as ReverseProxy sends it; it adds Accept-Encoding: gzip (and
	// decompresses transparently), the stream path leaves the client's choice alone.
	sh, oh := stream.Header.Clone(), old.Header.Clone()
	for _, k := range []string{"Connection", "Accept-Encoding"} {
		sh.Del(k)
		oh.Del(k)
	}
	if fmt.Sprint(sh) != fmt.Sprint(oh) || stream.Host != old.Host || stream.RequestURI != old.RequestURI {
		t.Errorf("outbound requests differ:\nstream       %s %s %v\nReverseProxy %s %s %v", stream.Host, stream.RequestURI, sh, old.Host, old.RequestURI, oh)
	}
}

// Anything but a 200 event stream is relayed as ReverseProxy relays it: status, headers
// (hop-by-hop ones removed), body, trailers.
func TestStreamRelaysOtherResponses(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"405", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}},
		{"404", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"session not found"}}`)
		}},
		{"400", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad request: missing session", http.StatusBadRequest)
		}},
		{"401", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="http://as.example/.well-known/oauth-protected-resource"`)
			w.WriteHeader(http.StatusUnauthorized)
		}},
		{"hop-by-hop", func(w http.ResponseWriter, r *http.Request) {
			// Raw, so the head is the same whether the request asked to close or not.
			conn, bw, _ := http.NewResponseController(w).Hijack()
			defer conn.Close()
			bw.WriteString("HTTP/1.1 200 OK\r\nConnection: X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nX-Keep: 2\r\n" +
				"Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
			bw.Flush()
		}},
		{"chunked json with trailer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"part":1}`)
			http.NewResponseController(w).Flush()
			io.WriteString(w, `{"part":2}`)
			w.Header().Set("X-Sum", "3")
		}},
		{"202 empty", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
		}},
		{"event stream with length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Length", "12")
			io.WriteString(w, "data: done\n\n")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := httptest.NewServer(tc.handler)
			defer up.Close()
			f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, nil)
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
			type answer struct {
				status  int
				header  http.Header
				body    string
				trailer http.Header
			}
			var got [2]answer
			for i, u := range []string{f.url("mcp"), f.srv.URL + "/old/gw/seg/mcp"} {
				resp, err := c.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				resp.Header.Del("Date")
				got[i] = answer{resp.StatusCode, resp.Header, string(b), resp.Trailer}
			}
			if fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
				t.Errorf("stream path and ReverseProxy differ:\nstream       %+v\nReverseProxy %+v", got[0], got[1])
			}
			if f.g.streams.len() != 0 {
				t.Errorf("%d streams left open", f.g.streams.len())
			}
		})
	}
}

// The legacy transport's endpoint event is rewritten on the hijacked path too, and the
// upstream's message path remembered.
func TestStreamLegacyEndpointRewrite(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/legacy/sse", model.TransportSSE, nil)
	resp, _ := openGet(t, f.url("sse"), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse: %d", resp.StatusCode)
	}
	waitFor(t, "the stream to be hijacked", func() bool { return f.g.streams.len() == 1 })
	br := bufio.NewReader(resp.Body)
	// The endpoint event arrives in two pieces, after a comment.
	up.send(t, ": hello\n\nevent: endpoint\n")
	up.send(t, "data: /legacy/messages?sessionId=abc\n\n")
	if got := readEvent(t, br); got != ": hello\n\n" {
		t.Fatalf("first event %q", got)
	}
	if got, want := readEvent(t, br), "event: endpoint\ndata: /gw/seg/message?sessionId=abc\n\n"; got != want {
		t.Fatalf("endpoint event %q, want %q", got, want)
	}
	if p, _ := f.g.messagePaths.Load("srv"); p != "/legacy/messages" {
		t.Errorf("remembered message path %v", p)
	}
	up.send(t, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n")
	if got := readEvent(t, br); !strings.Contains(got, `"result"`) {
		t.Fatalf("message event %q", got)
	}
}

// A legacy stream relayed rather than streamed (it has a Content-Length) is rewritten
// too, its length dropped.
func TestStreamLegacyRelayRewrite(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const body = "event: endpoint\ndata: /messages?s=1\n\n"
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body)
	}))
	defer up.Close()
	f := newGatewayFixture(t, up.URL+"/sse", model.TransportSSE, nil)
	resp, _ := openGet(t, f.url("sse"), nil)
	rest, err := readEnd(t, resp.Body)
	if err != nil || rest != "event: endpoint\ndata: /gw/seg/message?s=1\n\n" {
		t.Fatalf("got %q, %v", rest, err)
	}
}

// An endpoint event still held back when the upstream ends is delivered, then the
// stream ends cleanly.
func TestStreamLegacyHeldBytesAtEnd(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/sse", model.TransportSSE, nil)
	resp, _ := openGet(t, f.url("sse"), nil)
	up.send(t, "event: endpoint\ndata: /m")
	close(up.events)
	rest, err := readEnd(t, resp.Body)
	if err != nil || rest != "event: endpoint\ndata: /m" {
		t.Fatalf("got %q, %v", rest, err)
	}
}

// A ResponseWriter wrapper the gateway does not know keeps the stream in the handler
// (no hijack), still flushing every event.
func TestStreamUnknownWrapperNotHijacked(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, func(w http.ResponseWriter) http.ResponseWriter {
		return &opaqueWriter{w}
	})
	resp, _ := openGet(t, f.url("mcp"), nil)
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		ev := fmt.Sprintf("data: %d\n\n", i)
		up.send(t, ev)
		if got := readEvent(t, br); got != ev {
			t.Fatalf("got %q, want %q", got, ev)
		}
	}
	if f.g.streams.len() != 0 || resp.Close {
		t.Fatalf("a stream under an unknown wrapper was hijacked")
	}
	up.CloseClientConnections()
	if _, err := readEnd(t, br); err == nil {
		t.Fatal("the client saw a clean end of a stream whose upstream died")
	}
}

type opaqueWriter struct{ http.ResponseWriter }

func (w *opaqueWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// An HTTP/1.0 client gets the stream close-delimited (no chunks).
func TestStreamHTTP10Client(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(streamTestTimeout))
	fmt.Fprintf(conn, "GET /gw/seg/mcp HTTP/1.0\r\nHost: %s\r\n\r\n", strings.TrimPrefix(f.srv.URL, "http://"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 {
		t.Fatalf("HTTP/1.0 response: %d TE %v CL %d", resp.StatusCode, resp.TransferEncoding, resp.ContentLength)
	}
	up.send(t, "data: a\n\n")
	up.send(t, "data: b\n\n")
	close(up.events)
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "data: a\n\ndata: b\n\n" {
		t.Fatalf("body %q, %v", b, err)
	}
}

// Gateway.Cleanup (config unload) cuts the streams it carries.
func TestStreamCleanupClosesStreams(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, nil)
	resp, _ := openGet(t, f.url("mcp"), nil)
	br := bufio.NewReader(resp.Body)
	up.send(t, "data: one\n\n")
	readEvent(t, br)
	if err := f.g.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := readEnd(t, br); err == nil {
		t.Error("the stream ended cleanly; want it cut")
	}
	select {
	case <-up.gone:
	case <-time.After(streamTestTimeout):
		t.Fatal("the upstream connection stayed open after Cleanup")
	}
	// A stream opened after Cleanup is not carried by the stopped gateway.
	resp2, _ := openGet(t, f.url("mcp"), nil)
	if _, err := readEnd(t, resp2.Body); err == nil {
		t.Error("a stream opened after Cleanup ended cleanly; want it cut")
	}
	if f.g.streams.len() != 0 {
		t.Errorf("%d streams registered after Cleanup", f.g.streams.len())
	}
}

// Unreachable and slow upstreams get the gateway's JSON-RPC errors naming the server.
func TestStreamUpstreamErrors(t *testing.T) {
	f := newGatewayFixture(t, "http://"+freeAddr(t)+"/mcp", model.TransportStreamableHTTP, nil)
	resp, err := http.Get(f.url("mcp"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "-32003") {
		t.Errorf("unreachable upstream: %d %s", resp.StatusCode, b)
	}

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	f = newGatewayFixture(t, slow.URL+"/mcp", model.TransportStreamableHTTP, nil)
	f.g.ResponseHeaderTimeout = caddy.Duration(200 * time.Millisecond)
	resp, err = http.Get(f.url("mcp"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(b), "-32004") {
		t.Errorf("slow upstream: %d %s", resp.StatusCode, b)
	}
}

// Opening and ending many streams, from either side, leaves no goroutine behind.
func TestStreamGoroutinesReturnToBaseline(t *testing.T) {
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, nil)
	// Warm up once, then take the baseline.
	resp, cancel := openGet(t, f.url("mcp"), nil)
	cancel()
	resp.Body.Close()
	<-up.gone
	waitFor(t, "the warm-up stream to be released", func() bool { return f.g.streams.len() == 0 })
	baseline := settledGoroutines()

	const n = 20
	var resps []*http.Response
	var cancels []context.CancelFunc
	for range n {
		resp, cancel := openGet(t, f.url("mcp"), nil)
		resps = append(resps, resp)
		cancels = append(cancels, cancel)
	}
	waitFor(t, "all streams hijacked", func() bool { return f.g.streams.len() == n })
	// Half end from the client side.
	for i := range n / 2 {
		cancels[i]()
		resps[i].Body.Close()
	}
	for range n / 2 {
		select {
		case <-up.gone:
		case <-time.After(streamTestTimeout):
			t.Fatal("the upstream did not see every client go away")
		}
	}
	// The other half from the upstream side.
	up.CloseClientConnections()
	for i := n / 2; i < n; i++ {
		readEnd(t, resps[i].Body)
	}
	waitFor(t, "all streams released", func() bool { return f.g.streams.len() == 0 })
	up.CloseClientConnections()
	var now int
	waitFor(t, "goroutines back to the baseline", func() bool { now = settledGoroutines(); return now <= baseline })
}

func settledGoroutines() int {
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	return runtime.NumGoroutine()
}

// curl -N sees each event as it is sent.
func TestStreamCurl(t *testing.T) {
	testenv.SkipIfShort(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("this test drives the real curl client, which is not installed (.ci/run installs it): %v", err)
	}
	up := startSSEUpstream(t)
	f := newGatewayFixture(t, up.URL+"/mcp", model.TransportStreamableHTTP, nil)
	ctx, cancel := context.WithTimeout(context.Background(), streamTestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, "-sS", "-N", "-H", "Accept: text/event-stream", f.url("mcp"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(out)
	for i := range 3 {
		ev := fmt.Sprintf("id: %d\ndata: curl\n\n", i)
		up.send(t, ev)
		if got := readEvent(t, br); got != ev {
			t.Fatalf("curl got %q, want %q", got, ev)
		}
	}
	close(up.events)
	rest, _ := readEnd(t, br)
	if err := cmd.Wait(); err != nil || rest != "" {
		var ee *exec.ExitError
		errors.As(err, &ee)
		t.Fatalf("curl: %v, trailing %q, stderr %q", err, rest, stderr.String())
	}
}
