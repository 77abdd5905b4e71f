// Package mcpui is the mcp_ui HTTP handler: the registry's dashboard for the people
// who use the gateway. Each person, signed in through the built-in authorization
// server (with its local users or the company's identity provider), sees the servers
// their policy lets them list, with health and tools, searches the tools, copies a
// ready-made configuration for their assistant, and connects their own account at
// servers that need one.
package mcpui

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/access"
	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/internal/published"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

func init() {
	caddy.RegisterModule(new(UI))
}

// UI is the mcp_ui handler:
//
//	GET  <prefix>/                  the servers the signed-in user may list; ?q= searches tools
//	GET  <prefix>/servers/<name>    one server: health, tools, client configurations, connection
//	POST <prefix>/servers/<name>    action=enable|disable (toggle_service), check (health_check_service)
//
// A browser that is not signed in is sent to the built-in authorization server's
// sign-in page and back. Requests to other paths, <prefix>/mcp included, go to the
// next handler.
type UI struct {
	// Site is where the dashboard is mounted (prefix, default /ui), the gateway it
	// publishes, and the auth block, required: its policy decides what each person
	// sees.
	published.Site

	// SignIn is the issuer of the built-in authorization server (mcp_oauth_server)
	// whose browser sign-in the dashboard uses. Default: the config's only one.
	SignIn string `json:"sign_in,omitempty"`

	app    *mcpregistry.App
	auth   *access.Authenticator
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*UI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_ui",
		New: func() caddy.Module { return new(UI) },
	}
}

// Provision sets up the handler.
func (u *UI) Provision(ctx caddy.Context) error {
	u.logger = ctx.Logger()
	if u.Auth == nil {
		return fmt.Errorf("mcp_ui: an auth block is required: its policy decides what each user sees")
	}
	var err error
	u.app, u.auth, err = u.Site.Provision(ctx, u.logger, "mcp_ui", "/ui")
	return err
}

// ServeHTTP serves the dashboard's pages and passes every other request to next.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rest, ok := strings.CutPrefix(r.URL.Path, u.Prefix)
	// Only its own pages: a gateway server whose path is the prefix keeps <prefix>/mcp.
	if !ok || (rest != "" && rest != "/" && !strings.HasPrefix(rest, "/servers/")) {
		return next.ServeHTTP(w, r)
	}
	if rest == "" {
		http.Redirect(w, r, u.Prefix+"/", http.StatusMovedPermanently)
		return nil
	}
	post := r.Method == http.MethodPost && rest != "/"
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !post {
		w.Header().Set("Allow", "GET, HEAD")
		if rest != "/" {
			w.Header().Set("Allow", "GET, HEAD, POST")
		}
		renderMessage(w, http.StatusMethodNotAllowed, "Method not allowed", "The dashboard takes GET, and POST from a server's page.")
		return nil
	}
	signIn, issuer, problem := u.browserSignIn()
	if signIn == nil {
		renderMessage(w, http.StatusServiceUnavailable, "Sign-in unavailable", problem)
		return nil
	}
	subject, groups, ok := signIn.SignedInUser(r)
	if !ok {
		http.Redirect(w, r, signIn.SignInURL(r.URL.RequestURI()), http.StatusSeeOther)
		return nil
	}
	caller := u.auth.Resolve(&principal.Caller{Issuer: issuer, Subject: subject, Groups: groups})
	r = r.WithContext(principal.WithCaller(r.Context(), caller))
	v := view{ui: u, r: r, caller: caller, base: u.GatewayBase(r)}
	if rest == "/" {
		v.serveIndex(w)
		return nil
	}
	name, err := url.PathUnescape(strings.TrimPrefix(rest, "/servers/"))
	if err != nil {
		name = ""
	}
	if post {
		v.act(w, name)
		return nil
	}
	v.serveServer(w, name)
	return nil
}

// browserSignIn finds the built-in server whose sign-in the dashboard uses.
func (u *UI) browserSignIn() (authn.BrowserSignIn, string, string) {
	local := u.app.LocalIssuers()
	issuer := u.SignIn
	if issuer == "" {
		all := local.SignInIssuers()
		switch len(all) {
		case 0:
			return nil, "", "The dashboard signs people in through the built-in authorization server (mcp_oauth_server), and this server runs none."
		case 1:
			issuer = all[0]
		default:
			return nil, "", "Several built-in authorization servers run here: name the dashboard's in its sign_in option."
		}
	}
	b, ok := local.SignIn(issuer)
	if !ok {
		return nil, "", "The dashboard's sign-in server " + issuer + " does not run in this configuration."
	}
	return b, issuer, ""
}

// Interface guards
var (
	_ caddy.Provisioner           = (*UI)(nil)
	_ caddyhttp.MiddlewareHandler = (*UI)(nil)
)
