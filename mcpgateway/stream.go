package mcpgateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/sse"
)

// The dedicated path for long-lived GET event streams.
//
// An MCP client keeps a GET stream open for the whole session (the streamable HTTP
// transport's standalone stream, or the legacy transport's /sse), usually idle for
// hours. Through httputil.ReverseProxy such a stream holds the handler goroutine on its
// deep stack (Caddy's middleware, ReverseProxy, the copy loop), net/http's server
// buffers and background-read goroutine, and http.Transport's two goroutines and
// buffers per upstream connection: about 70 KiB per stream.
//
// Here the gateway dials the upstream itself, writes the request ReverseProxy would have
// written (with Connection: close), and reads the response head through a small buffer.
// Anything but a 200 event stream is relayed through the ResponseWriter as ReverseProxy
// relays it. An event stream gets its header written and flushed through the
// ResponseWriter (so Caddy's access log and metrics see the 200); then the gateway takes
// the client connection (Hijack), the handler returns, and the stream is carried by two
// small goroutines started afresh: pump copies upstream to client, watch reads the
// client connection to notice it going away. Idle, a stream holds the two connections,
// the two small stacks and the upstream read buffer (streamReadBufferSize); the copy
// buffer is taken from the pool only while bytes move.
//
// Framing after the hijack continues what net/http announced: chunked for an HTTP/1.1
// client, close-delimited for HTTP/1.0. A stream that ends cleanly upstream ends with the
// last chunk; one that breaks (upstream killed, reset) is cut without it, so the client
// sees the truncation, as through ReverseProxy (which aborts the response). The response
// also carries Connection: close, since the connection cannot go back to net/http.
//
// The path applies only where it is equivalent to ReverseProxy's: GET without a body
// over HTTP/1.x or HTTP/2, to a plain http:// upstream reached without a forward proxy,
// no protocol upgrade asked for. Hijacking needs an HTTP/1.x connection, every
// ResponseWriter wrapped around net/http's to pass bytes through unchanged (Caddy's own
// recorders and timeouts wrappers, not buffering), no server write_timeout and no
// write_min_rate. Otherwise, and always for HTTP/2 (a stream lives as long as its
// handler), the stream is copied through the ResponseWriter in the handler goroutine
// (copyStream), which still saves the transport's two goroutines and buffers and
// ReverseProxy's copy buffer: between events it waits on the 1 KiB upstream read
// buffer alone.
//
// What changes for the rest of Caddy: the handler returns at the hijack, so the access
// log entry and the request metrics are written then, with status 200, the time to the
// response head as duration and size 0 (the stream's bytes are not counted). After the
// hijack, writes to the client keep the server's write idle timeout (write_idle_timeout)
// but are no longer seen by Caddy's wrappers. Gateway.Cleanup (config unload or reload)
// closes the streams it carries, as reverse_proxy does for upgraded connections; the
// client sees the stream cut and reconnects. Streams copied in their handler (HTTP/2,
// unknown wrappers) end with it; https upstreams stay on ReverseProxy.

// streamReadBufferSize is the upstream read buffer an open stream keeps for its life.
// Response heads longer than this still parse (textproto joins the pieces); bodies are
// read through it a chunk header at a time, and chunk data bigger than it goes straight
// into the pooled copy buffer.
const streamReadBufferSize = 1 << 10

// defaultMaxResponseHeaderSize bounds the upstream's response head, as http.Transport
// does by default.
const defaultMaxResponseHeaderSize = 10 << 20

// openStreams counts the streams carried by hijacked connections in this process.
var openStreams atomic.Int64

// streamEligible reports whether r (already pointed at the upstream t by forward) can
// take the dedicated stream path.
func (g *Gateway) streamEligible(r *http.Request, t *target) bool {
	if r.Method != http.MethodGet || (r.ProtoMajor != 1 && r.ProtoMajor != 2) || r.ContentLength != 0 || t.scheme != "http" || t.host == "" {
		return false
	}
	// A protocol upgrade is ReverseProxy's business (it relays the 101 and the bytes).
	if headerHasToken(r.Header["Connection"], "upgrade") {
		return false
	}
	// ReverseProxy re-encodes a query it cannot parse; leave those to it.
	if queryNeedsCleaning(r.URL.RawQuery) {
		return false
	}
	// An upstream reached through a forward proxy (HTTP_PROXY, network_proxy) is the
	// transport's.
	if g.transport != nil && g.transport.Transport != nil && g.transport.Transport.Proxy != nil {
		if u, err := g.transport.Transport.Proxy(r); err != nil || u != nil {
			return false
		}
	}
	return true
}

// serveStream forwards the GET r to the plain-http upstream t. rewrite, if not nil,
// rewrites the endpoint event of a legacy SSE stream.
func (g *Gateway) serveStream(w http.ResponseWriter, r *http.Request, t *target, rewrite func(string) string) {
	ctx := r.Context()
	out := outboundRequest(r)
	g.prepareOutbound(r, out.Header) // as ReverseProxy's Rewrite does

	up, err := g.dialUpstream(ctx, upstreamAddr(t))
	if err != nil {
		if ctx.Err() == nil {
			g.proxyError(w, r, err)
		}
		return
	}
	// Until the stream is handed over, the client going away ends the exchange.
	stopWatch := context.AfterFunc(ctx, func() { _ = up.Close() })
	handedOver := false
	defer func() {
		if !handedOver {
			stopWatch()
			_ = up.Close()
		}
	}()

	lr := &headLimitReader{r: up, n: g.maxResponseHeaderSize()}
	br := bufio.NewReaderSize(lr, streamReadBufferSize)
	resp, err := g.roundTrip(w, out, up, br)
	if err != nil {
		if ctx.Err() == nil {
			g.proxyError(w, r, err)
		}
		return
	}
	lr.n = -1 // the head is read: no limit on the body
	if err := upstreamRefusedToken(resp); err != nil {
		g.proxyError(w, r, err)
		return
	}
	if err := g.sealResponseSession(r, resp.Header); err != nil {
		g.proxyError(w, r, err)
		return
	}
	_ = keepStreamsUntransformed(resp)

	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 || len(resp.Trailer) > 0 ||
		!isEventStream(resp.Header.Get("Content-Type")) {
		g.relay(w, r, resp, rewrite)
		return
	}

	// An event stream: send the head through the ResponseWriter.
	inner, idle, hijack := hijackable(w, r)
	h := w.Header()
	removeHopByHopHeaders(resp.Header)
	copyHeader(h, resp.Header)
	encoding := strings.Join(h.Values("Content-Encoding"), ",")
	if hijack {
		h.Set("Connection", "close")
	}
	w.WriteHeader(http.StatusOK)
	// The head is committed with these headers. A wrapper that buffered it, or chose to
	// encode the body (encode honours the no-transform set above, but a matcher or a
	// future version might not), or a header op that framed the body otherwise, rules
	// the hijack out.
	hijack = hijack && !buffered(w) && strings.Join(h.Values("Content-Encoding"), ",") == encoding &&
		h.Get("Content-Length") == "" && h.Get("Transfer-Encoding") == ""
	if err := http.NewResponseController(w).Flush(); err != nil {
		return // the client is gone
	}
	// The body reader over br, without the http.Response (which would pin the head).
	var body io.Reader = br
	upstreamChunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
	if upstreamChunked {
		body = httputil.NewChunkedReader(br)
	}

	if hijack {
		if !stopWatch() {
			return // the client is gone (and the watch closed the upstream)
		}
		client, brw, err := http.NewResponseController(inner).Hijack()
		if err == nil {
			handedOver = true
			if n := brw.Reader.Buffered(); n > 0 {
				// Bytes the client sent after its GET (pipelining). The response says
				// Connection: close, so the client must not expect them answered.
				g.logger.Debug("discarding bytes the client sent after an event-stream GET", zap.Int("bytes", n))
			}
			s := &stream{
				g:               g,
				client:          client,
				upstream:        up,
				br:              br,
				body:            body,
				upstreamChunked: upstreamChunked,
				chunked:         r.ProtoAtLeast(1, 1),
				idle:            idle,
				gauge:           g.obs.streamGauge(r),
			}
			if rewrite != nil {
				s.rewriter = sse.NewEndpointRewriter(chunkFramer{s}, rewrite)
			}
			if s.ticket = ticketFrom(r); s.ticket != nil && !s.ticket.handOver(s.close) {
				s.ticket = nil // closed meanwhile (server gone, token expired)
				s.close()
				return
			}
			s.start()
			return
		}
		g.logger.Debug("hijacking an event stream failed; copying it in the handler", zap.Error(err))
		// The client watch was stopped; renew it for the copy below.
		stopWatch = context.AfterFunc(ctx, func() { _ = up.Close() })
	}
	g.copyStream(w, r, br, body, rewrite)
}

// roundTrip writes the request to the upstream and reads the response head, relaying
// informational (1xx) responses to the client as ReverseProxy does.
func (g *Gateway) roundTrip(w http.ResponseWriter, out *http.Request, up net.Conn, br *bufio.Reader) (*http.Response, error) {
	if err := out.Write(up); err != nil {
		return nil, err
	}
	if d := time.Duration(g.ResponseHeaderTimeout); d > 0 {
		_ = up.SetReadDeadline(time.Now().Add(d))
	}
	for range 100 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		switch code := resp.StatusCode; {
		case code == http.StatusSwitchingProtocols:
			return nil, errors.New("upstream switched protocols, which was not requested")
		case code >= 100 && code < 200:
			h := w.Header()
			copyHeader(h, resp.Header)
			w.WriteHeader(code)
			clear(h)
			continue
		}
		if g.ResponseHeaderTimeout > 0 {
			_ = up.SetReadDeadline(time.Time{})
		}
		return resp, nil
	}
	return nil, errors.New("upstream sent too many informational responses")
}

// relay answers with resp as ReverseProxy would: status, headers without hop-by-hop
// ones, the body (flushed as it comes for event streams and bodies of unknown length),
// trailers. rewrite, if not nil, rewrites the endpoint event of a 200 event stream.
func (g *Gateway) relay(w http.ResponseWriter, r *http.Request, resp *http.Response, rewrite func(string) string) {
	removeHopByHopHeaders(resp.Header)
	h := w.Header()
	copyHeader(h, resp.Header)
	eventStream := isEventStream(resp.Header.Get("Content-Type"))
	var rw *sse.EndpointRewriter
	if rewrite != nil && resp.StatusCode == http.StatusOK && eventStream {
		rw = sse.NewEndpointRewriter(w, rewrite)
		h.Del("Content-Length") // the rewrite changes it
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	err := copyFlushing(w, resp.Body, resp.ContentLength == -1 || eventStream, rw)
	if rw != nil && err == nil {
		err = rw.Close()
	}
	if err != nil {
		g.abort(r, err)
	}
	if len(resp.Trailer) > 0 {
		_ = http.NewResponseController(w).Flush()
		if len(resp.Trailer) == announced {
			copyHeader(h, resp.Trailer)
			return
		}
		for k, vv := range resp.Trailer {
			for _, v := range vv {
				h.Add(http.TrailerPrefix+k, v)
			}
		}
	}
}

// copyStream copies an event stream's body (read from the upstream through br) through
// the ResponseWriter, flushing every piece: the path of HTTP/2 clients, whose streams
// cannot be hijacked, and the fallback when an HTTP/1.x connection cannot be. Like pump,
// it waits for the next event on br alone and holds a copy buffer only while bytes move.
func (g *Gateway) copyStream(w http.ResponseWriter, r *http.Request, br *bufio.Reader, body io.Reader, rewrite func(string) string) {
	var rw *sse.EndpointRewriter
	var dst io.Writer = w
	if rewrite != nil {
		rw = sse.NewEndpointRewriter(w, rewrite)
		dst = rw
	}
	rc := http.NewResponseController(w)
	var err error
	for err == nil {
		// Idle here. At the upstream's end, the Read below says whether the end was
		// clean (io.EOF) or a break (a chunked body cut before its last chunk).
		_, _ = br.Peek(1)
		buf := copyBuffers.Get()
		var n int
		n, err = body.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			} else if ferr := rc.Flush(); ferr != nil {
				err = ferr
			}
		}
		copyBuffers.Put(buf)
	}
	if err == io.EOF {
		err = nil
	}
	if rw != nil && err == nil {
		err = rw.Close()
		_ = http.NewResponseController(w).Flush()
	}
	if err != nil {
		g.abort(r, err)
	}
}

// copyFlushing copies body to w (through rw when not nil), flushing after every write
// if flush is set. It returns nil at the body's EOF.
func copyFlushing(w http.ResponseWriter, body io.Reader, flush bool, rw *sse.EndpointRewriter) error {
	var dst io.Writer = w
	if rw != nil {
		dst = rw
	}
	rc := http.NewResponseController(w)
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				if ferr := rc.Flush(); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// abort ends a response whose body copy failed, as ReverseProxy does: the connection is
// cut so the client sees the truncation rather than a complete response.
func (g *Gateway) abort(r *http.Request, err error) {
	if r.Context().Err() == nil {
		g.logger.Debug("copying an upstream response failed", zap.Error(err))
	}
	panic(http.ErrAbortHandler)
}

// hijackable reports whether the response for r may be taken over after its head: w
// must be net/http's own ResponseWriter or wrap it only in writers known to pass bytes
// through unchanged, and the server must not bound the response by time or rate in ways
// the stream could not keep. It returns net/http's writer and the write idle timeout to
// apply to every write after the hijack (0: none).
func hijackable(w http.ResponseWriter, r *http.Request) (inner http.ResponseWriter, idle time.Duration, ok bool) {
	if srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); srv != nil && srv.WriteTimeout > 0 {
		return nil, 0, false
	}
	if _, iw := caddyhttp.IdleTimeoutsFromContext(r.Context()); iw != nil {
		if iw.Deadline.MinRate > 0 || !iw.Deadline.HardDeadline.IsZero() {
			return nil, 0, false
		}
		idle = iw.Deadline.Timeout
	}
	for depth := 0; depth < 32; depth++ {
		if aw, ok := w.(*auditWriter); ok { // the gateway's own recorder passes bytes through
			w = aw.ResponseWriter
			continue
		}
		pkg := typePkg(w)
		if pkg == "net/http" {
			if _, ok := w.(http.Hijacker); ok {
				return w, idle, true
			}
			return nil, 0, false
		}
		if !passThroughPkgs[pkg] {
			return nil, 0, false
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil, 0, false
		}
		w = u.Unwrap()
	}
	return nil, 0, false
}

// passThroughPkgs are the packages whose ResponseWriter wrappers leave the body alone
// once the head is written: caddyhttp's recorders (access log, metrics; a buffering one
// is caught by buffered), idle-timeout and read-deadline wrappers; the headers
// handler's deferred header operations (applied at WriteHeader); encode, when it did
// not choose to encode (which shows as Content-Encoding in the committed head).
var passThroughPkgs = map[string]bool{
	"github.com/caddyserver/caddy/v2/modules/caddyhttp":         true,
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers": true,
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/encode":  true,
}

func typePkg(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath()
}

// buffered reports whether a writer in w's chain decided to buffer the response.
func buffered(w http.ResponseWriter) bool {
	for depth := 0; depth < 32 && w != nil; depth++ {
		if b, ok := w.(interface{ Buffered() bool }); ok && b.Buffered() {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}

// stream is an event stream carried by a hijacked client connection.
type stream struct {
	g        *Gateway
	client   net.Conn
	upstream net.Conn
	br       *bufio.Reader // the upstream connection's read buffer
	body     io.Reader     // the response body over br (de-chunked if need be)
	rewriter *sse.EndpointRewriter
	idle     time.Duration // write idle timeout towards the client (0: none)

	upstreamChunked bool // the upstream body is chunked: its EOF before the last chunk is a break
	chunked         bool // the client's body is chunked (HTTP/1.1)

	closed atomic.Bool
	gauge  prometheus.Gauge // caddy_mcp_open_streams of its server (nil: no metrics)
	ticket *streamTicket    // the stream's place under the limits (nil: none)
}

func (s *stream) start() {
	if !s.g.streams.add(s) {
		s.close() // the gateway was cleaned up meanwhile
		return
	}
	openStreams.Add(1)
	if s.gauge != nil {
		s.gauge.Inc()
	}
	go s.pump()
	go s.watch()
}

// frameHead is the room left before the data in the copy buffer for a chunk header:
// up to 8 hex digits and CRLF.
const frameHead = 10

// pump copies the upstream's body to the client until either ends. A copy buffer is
// held only while bytes move: between events the goroutine waits in Peek, on the small
// upstream read buffer alone.
func (s *stream) pump() {
	clean := false
	defer func() { s.finish(clean) }()
	for {
		if _, err := s.br.Peek(1); err != nil {
			// EOF ends a close-delimited body; a chunked one must end with its last chunk.
			clean = err == io.EOF && !s.upstreamChunked
			return
		}
		buf := copyBuffers.Get()
		n, err := s.body.Read(buf[frameHead : len(buf)-2])
		var werr error
		if n > 0 {
			werr = s.send(buf, n)
		}
		copyBuffers.Put(buf)
		if werr != nil {
			return
		}
		if err != nil {
			clean = err == io.EOF
			return
		}
	}
}

// send writes the n bytes at buf[frameHead:] to the client: through the endpoint
// rewriter until it is done, then framed in place as one chunk.
func (s *stream) send(buf []byte, n int) error {
	data := buf[frameHead : frameHead+n]
	if s.rewriter != nil {
		_, err := s.rewriter.Write(data)
		if s.rewriter.Done() {
			s.rewriter = nil // passes everything through from now on: drop it
		}
		return err
	}
	if !s.chunked {
		return s.write(data)
	}
	var hex [8]byte
	h := strconv.AppendUint(hex[:0], uint64(n), 16)
	start := frameHead - len(h) - 2
	copy(buf[start:], h)
	buf[frameHead-2], buf[frameHead-1] = '\r', '\n'
	buf[frameHead+n], buf[frameHead+n+1] = '\r', '\n'
	return s.write(buf[start : frameHead+n+2])
}

// write writes b to the client under the write idle timeout.
func (s *stream) write(b []byte) error {
	if s.idle > 0 {
		_ = s.client.SetWriteDeadline(time.Now().Add(s.idle))
	}
	_, err := s.client.Write(b)
	return err
}

// chunkFramer is the endpoint rewriter's destination: every Write becomes one chunk
// (or goes as is to an HTTP/1.0 client).
type chunkFramer struct{ s *stream }

func (f chunkFramer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !f.s.chunked {
		return len(p), f.s.write(p)
	}
	b := make([]byte, 0, len(p)+20)
	b = strconv.AppendUint(b, uint64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	b = append(b, "\r\n"...)
	return len(p), f.s.write(b)
}

var lastChunk = []byte("0\r\n\r\n")

// finish ends the stream: after a clean end of the upstream body the client's body ends
// properly (held-back bytes, last chunk); after a break it is cut.
func (s *stream) finish(clean bool) {
	if clean && !s.closed.Load() {
		var err error
		if s.rewriter != nil {
			err = s.rewriter.Close()
		}
		if err == nil && s.chunked {
			_ = s.write(lastChunk)
		}
	}
	s.close()
}

// watch reads the client connection until it fails: the client closed it (or sent
// garbage the gateway discards; a GET stream's client has nothing more to say).
func (s *stream) watch() {
	defer s.close()
	buf := make([]byte, 16)
	for {
		if _, err := s.client.Read(buf); err != nil {
			return
		}
	}
}

// close closes both connections, which ends both goroutines.
func (s *stream) close() {
	if s.closed.Swap(true) {
		return
	}
	_ = s.client.Close()
	_ = s.upstream.Close()
	if s.ticket != nil {
		s.ticket.release()
	}
	if s.g.streams.remove(s) {
		openStreams.Add(-1)
		if s.gauge != nil {
			s.gauge.Dec()
		}
	}
}

// streamSet is the gateway's open hijacked streams, closed by Cleanup: once the config
// that started them is unloaded, nothing else would end an idle stream whose client and
// upstream both stay connected (the same policy as reverse_proxy's for upgraded
// connections).
type streamSet struct {
	mu      sync.Mutex
	open    map[*stream]struct{}
	stopped bool
}

func (ss *streamSet) add(s *stream) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.stopped {
		return false
	}
	if ss.open == nil {
		ss.open = make(map[*stream]struct{})
	}
	ss.open[s] = struct{}{}
	return true
}

func (ss *streamSet) remove(s *stream) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	_, ok := ss.open[s]
	delete(ss.open, s)
	return ok
}

func (ss *streamSet) len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.open)
}

// closeAll closes every open stream and refuses new ones.
func (ss *streamSet) closeAll() {
	ss.mu.Lock()
	ss.stopped = true
	all := make([]*stream, 0, len(ss.open))
	for s := range ss.open {
		all = append(all, s)
	}
	ss.mu.Unlock()
	for _, s := range all {
		s.close()
	}
}

// outboundRequest is the request ReverseProxy (with the gateway's Rewrite) would send
// for r, whose URL forward already pointed at the upstream, plus Connection: close.
func outboundRequest(r *http.Request) *http.Request {
	out := r.Clone(r.Context())
	out.Body = nil
	out.ContentLength = 0
	out.Close = true // the connection is this stream's alone
	out.Host = ""    // the Host header is the upstream's
	out.RequestURI = ""
	h := out.Header
	if h == nil {
		h = make(http.Header)
		out.Header = h
	}
	removeHopByHopHeaders(h)
	if headerHasToken(r.Header["Te"], "trailers") {
		h.Set("Te", "trailers")
	}
	h.Del("Forwarded")
	h.Del("X-Forwarded-For")
	h.Del("X-Forwarded-Host")
	h.Del("X-Forwarded-Proto")
	// httputil.ProxyRequest.SetXForwarded, after Rewrite dropped the client's values.
	if clientIP, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h.Set("X-Forwarded-For", clientIP)
	}
	h.Set("X-Forwarded-Host", r.Host)
	if r.TLS == nil {
		h.Set("X-Forwarded-Proto", "http")
	} else {
		h.Set("X-Forwarded-Proto", "https")
	}
	if _, ok := h["User-Agent"]; !ok {
		h.Set("User-Agent", "") // no Go default User-Agent
	}
	return out
}

// hopHeaders are removed when proxying (RFC 9110 section 7.6.1), as by httputil.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

func removeHopByHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = strings.TrimSpace(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, f := range hopHeaders {
		h.Del(f)
	}
}

func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// headerHasToken reports whether a comma-separated header's values hold token
// (case-insensitively).
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// queryNeedsCleaning reports whether ReverseProxy would re-encode the query (see
// httputil's cleanQueryParams): semicolons, bad escapes, too many parameters, or a
// GODEBUG setting that changes the rules.
func queryNeedsCleaning(q string) bool {
	if q == "" {
		return false
	}
	if godebugQueryParams || strings.Count(q, "&") >= 10000 {
		return true
	}
	for i := 0; i < len(q); {
		switch q[i] {
		case ';':
			return true
		case '%':
			if i+2 >= len(q) || !ishex(q[i+1]) || !ishex(q[i+2]) {
				return true
			}
			i += 3
		default:
			i++
		}
	}
	return false
}

var godebugQueryParams = strings.Contains(os.Getenv("GODEBUG"), "urlmaxqueryparams")

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// upstreamAddr is host:port for a plain-http upstream.
func upstreamAddr(t *target) string {
	if t.base != nil && t.base.Port() == "" {
		return net.JoinHostPort(t.base.Hostname(), "80")
	}
	return t.host
}

// dialUpstream connects with the upstream transport's dialer (dial timeout, keep-alive,
// resolver and local address as configured), or a plain dialer with the dial timeout.
func (g *Gateway) dialUpstream(ctx context.Context, addr string) (net.Conn, error) {
	if g.transport != nil && g.transport.Transport != nil && g.transport.Transport.DialContext != nil {
		return g.transport.Transport.DialContext(ctx, "tcp", addr)
	}
	d := net.Dialer{Timeout: time.Duration(g.DialTimeout)}
	return d.DialContext(ctx, "tcp", addr)
}

func (g *Gateway) maxResponseHeaderSize() int64 {
	if g.transport != nil && g.transport.MaxResponseHeaderSize > 0 {
		return g.transport.MaxResponseHeaderSize
	}
	return defaultMaxResponseHeaderSize
}

// headLimitReader bounds the bytes read while n >= 0 (the response head).
type headLimitReader struct {
	r net.Conn
	n int64
}

var errHeadTooLarge = errors.New("upstream response head too large")

func (l *headLimitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
