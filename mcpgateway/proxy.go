package mcpgateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/sse"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// The gateway proxies with the standard library's ReverseProxy over Caddy's own upstream
// transport (reverse_proxy's "http" transport: its dialer, keep-alives, TLS, HTTP/2).
// ReverseProxy strips hop-by-hop headers, streams bodies, flushes text/event-stream and
// unknown-length responses on every write, and passes statuses and headers through; it
// does less per request than Caddy's reverse_proxy handler (no load balancing, retries
// or per-request placeholder churn), and its copy buffer is ours to size.

// copyBufferSize sizes the buffer each response copy holds for its whole life: small,
// because an open SSE stream keeps one for hours.
const copyBufferSize = 8 << 10

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, copyBufferSize)
}

func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

var copyBuffers bufferPool

func (g *Gateway) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// forward already pointed the URL at the upstream; an empty Host makes the
			// outbound Host header the upstream's, which loopback servers require.
			pr.Out.Host = ""
			// Gateway token out, identity and backend credential in (outbound.go).
			g.prepareOutbound(pr.In, pr.Out.Header)
			pr.SetXForwarded()
		},
		Transport:      g.transport,
		ModifyResponse: g.modifyResponse,
		BufferPool:     &copyBuffers,
		ErrorHandler:   g.proxyError,
		ErrorLog:       zap.NewStdLog(g.logger.Named("proxy")),
	}
}

// modifyResponse seals the upstream's session id and keeps event streams untransformed.
func (g *Gateway) modifyResponse(res *http.Response) error {
	if err := upstreamRefusedToken(res); err != nil {
		return err
	}
	if err := g.sealResponseSession(res.Request, res.Header); err != nil {
		return err
	}
	return keepStreamsUntransformed(res)
}

// keepStreamsUntransformed marks event streams Cache-Control: no-transform, which Caddy's
// encode handler (and well-behaved intermediaries) honour: a compressed stream is held
// in the compressor's buffer, so events would reach the client late or in bursts.
func keepStreamsUntransformed(res *http.Response) error {
	if !isEventStream(res.Header.Get("Content-Type")) {
		return nil
	}
	cc := res.Header.Get("Cache-Control")
	switch {
	case cc == "":
		res.Header.Set("Cache-Control", "no-transform")
	case !strings.Contains(strings.ToLower(cc), "no-transform"):
		res.Header.Set("Cache-Control", cc+", no-transform")
	}
	return nil
}

// target is an upstream URL, parsed once.
type target struct {
	scheme, host, path, query string
	base                      *url.URL
}

type targetCache struct{ m sync.Map } // upstream URL → *target

func (c *targetCache) get(raw string) (*target, error) {
	if t, ok := c.m.Load(raw); ok {
		return t.(*target), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	t := &target{scheme: u.Scheme, host: u.Host, path: u.Path, query: u.RawQuery, base: u}
	c.m.Store(raw, t)
	return t, nil
}

// forward sends r to the server's upstream and streams the answer back.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, server *model.Server, segment, sub string, ep endpoint) error {
	t, err := g.targets.get(server.Upstream)
	if err != nil {
		writeRPCError(w, http.StatusBadGateway, "", codeUpstreamUnreachable, "MCP server "+quote(server.Name)+" has an invalid upstream URL")
		return nil
	}
	switch ep {
	case endpointMessage:
		r.URL.Path = g.messagePath(server.Name, t)
	default:
		r.URL.Path = t.path + sub
	}
	r.URL.RawPath = ""
	r.URL.Scheme, r.URL.Host = t.scheme, t.host
	if ep == endpointMessage && g.sessions != nil {
		// The client's query is the sealed sessionId; the upstream's own is inside.
		r.URL.RawQuery = joinQuery(t.query, upstreamQueryOf(r))
	} else {
		r.URL.RawQuery = joinQuery(t.query, stripClientCredentials(nil, r.URL.RawQuery, forwardClientCredentials(server)))
	}
	// A stream that must go through the list filter (ServeHTTP wrapped w, auth on)
	// stays off the hijacked path.
	_, filtered := w.(*listWriter)
	if (ep == endpointMCP || ep == endpointSSE) && !filtered && g.streamEligible(r, t) {
		var rewrite func(string) string
		if ep == endpointSSE {
			rewrite = g.endpointRewrite(r, server.Name, segment, t)
		}
		g.serveStream(w, r, t, rewrite)
		return nil
	}
	if ep == endpointSSE && r.Method == http.MethodGet {
		ew := &endpointWriter{ResponseWriter: w, rewrite: g.endpointRewrite(r, server.Name, segment, t)}
		g.proxy.ServeHTTP(ew, r)
		if ew.sse != nil {
			_ = ew.sse.Close() // the stream ended: release any half event held back
		}
		return nil
	}
	g.proxy.ServeHTTP(w, r)
	return nil
}

// messagePath is the upstream path that takes a legacy SSE server's POSTs: the one its
// latest endpoint event named, else "message" beside its SSE path.
func (g *Gateway) messagePath(server string, t *target) string {
	if p, ok := g.messagePaths.Load(server); ok {
		return p.(string)
	}
	return path.Join(path.Dir(t.path), "message")
}

// endpointRewrite returns the function that turns the URI in a legacy SSE server's
// endpoint event into the gateway's own message path, remembering the upstream's path.
// Its query (the upstream's session) is sealed for the caller of r (session.go).
func (g *Gateway) endpointRewrite(r *http.Request, server, segment string, t *target) func(string) string {
	public := g.Prefix + "/" + segment + "/message"
	bind := bindingFor(r, true)
	return func(uri string) string {
		ref, err := url.Parse(uri)
		if err != nil {
			return public
		}
		abs := t.base.ResolveReference(ref)
		g.messagePaths.Store(server, abs.Path)
		q, err := g.sealEndpointQuery(abs.RawQuery, &bind)
		if err != nil {
			g.logger.Warn("legacy SSE endpoint query cannot be sealed; its POSTs will be refused", zap.String("server", server), zap.Error(err))
			return public
		}
		if q == "" {
			return public
		}
		return public + "?" + q
	}
}

// endpointWriter rewrites the endpoint event of a legacy SSE stream; other responses
// (errors, JSON) pass through untouched.
type endpointWriter struct {
	http.ResponseWriter
	rewrite func(string) string
	sse     *sse.EndpointRewriter
}

func (w *endpointWriter) WriteHeader(code int) {
	if code == http.StatusOK && isEventStream(w.Header().Get("Content-Type")) {
		w.sse = sse.NewEndpointRewriter(w.ResponseWriter, w.rewrite)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *endpointWriter) Write(p []byte) (int, error) {
	if w.sse != nil {
		return w.sse.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *endpointWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func isEventStream(contentType string) bool {
	const want = "text/event-stream"
	return len(contentType) >= len(want) && equalFoldASCII(contentType[:len(want)], want)
}

func equalFoldASCII(a, b string) bool {
	for i := range len(a) {
		ca, cb := a[i]|0x20, b[i]|0x20
		if ca != cb {
			return false
		}
	}
	return true
}

// proxyError answers a failed round trip with a JSON-RPC error naming the server. The
// client sees no internal address; the operator's log has the cause.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		return // the client went away; nobody is listening
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if errors.Is(err, errUpstreamRefusedToken) {
		if repl != nil {
			repl.Set(upstreamRefusedKey, true) // answered by ServeHTTP (answerUpstreamRefused)
		}
		return
	}
	var name, id string
	if repl != nil {
		name, _ = repl.GetString("http.mcp.server")
		id, _ = repl.GetString("http.mcp.request_id")
	}
	status, code, what := http.StatusBadGateway, codeUpstreamUnreachable, "unreachable"
	var ne net.Error
	if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		status, code, what = http.StatusGatewayTimeout, codeUpstreamTimeout, "not answering in time"
	}
	g.logger.Warn("upstream request failed", zap.String("server", name), zap.Int("status", status), zap.Error(err))
	writeRPCError(w, status, id, code, "MCP server "+quote(name)+" is "+what)
}
