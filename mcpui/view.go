package mcpui

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/ideconfig"
	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// maxQuery bounds the search box, as the registry's REST search does.
const maxQuery = 256

// pageSize bounds the servers one index page lists; the next page starts after the
// last name shown.
var pageSize = 200 // a variable for the tests

// view is one request's page data source: the signed-in caller and the gateway's
// public base URL.
type view struct {
	ui     *UI
	r      *http.Request
	caller *principal.Caller
	base   string
}

type serverRow struct {
	Name, Description, URL, Health string
	Tags                           []string
	Enabled                        bool
	Tools                          int
}

type hitRow struct{ Kind, Server, Tool, Description string }

func (v view) page(title string) pageData {
	return pageData{Title: title, Prefix: v.ui.Prefix, User: v.caller.Subject, Groups: strings.Join(v.caller.Groups, ", "), Account: accountPath(v.caller.Issuer)}
}

func (v view) serveIndex(w http.ResponseWriter) {
	ctx := v.r.Context()
	app := v.ui.app
	d := v.page("MCP servers")
	d.Query = strings.TrimSpace(v.r.URL.Query().Get("q"))
	if len(d.Query) > maxQuery {
		renderMessage(w, http.StatusBadRequest, "Search too long", fmt.Sprintf("A search is at most %d bytes.", maxQuery))
		return
	}
	after := v.r.URL.Query().Get("after")
	all := app.ListServers() // sorted by name
	i, _ := slices.BinarySearchFunc(all, after, func(s *model.Server, name string) int { return strings.Compare(s.Name, name) })
	for ; i < len(all); i++ {
		s := all[i]
		if s.Name == after || !app.CanList(ctx, s) {
			continue
		}
		if len(d.Servers) == pageSize {
			d.Next = d.Servers[pageSize-1].Name
			break
		}
		hl, _ := app.Health(s.Name)
		d.Servers = append(d.Servers, serverRow{Name: s.Name, Description: s.Description, URL: v.serverURL(s), Health: string(hl.Status),
			Tags: s.Tags, Enabled: s.Enabled, Tools: len(app.VisibleTools(ctx, s))})
	}
	if d.Query != "" {
		for _, h := range app.SearchResults(app.SearchVisible(ctx, d.Query, 20), v.base, false) {
			d.Hits = append(d.Hits, hitRow{Kind: h.Kind, Server: h.Server, Tool: h.Tool, Description: h.Description})
		}
	}
	render(w, http.StatusOK, "index", d)
}

type configBlock struct {
	Client, Path, Content, Command string
	Notes                          []string
}

func (v view) serveServer(w http.ResponseWriter, name string) {
	ctx := v.r.Context()
	app := v.ui.app
	s := app.VisibleServer(ctx, name)
	if s == nil {
		renderMessage(w, http.StatusNotFound, "No such server", fmt.Sprintf("There is no server named %q here, or you may not see it.", truncate(name, 64)))
		return
	}
	d := v.page(s.Name)
	hl, _ := app.Health(s.Name)
	d.Server = &serverRow{Name: s.Name, Description: s.Description, URL: v.serverURL(s), Health: string(hl.Status), Tags: s.Tags, Enabled: s.Enabled}
	d.LastError = hl.LastError
	d.MayToggle = mcpregistry.Allowed(ctx, policy.ToggleService, s.Name)
	d.MayCheck = mcpregistry.Allowed(ctx, policy.HealthCheckService, s.Name)
	if d.MayToggle || d.MayCheck {
		d.CSRF = v.csrfToken(w)
	}
	switch done := v.r.URL.Query().Get("done"); done {
	case "enabled", "disabled", "checked":
		d.Done = done
	}
	for _, t := range app.VisibleTools(ctx, s) {
		d.Tools = append(d.Tools, hitRow{Tool: t.Name, Description: t.Description})
	}
	d.TokenMode = v.r.URL.Query().Get("auth") == "token"
	if s.Transport == model.TransportSSE {
		d.Notes = append(d.Notes, "This server speaks the legacy SSE transport: add "+d.Server.URL+" to your client as an SSE server.")
	} else if s.Enabled {
		d.Configs = v.configs(s, d.TokenMode)
	}
	if s.BackendAuth.Scheme == model.BackendAuthOAuth && s.Enabled {
		v.connection(s, &d)
	}
	render(w, http.StatusOK, "server", d)
}

// configs renders every client's configuration of s.
func (v view) configs(s *model.Server, tokenMode bool) []configBlock {
	srv := ideconfig.Server{Name: s.Name, URL: v.serverURL(s)}
	if tokenMode {
		srv.Token = &ideconfig.Token{EnvVar: "CADDYMCP_TOKEN", Description: "caddymcp gateway token"}
		if s.GatewayTokenHeader == model.GatewayTokenXAuthorization {
			srv.Token.Header, srv.Token.Scheme = "X-Authorization", "Bearer"
		}
	}
	var out []configBlock
	for _, c := range ideconfig.Clients() {
		o, err := ideconfig.Generate(c, []ideconfig.Server{srv})
		if err != nil {
			v.ui.logger.Error("generating a client configuration", zap.String("client", string(c)), zap.String("server", s.Name), zap.Error(err))
			continue
		}
		out = append(out, configBlock{Client: string(c), Path: o.Path, Content: o.Content, Command: o.Command, Notes: o.Notes})
	}
	return out
}

// connection tells whether the user has connected their own account at s (backend_auth
// oauth), with a link to the gateway's connect page made for them.
func (v view) connection(s *model.Server, d *pageData) {
	app := v.ui.app
	conns, err := app.UpstreamConnections(v.caller.Issuer, v.caller.Subject)
	if err != nil {
		v.ui.logger.Error("listing upstream connections", zap.Error(err))
	}
	d.Connected = slices.ContainsFunc(conns, func(c mcpregistry.UpstreamConnection) bool { return c.Server == s.Name })
	link, _, err := app.NewConnectLink(s.Name, v.caller.Issuer, v.caller.Subject)
	if err != nil {
		d.Notes = append(d.Notes, "Connecting your account is unavailable: "+err.Error())
		return
	}
	d.ConnectURL = v.base + "/" + s.Path + "/connect?link=" + url.QueryEscape(link)
}

func (v view) serverURL(s *model.Server) string {
	return v.base + "/" + s.Path + s.GatewayEndpoint()
}

// accountPath is the built-in server's account page, as a path on this site.
func accountPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return strings.TrimRight(u.Path, "/") + "/account"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
