package mcpgateway

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddymcp/caddymcp/internal/jsonrpc"
)

// AuditConfig configures the audit log: one entry per MCP request through the gateway,
// at Info level on the logger named http.handlers.mcp_gateway.audit (AuditLoggerName;
// select it in Caddy's logging config with `include http.handlers.mcp_gateway.audit`). Entries name the caller (subject, client id, groups), the
// server, the JSON-RPC method(s), the tool, prompt or resource, the request id, the
// decision (allow, deny, error, unauthenticated), the HTTP status sent, the latency, the
// session id and the client IP. They never contain tokens; tool arguments only with
// IncludeArguments. Audit is on unless Disabled.
//
// A JSON-RPC batch (protocol 2025-03-26) is still one entry, since it is one HTTP
// request with one status and one decision; its method field lists the methods, and a
// calls field lists every message in order as {method, id, tool|prompt|resource} (id
// as the raw JSON sent, absent for notifications), so a tools/call inside a batch is as
// visible as one sent alone. Arguments are recorded only for a single tools/call.
type AuditConfig struct {
	// Disabled turns the audit log off (Caddyfile: `audit off`).
	Disabled bool `json:"disabled,omitempty"`

	// IncludeArguments adds the arguments of tools/call requests to the entries, cut
	// at 4 KiB. They may hold secrets or personal data: off by default.
	IncludeArguments bool `json:"include_arguments,omitempty"`
}

// maxAuditArguments bounds the tool arguments an audit entry carries.
const maxAuditArguments = 4 << 10

// AuditLoggerName is the audit logger's name: the handler's own logger with the
// sub-name "audit", as Caddy names the HTTP access log http.log.access. Caddy's
// logging config selects it with `include http.handlers.mcp_gateway.audit`.
const AuditLoggerName = "http.handlers.mcp_gateway.audit"

// observer is the gateway's per-request bookkeeping: audit entry and metrics.
type observer struct {
	audit   *zap.Logger // nil: audit off
	args    bool
	metrics *gatewayMetrics // never nil once provisioned
}

func newObserver(ctx caddy.Context, cfg *AuditConfig) (*observer, error) {
	m, err := newGatewayMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return nil, err
	}
	o := &observer{metrics: m}
	if cfg == nil || !cfg.Disabled {
		o.audit = ctx.Logger().Named("audit")
		o.args = cfg != nil && cfg.IncludeArguments
	}
	return o, nil
}

// auditWriter records what the response was: status, the gateway's own JSON-RPC error
// code if it answered with one, and when an event stream's head went out. It passes
// everything through (stream.go's hijack check looks through it).
type auditWriter struct {
	http.ResponseWriter
	o       *observer
	start   time.Time
	head    time.Time // when an event stream's head was written
	status  int
	code    int              // the gateway's error code, 0 if none
	stream  prometheus.Gauge // incremented while a GET event stream is open here
	method  string           // JSON-RPC method label, set after inspection
	args    []byte           // tools/call arguments (IncludeArguments), owned copy
	calls   []auditCall      // the messages of a batch
	getting bool             // a GET request
	repl    *caddy.Replacer  // the request's replacer (placeholders set by ServeHTTP)
}

var auditWriters = sync.Pool{New: func() any { return new(auditWriter) }}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		if w.getting && code == http.StatusOK && isEventStream(w.Header().Get("Content-Type")) {
			w.head = time.Now()
			if w.o.metrics != nil {
				w.stream = w.o.metrics.openStreams.WithLabelValues(w.serverLabel())
				w.stream.Inc()
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Flush passes flushes through (some handlers assert http.Flusher directly).
func (w *auditWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serverLabel is the registry server the request was routed to, or "unknown".
func (w *auditWriter) serverLabel() string {
	if w.repl != nil {
		if s, _ := w.repl.GetString("http.mcp.server"); s != "" {
			return s
		}
	}
	return "unknown"
}

// noteRPCError tells the auditWriter in w's chain, if any, that the gateway answered
// with its own error code. The first code wins.
func noteRPCError(w http.ResponseWriter, code int) {
	for depth := 0; depth < 8 && w != nil; depth++ {
		if aw, ok := w.(*auditWriter); ok {
			if aw.code == 0 {
				aw.code = code
			}
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// begin wraps w for one MCP request.
func (o *observer) begin(w http.ResponseWriter, r *http.Request) *auditWriter {
	aw := auditWriters.Get().(*auditWriter)
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	*aw = auditWriter{ResponseWriter: w, o: o, start: time.Now(), getting: r.Method == http.MethodGet, repl: repl}
	return aw
}

// inspected records what the audit and metrics need from a POST's inspected body.
func (w *auditWriter) inspected(in *jsonrpc.Inspection, body []byte) {
	if len(in.Messages) == 0 {
		return
	}
	if in.Batch {
		w.method = "batch"
		if w.o.audit != nil {
			w.calls = make([]auditCall, len(in.Messages))
			for i := range in.Messages {
				m := &in.Messages[i]
				w.calls[i] = auditCall{method: m.Method, id: m.ID, name: m.Name}
			}
		}
	} else {
		w.method = methodLabel(in.Messages[0].Method)
	}
	if w.o.args && w.o.audit != nil && !in.Batch && in.Messages[0].Method == "tools/call" {
		w.args = toolArguments(body)
	}
}

// toolArguments extracts params.arguments of a tools/call body, cut at
// maxAuditArguments (then no longer valid JSON, and marked with a trailing "…").
func toolArguments(body []byte) []byte {
	var msg struct {
		Params struct {
			Arguments json.RawMessage `json:"arguments"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || len(msg.Params.Arguments) == 0 {
		return nil
	}
	a := msg.Params.Arguments
	if len(a) > maxAuditArguments {
		cut := maxAuditArguments
		for cut > 0 && !utf8.RuneStart(a[cut]) {
			cut--
		}
		a = append(a[:cut:cut], "…"...)
	}
	return a
}

// decision classifies the answer from the gateway's own error code: none means the
// request was let through (whatever the upstream answered).
func decision(code int) string {
	switch code {
	case 0:
		return "allow"
	case codeUnauthorized:
		return "unauthenticated"
	case codeInsufficientScope, codeForbidden:
		return "deny"
	}
	return "error"
}

// end records the request: metrics, then the audit entry. It runs deferred at the end of
// ServeHTTP (for a hijacked event stream, right after its head went out).
func (o *observer) end(w *auditWriter, r *http.Request) {
	now := time.Now()
	latency := now.Sub(w.start)
	if !w.head.IsZero() {
		latency = w.head.Sub(w.start)
	}
	if w.stream != nil {
		w.stream.Dec()
	}
	repl := w.repl
	server := w.serverLabel()
	method := w.method
	if r.Method != http.MethodPost {
		method = httpMethodLabel(r.Method)
	} else if method == "" {
		method = "other"
	}
	dec := decision(w.code)
	if m := o.metrics; m != nil {
		m.observe(server, method, dec, latency.Seconds())
		if kind := upstreamErrorKind(w.code); kind != "" {
			m.upstreamErrors.WithLabelValues(server, kind).Inc()
		}
	}
	if o.audit != nil {
		if ce := o.audit.Check(zapcore.InfoLevel, "mcp request"); ce != nil {
			ce.Write(auditFields(w, r, repl, server, dec, latency)...)
		}
	}
	*w = auditWriter{}
	auditWriters.Put(w)
}

func auditFields(w *auditWriter, r *http.Request, repl *caddy.Replacer, server, dec string, latency time.Duration) []zap.Field {
	get := func(key string) string {
		if repl == nil {
			return ""
		}
		s, _ := repl.GetString(key)
		return s
	}
	if server == "unknown" {
		server = ""
	}
	status := w.status
	fields := make([]zap.Field, 0, 16)
	fields = append(fields,
		zap.String("subject", get("http.mcp.auth.subject")),
		zap.String("client_id", get("http.mcp.auth.client_id")),
	)
	if g := get("http.mcp.auth.groups"); g != "" {
		fields = append(fields, zap.Strings("groups", strings.Split(g, ",")))
	} else {
		fields = append(fields, zap.Strings("groups", nil))
	}
	fields = append(fields,
		zap.String("server", server),
		zap.String("http_method", r.Method),
		zap.String("method", get("http.mcp.method")),
	)
	if v := get("http.mcp.tool"); v != "" {
		fields = append(fields, zap.String("tool", v))
	} else if v := get("http.mcp.prompt"); v != "" {
		fields = append(fields, zap.String("prompt", v))
	} else if v := get("http.mcp.resource"); v != "" {
		fields = append(fields, zap.String("resource", v))
	}
	sid := get("http.mcp.session_id")
	if sid == "" {
		sid = w.Header().Get("Mcp-Session-Id") // assigned by the upstream's initialize answer
	}
	fields = append(fields,
		zap.String("request_id", get("http.mcp.request_id")),
		zap.String("decision", dec),
		zap.Int("status", status),
		zap.Duration("latency", latency),
		zap.String("session_id", sid),
		zap.String("remote_ip", clientIP(r)),
	)
	if w.args != nil {
		fields = append(fields, zap.ByteString("arguments", w.args))
	}
	if w.calls != nil {
		fields = append(fields, zap.Array("calls", auditCalls(w.calls)))
	}
	return fields
}

// auditCall is one message of a batch, as its audit entry lists it. Method, ID and
// Name are the inspection's own strings (not views of the pooled body), safe to keep.
type auditCall struct{ method, id, name string }

type auditCalls []auditCall

func (cs auditCalls) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, c := range cs {
		_ = enc.AppendObject(c)
	}
	return nil
}

func (c auditCall) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if c.method != "" {
		enc.AddString("method", c.method)
	}
	if c.id != "" {
		enc.AddString("id", c.id)
	}
	if c.name != "" {
		key := "resource"
		switch c.method {
		case "tools/call":
			key = "tool"
		case "prompts/get":
			key = "prompt"
		}
		enc.AddString(key, c.name)
	}
	return nil
}

// clientIP is the client's address as Caddy determined it (trusted proxies honoured),
// else the connection's peer.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// streamGauge returns the open_streams gauge of r's server for a stream carried on a
// hijacked connection, or nil when metrics are off.
func (o *observer) streamGauge(r *http.Request) prometheus.Gauge {
	if o == nil || o.metrics == nil {
		return nil
	}
	server := "unknown"
	if repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); repl != nil {
		if s, _ := repl.GetString("http.mcp.server"); s != "" {
			server = s
		}
	}
	return o.metrics.openStreams.WithLabelValues(server)
}
