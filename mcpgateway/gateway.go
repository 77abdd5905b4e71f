// Package mcpgateway is the MCP-aware proxy: the mcp_gateway HTTP handler that routes
// <prefix>/<server>/mcp to the registry's upstreams, inspects JSON-RPC bodies and
// streams responses back without buffering.
package mcpgateway

import (
	"fmt"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/accesslog"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

func init() {
	caddy.RegisterModule(new(Gateway))
}

// Gateway is the mcp_gateway handler. It serves every server of the mcp_registry app at
// <prefix>/<server path>/mcp (streamable HTTP) or <prefix>/<server path>/sse and
// …/message (legacy HTTP+SSE), routing from the registry's in-memory index, so servers
// registered at runtime are reachable without a config reload. Requests whose path has
// another shape go to the next handler.
type Gateway struct {
	// Prefix under which servers are mounted, e.g. "/servers". Default: the root.
	Prefix string `json:"prefix,omitempty"`

	// MaxBodySize bounds a JSON-RPC request body, in bytes. Larger bodies get HTTP 413
	// with a JSON-RPC error. Default 4 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// AllowedOrigins lists the browser origins (scheme://host[:port]) allowed to call,
	// besides same-origin requests; "*" allows any. Requests without Origin always pass.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	// AllowedHosts lists the Host names the gateway answers to ("*.example.com"
	// wildcards, "*" for any). Default: any host, except that a request arriving on a
	// loopback address must name a loopback host (DNS-rebinding protection).
	AllowedHosts []string `json:"allowed_hosts,omitempty"`

	// DialTimeout bounds connecting to an upstream (502 when exceeded). Default 3s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// ResponseHeaderTimeout bounds the wait for an upstream's response headers (504 when
	// exceeded). Streams are never cut once headers arrive. Default: no limit, since a
	// tools/call answered with plain JSON sends its headers only when the tool is done.
	ResponseHeaderTimeout caddy.Duration `json:"response_header_timeout,omitempty"`

	// UpstreamTLS configures TLS towards https upstreams (custom CAs, client
	// certificates, …), as in reverse_proxy's http transport. Default: system roots.
	UpstreamTLS *reverseproxy.TLSConfig `json:"upstream_tls,omitempty"`

	// Auth turns on authentication (bearer JWTs, API keys) and per-message
	// authorization. Absent: no authentication, every request is proxied. See AuthConfig.
	Auth *AuthConfig `json:"auth,omitempty"`

	// SessionKey seals the session ids clients see (Mcp-Session-Id, the legacy
	// transport's sessionId) together with the caller, the server and the transport, so
	// a session answers only the caller who opened it (AES-256-GCM; see session.go): 32
	// bytes in base64 or hex, normally from {env.*} or {file.*}. Default: derived from
	// the mcp_registry app's encryption_key when it has one, else random per process.
	// Several gateway instances behind one name need the same session_key (or the same
	// encryption_key), or a session opened on one is unknown on the others.
	SessionKey string `json:"session_key,omitempty"`

	// Limits bounds open event streams, body read time and list-filter memory. Absent:
	// the defaults documented on LimitsConfig.
	Limits *LimitsConfig `json:"limits,omitempty"`

	// Audit configures the audit log (logger "http.handlers.mcp_gateway.audit", one Info entry per MCP
	// request). Absent: on, without tool arguments. See AuditConfig.
	Audit *AuditConfig `json:"audit,omitempty"`

	registry  *mcpregistry.App
	auth      *authState // nil when Auth is absent
	sessions  *sessionSealer
	transport *reverseproxy.HTTPTransport
	proxy     *httputil.ReverseProxy
	hosts     hostPolicy
	targets   targetCache
	// messagePaths remembers, per legacy SSE server, the upstream path its endpoint
	// event named.
	messagePaths sync.Map
	// streams are the event streams carried by hijacked connections (stream.go).
	streams streamSet
	logger  *zap.Logger
	// accessLog writes the access-log entry of requests that carry X-API-Key or
	// X-Authorization, which Caddy's own entry would show in clear.
	accessLog *accesslog.Writer
	// obs writes the audit entry and the metrics of each request (audit.go); nil in
	// tests that build a Gateway without Provision.
	obs *observer
	// limits are the provisioned Limits (limits.go); nil in tests that build a Gateway
	// without Provision.
	limits *limits
	// caps remembers which callers' clients take URL-mode elicitation (upstream_auth.go).
	caps elicitCaps
}

// CaddyModule returns the Caddy module information.
func (*Gateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_gateway",
		New: func() caddy.Module { return new(Gateway) },
	}
}

const defaultMaxBodySize = 4 << 20

// Provision sets defaults and connects the gateway to the registry.
func (g *Gateway) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	g.accessLog = accesslog.New(ctx)
	g.Prefix = strings.TrimRight(g.Prefix, "/")
	if g.Prefix != "" && !strings.HasPrefix(g.Prefix, "/") {
		g.Prefix = "/" + g.Prefix
	}
	if g.MaxBodySize == 0 {
		g.MaxBodySize = defaultMaxBodySize
	}
	if g.DialTimeout == 0 {
		g.DialTimeout = caddy.Duration(3 * time.Second)
	}
	g.hosts = hostPolicy{hosts: g.AllowedHosts, origins: g.AllowedOrigins}

	app, err := ctx.App("mcp_registry")
	if err != nil {
		return fmt.Errorf("loading mcp_registry app: %v", err)
	}
	g.registry = app.(*mcpregistry.App)

	key, keySource, err := sessionKey(g.SessionKey, g.registry.EncryptionKey)
	if err != nil {
		return err
	}
	if g.sessions, err = newSessionSealer(key); err != nil {
		return fmt.Errorf("session_key: %v", err)
	}
	g.logger.Debug("session ids sealed", zap.String("key", keySource))

	if g.Auth != nil {
		// ctx ends when this config is unloaded, stopping the JWKS refresh.
		if g.auth, err = provisionAuth(ctx, g.Auth, g.logger, g.Prefix, g.registry); err != nil {
			return err
		}
	}

	g.transport = &reverseproxy.HTTPTransport{
		DialTimeout:           g.DialTimeout,
		ResponseHeaderTimeout: g.ResponseHeaderTimeout,
		TLS:                   g.UpstreamTLS,
	}
	if err := g.transport.Provision(ctx); err != nil {
		return fmt.Errorf("provisioning upstream transport: %v", err)
	}
	if rt := g.transport.Transport; rt != nil && rt.DialContext != nil {
		// Runtime-registered upstreams are checked again at every new connection.
		rt.DialContext = g.registry.GuardDial(rt.DialContext)
	}
	g.proxy = g.newReverseProxy()
	g.limits = provisionLimits(ctx, g.Limits, g.registry, g.logger)
	// Metrics go to this config's registry; collectors are registered on every provision.
	if g.obs, err = newObserver(ctx, g.Audit); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	return nil
}

// Validate checks the configuration.
func (g *Gateway) Validate() error {
	if g.MaxBodySize < 0 {
		return fmt.Errorf("max_body_size must not be negative")
	}
	if err := g.Limits.validate(); err != nil {
		return err
	}
	for _, o := range g.AllowedOrigins {
		if o != "*" && !strings.Contains(o, "://") {
			return fmt.Errorf("allowed_origins: %q is not an origin (scheme://host[:port])", o)
		}
	}
	return nil
}

// Cleanup closes idle upstream connections and the event streams this gateway carries
// on hijacked connections.
func (g *Gateway) Cleanup() error {
	g.streams.closeAll()
	if g.transport != nil {
		return g.transport.Cleanup()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Gateway)(nil)
	_ caddy.Validator             = (*Gateway)(nil)
	_ caddy.CleanerUpper          = (*Gateway)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gateway)(nil)
)
