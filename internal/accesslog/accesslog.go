// Package accesslog keeps the credential headers caddymcp accepts (X-API-Key, and the
// composite mode's X-Authorization) out of Caddy's access log.
//
// Caddy copies each request for its access log before any handler runs and redacts
// only Authorization, Cookie, Set-Cookie and Proxy-Authorization in that copy; no
// handler can reach it. So when a request carrying one of caddymcp's credential headers
// reaches a caddymcp handler, and Caddy would log it, the handler marks the request
// log_skip and writes the entry itself, to the same loggers and with the same fields,
// from its own copy with those headers redacted. Operators who set the server's
// log_credentials get Caddy's own entry, credentials and all, as they asked.
//
// What such an entry cannot carry: fields added by log_append (Caddy keeps them
// private to its own entry) and Caddy's write_error. Its duration runs from the
// caddymcp handler's start, not from Caddy's.
package accesslog

import (
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// CredentialHeaders are the request headers caddymcp reads a credential from that
// Caddy's access log does not redact, in canonical form.
var CredentialHeaders = []string{"X-Api-Key", "X-Authorization"}

// redacted is what the entry shows in place of a credential, as Caddy does.
var redacted = []string{"REDACTED"}

// Writer writes access-log entries on the http app's access logger.
type Writer struct {
	base *zap.Logger // "http.log.access", as Caddy names it
}

// New returns a Writer on the access loggers of ctx's configuration.
func New(ctx caddy.Context) *Writer {
	// Logger(module) is the only way to a logger in the http app's name, which the
	// logging config routes on ("http.log.access.<name>").
	return &Writer{base: ctx.Logger(caddyhttp.App{}).Named("log.access")}
}

// Entry is one request's access-log entry, taken over from Caddy.
type Entry struct {
	w        *Writer
	logs     *caddyhttp.ServerLogConfig
	request  *http.Request // the copy, credential headers redacted
	recorder caddyhttp.ResponseRecorder
	body     *countingBody
	start    time.Time
}

// Take takes the access-log entry of r over from Caddy when r carries a credential
// header and Caddy would log it with the header in clear; otherwise it returns nil.
// w is the handler's response writer. The caller defers Write on the result (nil
// included) so the entry is written once the response is done.
func (lw *Writer) Take(w http.ResponseWriter, r *http.Request) *Entry {
	if lw == nil || !carriesCredential(r.Header) {
		return nil
	}
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs == nil || srv.Logs.ShouldLogCredentials || !logsHost(srv.Logs, hostOnly(r.Host)) {
		return nil
	}
	if skip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.LogSkipVar).(bool); skip {
		return nil
	}
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	e := &Entry{w: lw, logs: srv.Logs, request: r.Clone(r.Context()), recorder: serverRecorder(w), start: time.Now()}
	for _, name := range CredentialHeaders {
		if _, ok := e.request.Header[name]; ok {
			e.request.Header[name] = redacted
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		e.body = &countingBody{ReadCloser: r.Body}
		r.Body = e.body
	}
	return e
}

func carriesCredential(h http.Header) bool {
	for _, name := range CredentialHeaders {
		if _, ok := h[name]; ok {
			return true
		}
	}
	return false
}

// Write writes the entry as Caddy's access log would have. A nil Entry writes nothing.
func (e *Entry) Write() {
	if e == nil {
		return
	}
	var status, size int
	var respHeader http.Header
	if e.recorder != nil {
		status, size, respHeader = e.recorder.Status(), e.recorder.Size(), e.recorder.Header()
	}
	level := zapcore.InfoLevel
	if status >= 500 {
		level = zapcore.ErrorLevel
	}
	ctx := e.request.Context()
	if name, ok := caddyhttp.GetVar(ctx, caddyhttp.LogLevelVar).(string); ok {
		if l, err := zapcore.ParseLevel(name); err == nil && l >= zapcore.DebugLevel && l <= zapcore.ErrorLevel {
			level = l
		}
	}
	var fields []zapcore.Field
	for _, logger := range e.loggers() {
		c := logger.Check(level, "handled request")
		if c == nil {
			continue
		}
		if fields == nil {
			userID := ""
			if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
				userID, _ = repl.GetString("http.auth.user.id")
			}
			read := 0
			if e.body != nil {
				read = e.body.n
			}
			fields = []zapcore.Field{
				zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: e.request}),
				zap.Int("bytes_read", read),
				zap.String("user_id", userID),
				zap.Duration("duration", time.Since(e.start)),
				zap.Int("size", size),
				zap.Int("status", status),
				zap.Object("resp_headers", caddyhttp.LoggableHTTPHeader{Header: respHeader}),
			}
		}
		c.Write(fields...)
	}
}

// loggers are the named access loggers Caddy would write this request's entry to:
// those the access_logger_names variable names, else those the server maps the host
// to, else its default.
func (e *Entry) loggers() []*zap.Logger {
	var names []string
	if v, ok := caddyhttp.GetVar(e.request.Context(), caddyhttp.AccessLoggerNameVarKey).([]any); ok {
		for _, n := range v {
			s, _ := n.(string)
			names = append(names, s)
		}
	} else {
		names = loggerNames(e.logs, hostOnly(e.request.Host))
	}
	loggers := make([]*zap.Logger, 0, len(names))
	for _, n := range names {
		if n == "" {
			loggers = append(loggers, e.w.base)
		} else {
			loggers = append(loggers, e.w.base.Named(n))
		}
	}
	return loggers
}

// loggerNames maps host to its loggers as caddyhttp.ServerLogConfig does: the exact
// host, else the first wildcard form of it, else the default logger.
func loggerNames(logs *caddyhttp.ServerLogConfig, host string) []string {
	host = strings.ToLower(host)
	if names, ok := logs.LoggerNames[host]; ok {
		return []string(names)
	}
	labels := strings.Split(host, ".")
	for i := range labels {
		if labels[i] == "" {
			continue
		}
		labels[i] = "*"
		if names, ok := logs.LoggerNames[strings.Join(labels, ".")]; ok {
			return []string(names)
		}
	}
	return []string{logs.DefaultLoggerName}
}

// logsHost reports whether Caddy logs requests for host: mapped hosts always, then
// skip_hosts, then skip_unmapped_hosts.
func logsHost(logs *caddyhttp.ServerLogConfig, host string) bool {
	for name := range logs.LoggerNames {
		if certmagic.MatchWildcard(host, name) {
			return true
		}
	}
	for _, h := range logs.SkipHosts {
		if certmagic.MatchWildcard(host, h) {
			return false
		}
	}
	return !logs.SkipUnmappedHosts
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// serverRecorder finds the server's own response recorder under w: the last one in
// the Unwrap chain, as the server wraps the connection's writer before any handler
// wraps it again.
func serverRecorder(w http.ResponseWriter) caddyhttp.ResponseRecorder {
	var found caddyhttp.ResponseRecorder
	for w != nil {
		if rec, ok := w.(caddyhttp.ResponseRecorder); ok {
			found = rec
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	return found
}

// countingBody counts the request body bytes the handler reads, for bytes_read.
type countingBody struct {
	io.ReadCloser
	n int
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += n
	return n, err
}
