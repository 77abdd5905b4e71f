package registryapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/access"
	"github.com/caddymcp/caddymcp/internal/accesslog"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

func init() {
	caddy.RegisterModule(new(RegistryAPI))
}

// RegistryAPI is the mcp_registry_api HTTP handler: the registry's HTTP APIs. This
// handler serves the registry's REST API (rest.go) and the read-only official MCP
// Registry API v0.1 (the API VS Code / Copilot and other MCP clients use as their
// server gallery):
//
//	GET <prefix>/v0.1/servers                                   list (cursor, limit, search, updated_since, version, include_deleted)
//	GET <prefix>/v0.1/servers/{name}/versions                   every version of one server
//	GET <prefix>/v0.1/servers/{name}/versions/{version|latest}  one version
//
// {name} is the reverse-DNS server name <namespace>/<server name>, URL-encoded
// (com.example%2Fgithub); an unencoded slash is accepted too. Anonymous GETs are
// allowed; responses carry CORS headers for any origin. Requests to other paths go to
// the next handler.
//
// Each registry record is published as one server.json (schema 2025-09-29) whose only
// remote is the gateway's endpoint for it, never the upstream. Disabled servers are
// omitted (they answer 503 at the gateway, so a client could not use them); asking for
// one answers 404.
type RegistryAPI struct {
	// Prefix is the path the API is mounted under, e.g. "/registry" serves
	// /registry/v0.1/servers. Default: the root.
	Prefix string `json:"prefix,omitempty"`

	// PublicURL is the origin clients reach the gateway at (scheme://host[:port]), used
	// to build each server's remote URL. Default: the origin of the request (its Host
	// header and whether it came over TLS).
	PublicURL string `json:"public_url,omitempty"`

	// GatewayPrefix is the prefix of the mcp_gateway handler that routes the servers
	// (its own `prefix`), so remote URLs are <public_url><gateway_prefix>/<path>/mcp
	// (or /sse for servers on the legacy SSE transport). Default: the root.
	GatewayPrefix string `json:"gateway_prefix,omitempty"`

	// Namespace is the reverse-DNS prefix of published names: a server named github
	// is published as <namespace>/github. Letters, digits, '.' and '-'.
	// Default: "local.caddymcp".
	Namespace string `json:"namespace,omitempty"`

	// AuthHeaderRequired says the gateway requires a token: each remote then lists the
	// header clients must send (Authorization, or X-Authorization for servers whose
	// gateway_token_header is x-authorization) as required and secret.
	AuthHeaderRequired bool `json:"auth_header_required,omitempty"`

	// Auth authenticates the REST API (<prefix>/api/...) exactly like mcp_gateway's
	// auth block (same syntax and fields; share one Caddyfile snippet between them),
	// and authorizes it with the policy's UI scopes. Absent: the REST API is read-only
	// and anonymous (see AnonymousWrites). The v0.1 API stays anonymous either way.
	Auth *access.Config `json:"auth,omitempty"`

	// V01Auth makes the v0.1 API require a token too (checked by Auth), and publish
	// only the servers the caller may list_service. Default: the v0.1 API is public.
	V01Auth bool `json:"v01_auth,omitempty"`

	// V01Public lists the servers an anonymous caller of the v0.1 API sees (and whose
	// deletions it learns of): server names, or "all". Default: all when Auth is absent
	// (anyone may list every server then), none when Auth is set (an anonymous caller
	// may list nothing). With V01Auth callers are never anonymous and see what their
	// list_service grants.
	V01Public []string `json:"v01_public,omitempty"`

	// AnonymousWrites lets callers without a token register, change and delete servers
	// when Auth is absent: for a laptop or a test setup only.
	AnonymousWrites bool `json:"anonymous_writes,omitempty"`

	app    *mcpregistry.App
	auth   *access.Authenticator
	logger *zap.Logger
	// accessLog writes the access-log entry of requests that carry X-API-Key, which
	// Caddy's own entry would show in clear.
	accessLog *accesslog.Writer
	v01       v01Cache // rendered v0.1 list entries (v01_cache.go)
}

// DefaultNamespace is the namespace of published names when none is configured.
const DefaultNamespace = "local.caddymcp"

var namespacePattern = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// CaddyModule returns the Caddy module information.
func (*RegistryAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_registry_api",
		New: func() caddy.Module { return new(RegistryAPI) },
	}
}

// Provision sets defaults and gets the mcp_registry app.
func (h *RegistryAPI) Provision(ctx caddy.Context) error {
	h.Prefix = apiCleanPrefix(h.Prefix)
	h.GatewayPrefix = apiCleanPrefix(h.GatewayPrefix)
	h.PublicURL = strings.TrimRight(h.PublicURL, "/")
	if h.Namespace == "" {
		h.Namespace = DefaultNamespace
	}
	app, err := ctx.App("mcp_registry")
	if err != nil {
		return fmt.Errorf("mcp_registry_api: loading the mcp_registry app: %w", err)
	}
	h.app = app.(*mcpregistry.App)
	h.logger = ctx.Logger()
	h.accessLog = accesslog.New(ctx)
	if h.V01Auth && h.Auth == nil {
		return fmt.Errorf("mcp_registry_api: v01_auth needs an auth block")
	}
	if h.Auth != nil && h.AnonymousWrites {
		return fmt.Errorf("mcp_registry_api: anonymous_writes and auth exclude each other")
	}
	if err := h.provisionAuth(ctx); err != nil {
		return fmt.Errorf("mcp_registry_api: %w", err)
	}
	return nil
}

// Validate checks the configuration.
func (h *RegistryAPI) Validate() error {
	if !namespacePattern.MatchString(h.Namespace) {
		return fmt.Errorf("mcp_registry_api: namespace %q must be a reverse-DNS prefix of letters, digits, '.' and '-', e.g. com.example", h.Namespace)
	}
	if h.PublicURL != "" {
		u, err := url.Parse(h.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("mcp_registry_api: public_url %q must be an origin: http(s)://host[:port]", h.PublicURL)
		}
	}
	return nil
}

func apiCleanPrefix(p string) string {
	p = strings.TrimRight(strings.TrimSpace(p), "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// ServeHTTP serves the API's paths and passes every other request to next.
func (h *RegistryAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.EscapedPath()
	if !strings.HasPrefix(path, h.Prefix+"/") {
		return next.ServeHTTP(w, r)
	}
	rest := path[len(h.Prefix):]
	v01, isV01 := strings.CutPrefix(rest, "/v0.1/servers")
	isV01 = isV01 && (v01 == "" || v01[0] == '/')
	// Only the REST API's own paths: a server whose gateway path is "api" keeps
	// /api/mcp when both handlers share a prefix.
	isREST := rest == "/api/servers" || strings.HasPrefix(rest, "/api/servers/") || rest == "/api/search" ||
		rest == "/api/connections" || strings.HasPrefix(rest, "/api/connections/")
	if !isV01 && !isREST {
		return next.ServeHTTP(w, r)
	}
	defer h.accessLog.Take(w, r).Write()
	if isV01 {
		h.serveV01(w, r, v01)
	} else {
		h.serveREST(w, r, strings.TrimPrefix(rest, "/api"))
	}
	return nil
}

// apiSetCORS lets any origin read the API (it is public and cookie-free).
func apiSetCORS(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
}

// apiWriteJSON writes v as the JSON response body.
func apiWriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// apiWriteError answers {"error": msg} with status.
func apiWriteError(w http.ResponseWriter, status int, msg string) {
	apiWriteJSON(w, status, map[string]string{"error": msg})
}

// Interface guards
var (
	_ caddy.Provisioner           = (*RegistryAPI)(nil)
	_ caddy.Validator             = (*RegistryAPI)(nil)
	_ caddyhttp.MiddlewareHandler = (*RegistryAPI)(nil)
)
