// Package configapi is the mcp_ide_config HTTP handler: the ideconfig generators
// served to the people who use the gateway, for the servers they may use.
package configapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/ideconfig"
	"github.com/caddymcp/caddymcp/internal/access"
	"github.com/caddymcp/caddymcp/internal/accesslog"
	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/internal/published"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Handler is the mcp_ide_config HTTP handler: ready-to-paste MCP client configurations
// for the servers the caller may use through the gateway.
//
//	GET <prefix>                    {"clients": [...]}: the clients it can configure
//	GET <prefix>/<client>           the configuration, as JSON: {client, path, format,
//	                                content, command, notes, servers}
//	GET <prefix>/<client>?download  the file content alone, as an attachment
//
// Query: server=<name> (repeatable; default every enabled server the caller may
// list), auth=oauth (default: no credential in the file; the client signs in through
// the gateway's authorization server) or auth=token (a personal gateway token read
// from an environment variable or a prompt, never written into the file). Requests to
// other paths, <prefix>/<anything but a client> included, go to the next handler.
type Handler struct {
	// Site is where the handler is mounted (prefix, default /ide-config), the gateway
	// it publishes, and the auth block. Without auth, anonymous callers get every
	// server, as the registry API lists them.
	published.Site

	// TokenEnv names the environment variable that holds the user's gateway token in
	// configurations generated with auth=token. Default CADDYMCP_TOKEN.
	TokenEnv string `json:"token_env,omitempty"`

	app       *mcpregistry.App
	auth      *access.Authenticator
	logger    *zap.Logger
	accessLog *accesslog.Writer
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_ide_config",
		New: func() caddy.Module { return new(Handler) },
	}
}

var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// maxServersPerConfig bounds the servers of one configuration (a variable for the
// tests).
var maxServersPerConfig = 200

// Provision sets up the handler.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.accessLog = accesslog.New(ctx)
	if h.TokenEnv == "" {
		h.TokenEnv = "CADDYMCP_TOKEN"
	}
	if !envVarName.MatchString(h.TokenEnv) {
		return fmt.Errorf("mcp_ide_config: token_env %q is not an environment variable name", h.TokenEnv)
	}
	var err error
	h.app, h.auth, err = h.Site.Provision(ctx, h.logger, "mcp_ide_config", "/ide-config")
	return err
}

// ServeHTTP serves the handler's paths and passes every other request to next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, h.Prefix)
	client := strings.TrimSuffix(strings.TrimPrefix(rest, "/"), "/")
	// Only its own paths: a gateway server whose path is the prefix keeps <prefix>/mcp.
	if !ok || (rest != "" && rest[0] != '/') || (client != "" && !slices.Contains(ideconfig.Clients(), ideconfig.Client(client))) {
		return next.ServeHTTP(w, r)
	}
	defer h.accessLog.Take(w, r).Write()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "", "use GET")
		return nil
	}
	if client == "" {
		writeJSON(w, http.StatusOK, map[string]any{"clients": ideconfig.Clients()})
		return nil
	}
	ctx := r.Context()
	if h.auth != nil {
		p, err := h.auth.Identify(r, false)
		if err != nil {
			h.unauthorized(w, r, err)
			return nil
		}
		ctx = principal.WithCaller(ctx, h.auth.Resolve(p))
	}
	q := r.URL.Query()
	useToken := false
	switch q.Get("auth") {
	case "", "oauth":
	case "token":
		useToken = true
	default:
		writeError(w, http.StatusBadRequest, "auth", "auth must be oauth or token")
		return nil
	}
	names := q["server"]
	if len(names) > maxServersPerConfig {
		writeError(w, http.StatusBadRequest, "server", fmt.Sprintf("at most %d servers per configuration", maxServersPerConfig))
		return nil
	}
	var chosen []*model.Server
	if len(names) == 0 {
		for _, s := range h.app.ListServers() {
			if s.Enabled && h.app.CanList(ctx, s) {
				chosen = append(chosen, s)
			}
		}
	}
	for _, name := range names {
		s := h.app.VisibleServer(ctx, name)
		if s == nil {
			writeError(w, http.StatusNotFound, "server", mcpregistry.NoServerError(truncate(name, 64)).Error())
			return nil
		}
		if !s.Enabled {
			writeError(w, http.StatusConflict, "server", "server "+s.Name+" is disabled: the gateway answers it 503")
			return nil
		}
		if !slices.Contains(chosen, s) {
			chosen = append(chosen, s)
		}
	}
	if len(chosen) > maxServersPerConfig {
		writeError(w, http.StatusUnprocessableEntity, "server", fmt.Sprintf("you may use %d servers, more than one configuration holds (%d): name the ones you want with server=", len(chosen), maxServersPerConfig))
		return nil
	}
	out, servers, notes, err := h.generate(ideconfig.Client(client), chosen, h.GatewayBase(r), useToken)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "", err.Error())
		return nil
	}
	out.Notes = append(notes, out.Notes...)
	w.Header().Set("Cache-Control", "no-store")
	if _, ok := q["download"]; ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+path.Base(out.Path)+`"`)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write([]byte(out.Content))
		return nil
	}
	writeJSON(w, http.StatusOK, response{Client: out.Client, Path: out.Path, Format: out.Format, Content: out.Content,
		Command: out.Command, Notes: out.Notes, Servers: servers})
	return nil
}

type response struct {
	Client  ideconfig.Client `json:"client"`
	Path    string           `json:"path"`
	Format  string           `json:"format"`
	Content string           `json:"content"`
	Command string           `json:"command,omitempty"`
	Notes   []string         `json:"notes"`
	Servers []string         `json:"servers"`
}

// generate renders the configuration of servers for client; base is the gateway's
// URL. Servers on the legacy SSE transport are left out with a note: the
// configurations speak Streamable HTTP.
func (h *Handler) generate(c ideconfig.Client, servers []*model.Server, base string, useToken bool) (ideconfig.Output, []string, []string, error) {
	var in []ideconfig.Server
	var names, notes []string
	for _, s := range servers {
		endpoint := base + "/" + s.Path + s.GatewayEndpoint()
		if s.Transport == model.TransportSSE {
			notes = append(notes, fmt.Sprintf("%s uses the legacy SSE transport and is not in this file; add %s as an SSE server by hand", s.Name, endpoint))
			continue
		}
		srv := ideconfig.Server{Name: s.Name, URL: endpoint}
		if useToken {
			srv.Token = &ideconfig.Token{EnvVar: h.TokenEnv, Description: "caddymcp gateway token"}
			if s.GatewayTokenHeader == model.GatewayTokenXAuthorization {
				srv.Token.Header, srv.Token.Scheme = "X-Authorization", "Bearer"
			}
		}
		in = append(in, srv)
		names = append(names, s.Name)
	}
	if len(in) == 0 {
		return ideconfig.Output{}, nil, nil, errors.New("no server to configure: none you may list is enabled and on Streamable HTTP")
	}
	out, err := ideconfig.Generate(c, in)
	if names == nil {
		names = []string{}
	}
	return out, names, notes, err
}

// unauthorized answers a request without a usable token as the registry API does.
func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, err error) {
	prm := access.HeaderValue(h.auth.PRMURL(r, ""))
	switch {
	case errors.Is(err, authn.ErrKeysUnavailable):
		h.logger.Warn("token signing keys unavailable", zap.Error(err))
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "", "the token issuer's signing keys are unavailable; retry later")
	case errors.Is(err, authn.ErrNoToken):
		w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+prm+`"`)
		writeError(w, http.StatusUnauthorized, "", "authentication required: send a bearer token (Authorization: Bearer …) or an API key (X-API-Key)")
	default:
		reason := authn.Reason(err)
		if reason == "" {
			reason = authn.ReasonMalformed
		}
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+access.HeaderValue(reason)+`", resource_metadata="`+prm+`"`)
		writeError(w, http.StatusUnauthorized, "", "invalid token: "+reason)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, field, msg string) {
	body := map[string]string{"error": msg}
	if field != "" {
		body["field"] = field
	}
	writeJSON(w, status, body)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
