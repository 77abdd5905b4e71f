// Package bench measures what the mcp_gateway handler costs on top of Caddy's plain
// reverse_proxy and on top of calling the upstream directly, with the same upstream in
// the same run. It is shared by the Go benchmarks (bench_test.go) and the load command
// (cmd/mcpbench).
//
// Start runs ONE in-process Caddy (caddy.Load with a JSON config built here, admin off,
// the mcp_registry store in a temporary directory) with two loopback listeners, plus the
// upstream itself on a third:
//
//	direct         http://127.0.0.1:U/mcp             the upstream, no proxy
//	reverse_proxy  http://127.0.0.1:P/mcp             reverse_proxy 127.0.0.1:U { header_up Host {upstream_hostport} }
//	mcp_gateway    http://127.0.0.1:G/bench/mcp       mcp_gateway, registry server "bench" -> http://127.0.0.1:U/mcp
//	mcp_gateway_auth  http://127.0.0.1:A/bench/mcp    the same gateway with an auth block (see auth.go)
//
// and, with Options.AuthFresh, mcp_gateway_auth_fresh: the auth listener again, but every
// request carries a token the gateway has not validated recently (uncached validation).
//
// The default upstream ("static") is a minimal net/http handler that reads the request
// and answers a fixed ~1 KiB tools/call result: its cost per request is small and
// constant, so what the proxies add is as visible as it can be. A real MCP server spends
// far longer per call (JSON decoding, the tool itself), which shrinks every proxy's
// relative cost; the "gosdk" upstream is the go-sdk's stateless streamable HTTP handler
// with one echo tool, for a more realistic (and slower) upstream.
//
// The upstream also serves /stream: a GET answered with an SSE priming event, then held
// open until the client goes away. It is reachable directly, through reverse_proxy at
// /stream and through the gateway as registry server "stream" (/stream/mcp), and is what
// the SSE memory measurement (MeasureStreams) holds open.
package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	_ "github.com/caddymcp/caddymcp"
	"github.com/caddymcp/caddymcp/mcpgateway"
)

// Upstream kinds.
const (
	UpstreamStatic = "static" // fixed-cost net/http handler, fixed ~1 KiB result
	UpstreamGoSDK  = "gosdk"  // go-sdk stateless streamable HTTP server, JSON responses
)

// Target names, in the order Env.Targets lists them.
const (
	Direct       = "direct"
	ReverseProxy = "reverse_proxy"
	Gateway      = "mcp_gateway"
	GatewayAuth  = "mcp_gateway_auth"       // mcp_gateway with auth, one token per client
	GatewayFresh = "mcp_gateway_auth_fresh" // mcp_gateway with auth, a new token per request
	// GatewayBuiltin is mcp_gateway with auth trusting the same config's built-in
	// authorization server (mcp_oauth_server), one client_credentials token: compared
	// with GatewayAuth, what verifying its tokens costs against an external issuer's.
	GatewayBuiltin = "mcp_gateway_builtin_auth"
)

// ProtocolVersion is the MCP-Protocol-Version header every request carries.
const ProtocolVersion = "2025-06-18"

// Target is one way of reaching the upstream.
type Target struct {
	Name      string   // Direct, ReverseProxy, Gateway, GatewayAuth or GatewayFresh
	CallURL   *url.URL // where tools/call is POSTed
	StreamURL *url.URL // where the held-open SSE stream is opened with GET (nil: none)

	// header returns the request header of client worker's next call (nil: callHeader).
	header func(worker int) http.Header
	// transport, when set, is the client transport the target needs (TLS, HTTP/2).
	transport func() *http.Transport
}

// Header is the request header of client number worker's next call to t: for the auth
// targets it carries that worker's bearer token (GatewayAuth) or a token not used for
// the last AuthFreshPool calls (GatewayFresh). Safe for concurrent use.
func (t Target) Header(worker int) http.Header {
	if t.header == nil {
		return callHeader
	}
	return t.header(worker)
}

// Env is the running benchmark environment.
type Env struct {
	Kind     string
	Targets  []Target // Direct, ReverseProxy, Gateway, GatewayAuth [, GatewayFresh]
	Response int      // size in bytes of the upstream's tools/call response body

	issuer *issuer  // the in-process token issuer of the auth targets
	h2     []Target // GatewayH2, DirectH2, CaddyHoldH2: streams only, so not in Targets (whose calls are HTTP/1.1)

	upstream      *http.Server
	upstreamLn    net.Listener
	upstreamTLS   *http.Server // the same handlers over TLS and HTTP/2 (DirectH2)
	upstreamTLSLn net.Listener
	openStreams   atomic.Int64           // upstream SSE handlers currently running
	streamProc    *streamUpstreamProcess // with Options.StreamUpstreamProcess
	dir           string
	check         func(status int, body []byte) error
}

// Target returns the target with the given name.
func (e *Env) Target(name string) Target {
	for _, t := range e.Targets {
		if t.Name == name {
			return t
		}
	}
	for _, t := range e.h2 {
		if t.Name == name {
			return t
		}
	}
	panic("bench: no target " + name)
}

// ToolsCallBody is the request every benchmark sends: a tools/call with about 300 bytes
// of arguments, the shape of a typical code-search or file tool call.
var ToolsCallBody = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{` +
	`"text":"Find every place where the session store is read without holding the lock, and list the functions that call them.",` +
	`"path":"src/internal/handlers/session_store.go","limit":20,"case_sensitive":false,"tags":["bench","gateway","review"]},` +
	`"_meta":{"progressToken":"bench-1"}}}`)

// EchoArgs are the arguments of ToolsCallBody, typed for the go-sdk echo tool.
type EchoArgs struct {
	Text          string   `json:"text"`
	Path          string   `json:"path"`
	Limit         int      `json:"limit"`
	CaseSensitive bool     `json:"case_sensitive"`
	Tags          []string `json:"tags"`
}

// staticResponse is the static upstream's answer: a tools/call result of 1,024 bytes.
var staticResponse = func() []byte {
	const size = 1024
	build := func(text string) []byte {
		b, err := json.Marshal(map[string]any{
			"jsonrpc": "2.0",
			"id":      1,
			"result": map[string]any{
				"content": []any{map[string]any{"type": "text", "text": text}},
				"structuredContent": map[string]any{
					"matches": []any{
						map[string]any{"file": "src/internal/handlers/session_store.go", "line": 118, "function": "(*Store).Get"},
						map[string]any{"file": "src/internal/handlers/session_store.go", "line": 164, "function": "(*Store).Touch"},
					},
					"truncated": false,
				},
				"isError": false,
			},
		})
		if err != nil {
			panic(err)
		}
		return b
	}
	const sentence = "session_store.go:118 (*Store).Get reads s.entries without s.mu; called from handleResume and reapIdle. "
	pad := size - len(build(""))
	text := strings.Repeat(sentence, pad/len(sentence)+1)[:pad]
	return build(text)
}()

// Options are the optional parts of the environment.
type Options struct {
	// AuthFresh adds the GatewayFresh target, with a pool of this many pre-signed tokens
	// used in turn (0: no such target). To defeat the gateway's validated-token cache
	// (10,000 entries, LRU) it must exceed the cache; AuthFreshPool is a safe size.
	AuthFresh int
	// StreamUpstreamProcess serves the upstream of the HTTP/2 stream targets (GatewayH2,
	// DirectH2) from a child process (StreamUpstreamEnv), so that the memory phase
	// counts neither the upstream's HTTP/1.1 share behind the gateway nor its HTTP/2
	// share directly: each figure is then the client's and the proxy's, and
	// GatewayH2 − DirectH2 is the gateway's own. The binary must call
	// RunStreamUpstreamIfAsked first.
	StreamUpstreamProcess bool
}

// AuthFreshPool is the token pool size that makes every GatewayFresh call a cache miss:
// each of the cache's 16 LRU shards (625 entries) gets about 750 tokens of the pool, in
// the same cyclic order every time, so a token is always evicted before its next use.
const AuthFreshPool = 12000

// Start starts the upstream of the given kind and the in-process Caddy in front of it.
// Close stops both. Only one Env may run at a time (Caddy's config is process-global).
func Start(kind string) (*Env, error) { return StartWith(kind, Options{}) }

// StartWith is Start with options.
func StartWith(kind string, opt Options) (*Env, error) {
	e := &Env{Kind: kind}
	var calls http.Handler
	switch kind {
	case UpstreamStatic:
		calls = http.HandlerFunc(serveStatic)
		e.Response = len(staticResponse)
		e.check = func(status int, body []byte) error {
			if status != http.StatusOK || len(body) != len(staticResponse) {
				return fmt.Errorf("HTTP %d, %d-byte body (want 200, %d bytes): %.200q", status, len(body), len(staticResponse), body)
			}
			return nil
		}
	case UpstreamGoSDK:
		calls = newGoSDKHandler()
		e.check = func(status int, body []byte) error {
			if status != http.StatusOK || !bytes.Contains(body, []byte(`"result"`)) || bytes.Contains(body, []byte(`"isError":true`)) {
				return fmt.Errorf("HTTP %d: %.300q", status, body)
			}
			return nil
		}
	default:
		return nil, fmt.Errorf("bench: unknown upstream kind %q (want %s or %s)", kind, UpstreamStatic, UpstreamGoSDK)
	}

	dir, err := os.MkdirTemp("", "caddymcp-bench-")
	if err != nil {
		return nil, err
	}
	e.dir = dir
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()

	mux := http.NewServeMux()
	mux.Handle("/mcp", calls)
	mux.HandleFunc("/stream", e.serveStream)
	e.upstreamLn, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.upstream = &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = e.upstream.Serve(e.upstreamLn) }()
	up := "http://" + e.upstreamLn.Addr().String()

	if kind == UpstreamGoSDK {
		if err := e.probeGoSDK(up + "/mcp"); err != nil {
			return nil, err
		}
	}

	e.issuer, err = startIssuer()
	if err != nil {
		return nil, err
	}

	// Caddy cannot be handed open listeners, so it gets ports that were free a moment
	// ago; on the rare collision, try again with new ones.
	cert, err := newSelfSigned()
	if err != nil {
		return nil, err
	}
	if e.upstreamTLSLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(cert.certPEM, cert.keyPEM)
	if err != nil {
		return nil, err
	}
	e.upstreamTLS = &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}}}
	go func() { _ = e.upstreamTLS.ServeTLS(e.upstreamTLSLn, "", "") }()
	// The HTTP/2 targets' upstream: the in-process one, or a child process's.
	h2Upstream, directH2 := e.upstreamLn.Addr().String(), e.upstreamTLSLn.Addr().String()
	if opt.StreamUpstreamProcess {
		if e.streamProc, err = startStreamUpstream(dir, cert); err != nil {
			return nil, err
		}
		h2Upstream, directH2 = e.streamProc.plain, e.streamProc.secure
	}
	var gw, rp, ga, gh2, gb string
	for attempt := 0; ; attempt++ {
		gw, rp, ga, gh2, gb, err = freeAddr(), freeAddr(), freeAddr(), freeAddr(), freeAddr(), nil
		if gw == "" || rp == "" || ga == "" || gh2 == "" || gb == "" {
			return nil, errors.New("bench: no free loopback port")
		}
		cfg := caddyConfig(dir, e.upstreamLn.Addr().String(), h2Upstream, gw, rp, ga, gh2, gb, e.issuer.url, cert)
		err = caddy.Load(cfg, true)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("bench: loading the Caddy config: %w", err)
		}
	}

	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			panic(err)
		}
		return u
	}
	e.Targets = []Target{
		{Name: Direct, CallURL: mustURL(up + "/mcp"), StreamURL: mustURL(up + "/stream")},
		{Name: ReverseProxy, CallURL: mustURL("http://" + rp + "/mcp"), StreamURL: mustURL("http://" + rp + "/stream")},
		{Name: Gateway, CallURL: mustURL("http://" + gw + "/bench/mcp"), StreamURL: mustURL("http://" + gw + "/stream/mcp")},
	}
	e.h2 = []Target{
		{Name: GatewayH2, StreamURL: mustURL("https://" + gh2 + "/stream-h2/mcp"), transport: cert.h2Transport},
		{Name: DirectH2, StreamURL: mustURL("https://" + directH2 + "/stream"), transport: cert.h2Transport},
		{Name: CaddyHoldH2, StreamURL: mustURL("https://" + gh2 + "/hold"), transport: cert.h2Transport},
	}
	// The token audience is the bench server's resource URL (the MCP URL, as the
	// protected-resource metadata names it), one of the gateway's default audiences.
	aud := "http://" + ga + "/bench/mcp"
	e.Targets = append(e.Targets, Target{Name: GatewayAuth, CallURL: mustURL(aud), header: e.issuer.perWorker(aud)})
	builtinAud := "http://" + gb + "/bench/mcp"
	builtinTok, err := builtinToken("http://"+gb, builtinAud)
	if err != nil {
		return nil, err
	}
	e.Targets = append(e.Targets, Target{Name: GatewayBuiltin, CallURL: mustURL(builtinAud),
		header: func(int) http.Header { return authHeader(builtinTok) }})
	if opt.AuthFresh > 0 {
		h, err := e.issuer.pool(aud, opt.AuthFresh)
		if err != nil {
			return nil, err
		}
		e.Targets = append(e.Targets, Target{Name: GatewayFresh, CallURL: mustURL(aud), header: h})
	}

	// Every target must answer before anyone measures anything.
	c := NewClient(1)
	defer c.CloseIdleConnections()
	var buf []byte
	for _, t := range e.Targets {
		if err := e.Call(c, t, &buf); err != nil {
			return nil, fmt.Errorf("bench: target %s (%s) does not answer: %w", t.Name, t.CallURL, err)
		}
		if kind == UpstreamGoSDK && t.Name == Direct {
			e.Response = len(buf)
		}
	}
	ok = true
	return e, nil
}

// Close stops Caddy and the upstream and removes the temporary directory.
func (e *Env) Close() {
	if e.Targets != nil {
		_ = caddy.Stop()
	}
	if e.streamProc != nil {
		e.streamProc.close()
	}
	if e.issuer != nil {
		e.issuer.srv.Close()
	}
	if e.upstreamTLS != nil {
		_ = e.upstreamTLS.Close()
	}
	if e.upstream != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = e.upstream.Shutdown(ctx)
		cancel()
		_ = e.upstream.Close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// HTTPServer returns the in-process Caddy HTTP server behind target name (ReverseProxy
// or Gateway), so a benchmark can call its ServeHTTP without an inbound socket.
func (e *Env) HTTPServer(name string) (*caddyhttp.Server, error) {
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		return nil, err
	}
	srv := app.(*caddyhttp.App).Servers[name]
	if srv == nil {
		return nil, fmt.Errorf("bench: no Caddy server %q", name)
	}
	return srv, nil
}

// caddyConfig is the JSON config of the in-process Caddy: the registry with the two
// upstream servers, a listener with mcp_gateway and one with the equivalent of
//
//	reverse_proxy <upstream> { header_up Host {upstream_hostport} }
//
// (the Host rewrite is what the gateway does too; go-sdk servers on loopback refuse
// other Host headers). No access logs on either; Caddy's own log at ERROR.
//
// The third listener is the gateway again with an auth block: issuerURL's keys, resource
// http://<ga> (so the default audiences include http://<ga>/bench/mcp), and a policy
// letting group "bench" call the echo tool on server "bench".
//
// The fourth listener, gh2, is the plain gateway over TLS (cert) with HTTP/2; its
// streams (server stream-h2) go to h2Upstream.
func caddyConfig(dir, upstream, h2Upstream, gw, rp, ga, gh2, gb, issuerURL string, cert *selfSigned) []byte {
	route := func(h map[string]any) []any { return []any{map[string]any{"handle": []any{h}}} }
	server := func(addr string, h map[string]any) map[string]any {
		return map[string]any{
			"listen":          []string{addr},
			"routes":          route(h),
			"automatic_https": map[string]any{"disable": true},
		}
	}
	cfg := map[string]any{
		"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		// The gateway's audit entries are encoded and written (to a discarding writer), as
		// they would be in production, so their cost is part of what is measured.
		"logging": map[string]any{"logs": map[string]any{
			"default":   map[string]any{"level": "ERROR", "exclude": []string{mcpgateway.AuditLoggerName}},
			"mcp_audit": map[string]any{"level": "INFO", "include": []string{mcpgateway.AuditLoggerName}, "writer": map[string]any{"output": "discard"}},
		}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "caddy")},
		"apps": map[string]any{
			"tls": map[string]any{"certificates": map[string]any{"load_pem": []any{
				map[string]any{"certificate": string(cert.certPEM), "key": string(cert.keyPEM)},
			}}},
			"mcp_registry": map[string]any{
				"storage":                map[string]any{"path": filepath.Join(dir, "registry.db")},
				"encryption_key":         strings.Repeat("be", 32),         // seals the built-in server's signing keys
				"health":                 map[string]any{"disabled": true}, // no background traffic in a measurement
				"disable_builtin_server": true,
				"servers": []any{
					map[string]any{"name": "bench", "upstream": "http://" + upstream + "/mcp"},
					map[string]any{"name": "stream", "upstream": "http://" + upstream + "/stream"},
					map[string]any{"name": "stream-h2", "upstream": "http://" + h2Upstream + "/stream"},
				},
			},
			"http": map[string]any{
				"servers": map[string]any{
					Gateway: server(gw, map[string]any{"handler": "mcp_gateway"}),
					GatewayH2: func() map[string]any {
						s := server(gh2, map[string]any{"handler": "mcp_gateway"})
						s["routes"] = append([]any{map[string]any{
							"match":  []any{map[string]any{"path": []string{"/hold"}}},
							"handle": []any{map[string]any{"handler": "bench_hold_stream"}},
						}}, s["routes"].([]any)...)
						s["tls_connection_policies"] = []any{map[string]any{}}
						s["protocols"] = []string{"h1", "h2"}
						return s
					}(),
					GatewayAuth: server(ga, map[string]any{
						"handler": "mcp_gateway",
						"auth": map[string]any{
							"issuers":  []any{map[string]any{"issuer": issuerURL, "jwks_url": issuerURL + "/jwks"}},
							"resource": "http://" + ga,
							"policy":   benchPolicy,
						},
					}),
					GatewayBuiltin: map[string]any{
						"listen": []string{gb},
						"routes": []any{
							map[string]any{
								"match": []any{map[string]any{"path": []string{"/oauth/*"}}},
								"handle": []any{map[string]any{
									"handler": "mcp_oauth_server", "issuer": "http://" + gb + "/oauth", "resource": "http://" + gb,
									"clients": []any{map[string]any{"id": builtinClientID, "secret": builtinClientHash, "groups": []string{"bench"}}},
								}},
							},
							map[string]any{"handle": []any{map[string]any{
								"handler": "mcp_gateway",
								"auth": map[string]any{
									"resource": "http://" + gb,
									"policy":   benchPolicy,
								},
							}}},
						},
						"automatic_https": map[string]any{"disable": true},
					},
					ReverseProxy: server(rp, map[string]any{
						"handler":   "reverse_proxy",
						"upstreams": []any{map[string]any{"dial": upstream}},
						"headers": map[string]any{"request": map[string]any{
							"set": map[string]any{"Host": []string{"{http.reverse_proxy.upstream.hostport}"}},
						}},
					}),
				},
			},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveStatic is the fixed-cost upstream: it reads the request and answers the fixed
// result. It does not parse the JSON; it checks only what a real server could not do
// without.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var buf [2048]byte
	n, err := io.ReadFull(r.Body, buf[:])
	if err != io.ErrUnexpectedEOF && err != io.EOF { // bodies here are < 2 KiB
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if n == 0 || buf[0] != '{' {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = staticLength
	_, _ = w.Write(staticResponse)
}

var (
	contentTypeJSON = []string{"application/json"}
	staticLength    = []string{strconv.Itoa(len(staticResponse))}
)

// newGoSDKHandler is go-sdk's streamable HTTP handler, stateless with JSON responses,
// serving one tool, echo, that returns its text and echoes its arguments as structured
// content.
func newGoSDKHandler() http.Handler {
	server := mcp.NewServer(&mcp.Implementation{Name: "bench-echo", Version: "0.0.1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "echo", Description: "Echoes its arguments."},
		func(_ context.Context, _ *mcp.CallToolRequest, in EchoArgs) (*mcp.CallToolResult, EchoArgs, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, in, nil
		})
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
}

func (e *Env) probeGoSDK(u string) error {
	c := NewClient(1)
	defer c.CloseIdleConnections()
	var buf []byte
	t := Target{CallURL: must(url.Parse(u))}
	if err := e.Call(c, t, &buf); err != nil {
		return fmt.Errorf("bench: go-sdk upstream: %w", err)
	}
	return nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// serveStream answers a GET with an SSE priming event (an id and empty data, as MCP
// servers send first) and holds the stream open until the client goes away.
func (e *Env) serveStream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	e.openStreams.Add(1)
	defer e.openStreams.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "id: 0\ndata:\n\n")
	http.NewResponseController(w).Flush()
	<-r.Context().Done()
}

// OpenUpstreamStreams is the number of SSE streams the upstream is holding open.
func (e *Env) OpenUpstreamStreams() int64 { return e.openStreams.Load() }

// NewClient returns a client for concurrency simultaneous callers: HTTP/1.1 keep-alive,
// enough idle connections per host that none is ever closed between calls.
func NewClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        0, // no global limit
			MaxIdleConnsPerHost: 2 * concurrency,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true, // the upstream never compresses; keep requests equal
		},
	}
}

// callHeader is shared by every request: the transport only reads it.
var callHeader = http.Header{
	"Content-Type":         {"application/json"},
	"Accept":               {"application/json, text/event-stream"},
	"Mcp-Protocol-Version": {ProtocolVersion},
}

// Call POSTs ToolsCallBody to t with c, reads the whole response into *buf (reused
// across calls) and checks it.
func (e *Env) Call(c *http.Client, t Target, buf *[]byte) error { return e.CallAs(c, t, 0, buf) }

// CallAs is Call by client number worker (which selects its token on the auth targets).
func (e *Env) CallAs(c *http.Client, t Target, worker int, buf *[]byte) error {
	req := &http.Request{
		Method:        http.MethodPost,
		URL:           t.CallURL,
		Host:          t.CallURL.Host,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        t.Header(worker),
		Body:          io.NopCloser(bytes.NewReader(ToolsCallBody)),
		ContentLength: int64(len(ToolsCallBody)),
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	b, err := readAll(resp.Body, (*buf)[:0])
	_ = resp.Body.Close()
	*buf = b
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	return e.check(resp.StatusCode, b)
}

// readAll is io.ReadAll into a reused buffer.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
