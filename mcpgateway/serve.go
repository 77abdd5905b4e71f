package mcpgateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymcp/caddymcp/internal/jsonrpc"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// exchange is the per-request state of the gateway, pooled so the hot path allocates
// little: the body buffer and the inspection result.
type exchange struct {
	buf     []byte
	inspect jsonrpc.Inspection
}

var exchangePool = sync.Pool{New: func() any { return &exchange{buf: make([]byte, 0, 4096)} }}

// maxPooledBuffer keeps a rare huge request from pinning its buffer in the pool.
const maxPooledBuffer = 64 << 10

func (x *exchange) release() {
	if cap(x.buf) > maxPooledBuffer {
		x.buf = make([]byte, 0, 4096)
	}
	x.buf = x.buf[:0]
	exchangePool.Put(x)
}

// replayBody is the inspected request body (a view of the pooled buffer), handed on to
// the upstream. It is allocated per request, not pooled: net/http's transport writes
// request bodies from its own goroutine, which can still be reading after the handler
// returned (an upstream that answers before taking the whole body). Close, deferred
// by ServeHTTP to run before the buffer goes back to the pool, waits for a Read in
// flight and fails every later one, so the transport never reads a reused buffer.
type replayBody struct {
	mu     sync.Mutex
	r      bytes.Reader
	closed bool
}

var errBodyClosed = errors.New("mcp_gateway: request body read after the request ended")

func (b *replayBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	return b.r.Read(p)
}

func (b *replayBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.r.Reset(nil)
	b.mu.Unlock()
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	segment, sub, ep, ok := splitRoute(r.URL.Path, g.Prefix)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	defer g.accessLog.Take(w, r).Write()
	var aw *auditWriter // audit entry and metrics of this MCP request (audit.go)
	if g.obs != nil {
		aw = g.obs.begin(w, r)
		w = aw
		defer g.obs.end(aw, r)
	}
	if !g.hosts.allowHost(r.Host, localAddr(r)) {
		writeRPCError(w, http.StatusForbidden, "", codeForbidden, "host "+quote(r.Host)+" is not allowed (DNS-rebinding protection); list it in the gateway's allowed_hosts")
		return nil
	}
	if origin := r.Header.Get("Origin"); !g.hosts.allowOrigin(origin, r.Host) {
		writeRPCError(w, http.StatusForbidden, "", codeForbidden, "origin "+quote(origin)+" is not allowed; list it in the gateway's allowed_origins")
		return nil
	}
	server := g.registry.Lookup(segment)
	if server != nil && (ep == endpointConnect || ep == endpointConnectCallback || ep == endpointConnectMetadata) {
		g.serveConnect(w, r, server, segment, ep)
		return nil
	}
	if server == nil || !transportServes(server.Transport, ep) {
		writeRPCError(w, http.StatusNotFound, "", codeUnknownServer, "no MCP server at "+quote(r.URL.Path))
		return nil
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.mcp.server", server.Name)
	if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
		repl.Set("http.mcp.session_id", sid)
	}
	if !server.Enabled {
		writeRPCError(w, http.StatusServiceUnavailable, "", codeServerDisabled, "MCP server "+quote(server.Name)+" is disabled")
		return nil
	}
	if isPreflight(r) {
		answerPreflight(w, r, ep)
		return nil
	}
	if !checkRequestShape(w, r, ep, sub) {
		return nil
	}

	// Authentication runs before the body is read; authorization after inspection.
	var caller *principal.Caller
	var mcpPath string
	oauthUpstream := server.BackendAuth.Scheme == model.BackendAuthOAuth
	var subjectToken string
	if oauthUpstream && g.registry.UpstreamGrant(server.Name) == mcpregistry.OAuthGrantTokenExchange {
		subjectToken = subjectTokenOf(r, server) // authenticate removes the header
	}
	if g.auth != nil {
		mcpPath = g.Prefix + "/" + segment + "/mcp"
		if ep != endpointMCP {
			mcpPath = g.Prefix + "/" + segment + "/sse"
		}
		if caller = g.auth.authenticate(w, r, server, mcpPath, repl); caller == nil {
			return nil
		}
		if r.Method != http.MethodPost && !g.auth.allowStream(w, r, caller, server, mcpPath) {
			return nil
		}
	}
	if !g.checkSession(w, r, repl, ep) {
		return nil
	}
	if r.Method == http.MethodGet && g.limits != nil {
		var done func()
		var ok bool
		if r, done, ok = g.beginStream(w, r, caller, server); !ok {
			return nil
		}
		defer done()
	}
	var lw *listWriter
	var inspected *exchange
	aw0 := w // the answer before any list filter wraps it

	if r.Method == http.MethodPost {
		// Only a POST has a body to inspect; a GET is usually an SSE stream that may
		// stay open for hours and must not pin a pooled exchange (4 KiB+) meanwhile.
		x := exchangePool.Get().(*exchange)
		defer x.release()
		inspected = x
		// The legacy HTTP+SSE transport (2024-11-05) has no MCP headers: its POSTs are
		// not held to the streamable HTTP header rules (a go-sdk client's
		// server/discover probe over it carries _meta but no MCP-Protocol-Version, and
		// must reach the upstream to get the error that makes it fall back).
		if !g.readAndInspect(w, r, x, repl, ep != endpointMessage) {
			return nil
		}
		if aw != nil {
			aw.inspected(&x.inspect, x.buf)
		}
		// Runs before x.release: the upstream transport stops reading the buffer first.
		defer r.Body.Close()
		if caller != nil {
			if !g.auth.authorize(w, r, caller, server, mcpPath, &x.inspect) {
				return nil
			}
			if hasListCall(&x.inspect) {
				id := x.inspect.Messages[0].ID
				if x.inspect.Batch {
					id = ""
				}
				lw = newListWriter(w, caller.Grant, server.Name, id, g.logger)
			}
		}
	} else if caller != nil && r.Method == http.MethodGet && (ep == endpointSSE || r.Header.Get("Last-Event-ID") != "") {
		// GET streams that can carry list responses are filtered too: the legacy
		// transport answers every call on its /sse stream, and a streamable HTTP GET
		// resuming a POST's stream (Last-Event-ID) replays that POST's answers. They take
		// the ReverseProxy path, not the hijacked stream path (see forward). A plain
		// standalone GET stream carries no responses (MCP spec) and stays unfiltered.
		lw = newListWriter(w, caller.Grant, server.Name, "", g.logger)
	}
	var in *jsonrpc.Inspection
	var body []byte
	if oauthUpstream {
		if x := inspected; x != nil {
			in, body = &x.inspect, x.buf
		}
		if !g.upstreamAuthorization(aw0, r, repl, caller, server, segment, subjectToken, in, body) {
			return nil
		}
	}
	if lw != nil {
		if g.limits != nil {
			lw.budget, lw.ctx = g.limits.lists, r.Context()
		}
		// The filter reads plain bytes.
		r.Header.Set("Accept-Encoding", "identity")
		w = lw
		defer lw.finish()
	}

	if name, ok := strings.CutPrefix(server.Upstream, model.BuiltinScheme+":"); ok {
		h := g.registry.Builtin(name)
		if h == nil {
			writeRPCError(w, http.StatusBadGateway, "", codeUpstreamUnreachable, "builtin MCP server "+quote(name)+" is not running")
			return nil
		}
		if caller != nil {
			// Builtin servers (the registry's own) enforce the caller's UI scopes
			// themselves; upstream requests are left as they are.
			r = r.WithContext(principal.WithCaller(r.Context(), caller))
		}
		h.ServeHTTP(w, r)
		return nil
	}
	err := g.forward(w, r, server, segment, sub, ep)
	if oauthUpstream {
		if v, _ := repl.Get(upstreamRefusedKey); v == true && g.retryAfterRefresh(r, repl, caller, server, body) {
			err = g.forward(w, r, server, segment, sub, ep)
		}
		if v, _ := repl.Get(upstreamRefusedKey); v == true {
			g.answerUpstreamRefused(aw0, r, caller, server, segment, subjectToken, in, body)
		}
	}
	return err
}

// readAndInspect reads the bounded JSON-RPC body, checks it (and, if checkHeaders, the
// MCP headers against it), records placeholders, and replaces r.Body with the bytes
// read. It writes the error response itself and returns false when the request must
// stop here.
func (g *Gateway) readAndInspect(w http.ResponseWriter, r *http.Request, x *exchange, repl *caddy.Replacer, checkHeaders bool) bool {
	if r.ContentLength > g.MaxBodySize {
		writeTooLarge(w, g.MaxBodySize)
		return false
	}
	// The body read is bounded in time (limits.go); the controller stays on the stack.
	var rc *http.ResponseController
	if d := g.limits.bodyDeadline(r); d > 0 {
		rc = http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(d)) != nil {
			rc = nil
		}
	}
	body, err := readBounded(r.Body, x.buf, g.MaxBodySize)
	if rc != nil {
		_ = rc.SetReadDeadline(time.Time{})
	}
	x.buf = body
	if err != nil && isBodyTimeout(err) {
		writeBodyTimeout(w, g.limits.bodyTimeout)
		return false
	}
	if errors.Is(err, errTooLarge) {
		writeTooLarge(w, g.MaxBodySize)
		return false
	}
	if err != nil {
		writeRPCError(w, http.StatusBadRequest, "", jsonrpc.CodeParseError, "reading request body: "+err.Error())
		return false
	}
	if err := jsonrpc.Inspect(body, &x.inspect); err != nil {
		var rpcErr *jsonrpc.Error
		errors.As(err, &rpcErr)
		writeRPCError(w, http.StatusBadRequest, "", rpcErr.Code, rpcErr.Message)
		return false
	}
	first := &x.inspect.Messages[0]
	if checkHeaders {
		if err := jsonrpc.CheckHeaders(r.Header.Get("Mcp-Protocol-Version"), r.Header.Get("Mcp-Method"), r.Header.Get("Mcp-Name"), &x.inspect); err != nil {
			var rpcErr *jsonrpc.Error
			errors.As(err, &rpcErr)
			writeRPCError(w, http.StatusBadRequest, first.ID, rpcErr.Code, rpcErr.Message)
			return false
		}
	}
	setMessagePlaceholders(repl, &x.inspect)
	rb := new(replayBody)
	rb.r.Reset(body)
	r.Body = rb
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	return true
}

func setMessagePlaceholders(repl *caddy.Replacer, in *jsonrpc.Inspection) {
	first := &in.Messages[0]
	method := first.Method
	if in.Batch {
		method = batchMethods(in.Messages)
	}
	if method != "" {
		repl.Set("http.mcp.method", method)
	}
	if first.ID != "" && !in.Batch {
		repl.Set("http.mcp.request_id", first.ID)
	}
	if first.Name == "" || in.Batch {
		return
	}
	switch first.Method {
	case "tools/call":
		repl.Set("http.mcp.tool", first.Name)
	case "prompts/get":
		repl.Set("http.mcp.prompt", first.Name)
	default:
		repl.Set("http.mcp.resource", first.Name)
	}
}

// batchMethods names the methods of a batch, comma-separated, for logs.
func batchMethods(msgs []jsonrpc.Message) string {
	var b strings.Builder
	for i := range msgs {
		if msgs[i].Method == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(msgs[i].Method)
	}
	return b.String()
}

var errTooLarge = errors.New("body too large")

// readBounded appends all of r to buf, failing with errTooLarge once more than limit
// bytes arrive.
func readBounded(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, errTooLarge
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func transportServes(t model.Transport, ep endpoint) bool {
	if t == model.TransportSSE {
		return ep == endpointSSE || ep == endpointMessage
	}
	return ep == endpointMCP
}
