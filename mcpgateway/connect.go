package mcpgateway

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/htmlpage"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// The connect page (<prefix>/<server>/connect) is where a user connects their own
// account at an upstream of backend_auth oauth. The link a client is handed carries,
// sealed, the caller it was made for; the page serves only the browser whose user —
// signed in with the built-in authorization server — is that caller. Starting the
// connection takes a POST with a CSRF token (double-submitted with a SameSite=Strict
// cookie); the flow it stores is single-use, short-lived and bound to a random nonce
// in a cookie of this browser and to the caller; the callback checks all of it again
// before the code is redeemed, and stores nothing when anything is wrong.

const (
	csrfCookie = "mcp_connect_csrf"
	flowCookie = "mcp_connect_flow"
	// maxConnectForm bounds the connect page's POST body.
	maxConnectForm = 16 << 10
	// maxConnectQuery bounds the query of the connect page and of its callback (a
	// link is at most 2 KiB, a code 4 KiB, a state 512 bytes).
	maxConnectQuery = 8 << 10
	// maxFormServer bounds the server named in a disconnect.
	maxFormServer = 256
)

var connectPages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{{.Title}}</title></head><body style="font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem">{{end}}
{{define "message"}}{{template "head" .}}<h1>{{.Title}}</h1><p{{if .Error}} role="alert"{{else}} role="status"{{end}}>{{.Message}}</p>{{if .Done}}<p>You can close this window and go back to your assistant: calls to <b>{{.Server}}</b> now carry your own authorization.</p>{{end}}</body></html>{{end}}
{{define "connect"}}{{template "head" .}}<h1>{{.Title}}</h1>
<p>Signed in as <b>{{.User}}</b>.</p>
{{if .Message}}<p role="status">{{.Message}}</p>{{end}}
<p>MCP server <b>{{.Server}}</b> acts on your behalf with your own account at its service. Connect it once: you will sign in there, and the gateway keeps your authorization (encrypted) and uses it only for your calls to <b>{{.Server}}</b>.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="link" value="{{.Link}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" name="action" value="connect">Connect {{.Server}}</button></form>
{{if .Connections}}<h2>Your connected services</h2><table>{{range .Connections}}<tr><td>{{.Server}}</td><td>since {{.ConnectedAt.Format "2006-01-02 15:04 MST"}}</td><td>{{.Scope}}</td><td><form method="post" action="{{$.Action}}"><input type="hidden" name="link" value="{{$.Link}}"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="server" value="{{.Server}}"><button type="submit" name="action" value="disconnect">Disconnect</button></form></td></tr>{{end}}</table>{{end}}
</body></html>{{end}}
`))

type connectPage struct {
	Title, Message, Server, User, Action, Link, CSRF string
	Error, Done                                      bool
	Connections                                      []mcpregistry.UpstreamConnection
}

func renderConnect(w http.ResponseWriter, status int, name string, p connectPage) {
	htmlpage.SetHeaders(w, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'", "no-referrer")
	w.WriteHeader(status)
	_ = connectPages.ExecuteTemplate(w, name, p)
}

// connectRefused answers a refused connect request with a page and logs why.
func (g *Gateway) connectRefused(w http.ResponseWriter, server string, status int, why string, fields ...zap.Field) {
	g.logger.Warn("connect refused", append([]zap.Field{zap.String("server", server), zap.String("reason", why)}, fields...)...)
	renderConnect(w, status, "message", connectPage{Title: "Cannot connect " + server, Message: why, Server: server, Error: true})
}

// publicBase is the gateway's origin as clients reach it: the auth resource's origin
// when configured, else the request's.
func (g *Gateway) publicBase(r *http.Request) string {
	if g.auth != nil {
		if u, err := url.Parse(g.auth.Resource()); err == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (g *Gateway) connectPath(segment string) string { return g.Prefix + "/" + segment + "/connect" }

// ConnectURL is the connect page for link.
func (g *Gateway) connectURL(r *http.Request, segment, link string) string {
	return g.publicBase(r) + g.connectPath(segment) + "?link=" + url.QueryEscape(link)
}

// signInOf returns the browser sign-in of issuer, or false when the issuer is not a
// local one with pages (a token of an external identity provider).
func (g *Gateway) signInOf(issuer string) (authn.BrowserSignIn, bool) {
	if issuer == "" {
		return nil, false
	}
	return g.registry.LocalIssuers().SignIn(issuer)
}

const externalIssuerConnect = "connecting an account needs the gateway's built-in sign-in (mcp_oauth_server): " +
	"your token comes from another identity provider, so the connect page cannot check that the browser is yours"

// serveConnect serves the connect page and its callback for server.
func (g *Gateway) serveConnect(w http.ResponseWriter, r *http.Request, server *model.Server, segment string, ep endpoint) {
	if g.registry.UpstreamGrant(server.Name) != mcpregistry.OAuthGrantAuthorizationCode {
		renderConnect(w, http.StatusNotFound, "message", connectPage{Title: "Not found", Message: "MCP server " + server.Name + " takes no per-user connection.", Error: true})
		return
	}
	if len(r.URL.RawQuery) > maxConnectQuery {
		g.connectRefused(w, server.Name, http.StatusRequestURITooLong, "the address is too long")
		return
	}
	switch ep {
	case endpointConnectCallback:
		g.serveConnectCallback(w, r, server, segment)
		return
	case endpointConnectMetadata:
		g.serveClientMetadata(w, r, server, segment)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		link := r.URL.Query().Get("link")
		user, ok := g.connectUser(w, r, server, link, true)
		if !ok {
			return
		}
		g.renderConnectPage(w, r, server, segment, link, user, "")
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxConnectForm)
		if err := r.ParseForm(); err != nil {
			g.connectRefused(w, server.Name, http.StatusBadRequest, "the form could not be read")
			return
		}
		if !g.sameOriginPost(r) {
			g.connectRefused(w, server.Name, http.StatusForbidden, "the form was posted from another site")
			return
		}
		c, err := r.Cookie(csrfCookie)
		form := r.PostForm.Get("csrf")
		if err != nil || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
			g.connectRefused(w, server.Name, http.StatusForbidden, "the form's CSRF token is missing or wrong; open the connect link again")
			return
		}
		link := r.PostForm.Get("link")
		user, ok := g.connectUser(w, r, server, link, false)
		if !ok {
			return
		}
		switch r.PostForm.Get("action") {
		case "connect":
			nonce := randomToken()
			redirect := g.publicBase(r) + g.connectPath(segment) + "/callback"
			authURL, err := g.registry.BeginConnect(r.Context(), server.Name, user.issuer, user.subject, redirect, nonce)
			var tooMany *mcpregistry.TooManyFlowsError
			if errors.As(err, &tooMany) {
				w.Header().Set("Retry-After", "60")
				g.connectRefused(w, server.Name, http.StatusTooManyRequests, err.Error(), zap.String("user", user.subject))
				return
			}
			if err != nil {
				g.connectRefused(w, server.Name, http.StatusBadGateway, "the authorization server of "+server.Name+" cannot be used right now: "+err.Error())
				return
			}
			http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: nonce, Path: g.connectPath(segment) + "/callback",
				MaxAge: 600, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
			http.Redirect(w, r, authURL, http.StatusSeeOther)
		case "disconnect":
			name := r.PostForm.Get("server")
			if name == "" || len(name) > maxFormServer {
				g.connectRefused(w, server.Name, http.StatusBadRequest, "the form names no valid server to disconnect")
				return
			}
			if _, err := g.registry.DisconnectUpstream(user.issuer, user.subject, name); err != nil {
				g.connectRefused(w, server.Name, http.StatusInternalServerError, "disconnecting failed", zap.Error(err))
				return
			}
			g.renderConnectPage(w, r, server, segment, link, user, "Disconnected "+name+".")
		default:
			g.connectRefused(w, server.Name, http.StatusBadRequest, "unknown action")
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		renderConnect(w, http.StatusMethodNotAllowed, "message", connectPage{Title: "Method not allowed", Message: "Use GET or POST.", Error: true})
	}
}

type connectCaller struct{ issuer, subject string }

// connectUser opens link and checks that the browser's signed-in user is the caller it
// was made for. A browser not signed in is sent to sign in (GET) or refused (POST).
func (g *Gateway) connectUser(w http.ResponseWriter, r *http.Request, server *model.Server, link string, mayRedirect bool) (connectCaller, bool) {
	iss, sub, err := g.registry.OpenConnectLink(server.Name, link)
	if err != nil {
		g.connectRefused(w, server.Name, http.StatusBadRequest, err.Error())
		return connectCaller{}, false
	}
	signIn, ok := g.signInOf(iss)
	if !ok {
		g.connectRefused(w, server.Name, http.StatusBadRequest, externalIssuerConnect, zap.String("user", sub))
		return connectCaller{}, false
	}
	user, ok := signIn.SignedIn(r)
	if !ok {
		if mayRedirect {
			http.Redirect(w, r, signIn.SignInURL(r.URL.RequestURI()), http.StatusSeeOther)
		} else {
			g.connectRefused(w, server.Name, http.StatusForbidden, "you are not signed in; open the connect link again")
		}
		return connectCaller{}, false
	}
	if user != sub {
		g.connectRefused(w, server.Name, http.StatusForbidden, "this link was made for another user than the one signed in here ("+user+"); sign out, or use the link your own assistant gave you",
			zap.String("user", sub), zap.String("signed_in", user))
		return connectCaller{}, false
	}
	return connectCaller{issuer: iss, subject: sub}, true
}

func (g *Gateway) renderConnectPage(w http.ResponseWriter, r *http.Request, server *model.Server, segment, link string, user connectCaller, message string) {
	conns, err := g.registry.UpstreamConnections(user.issuer, user.subject)
	if err != nil {
		g.logger.Error("listing upstream connections", zap.Error(err))
	}
	csrf := randomToken()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: csrf, Path: g.connectPath(segment),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	renderConnect(w, http.StatusOK, "connect", connectPage{
		Title: "Connect " + server.Name, Message: message, Server: server.Name, User: user.subject,
		Action: g.connectPath(segment), Link: link, CSRF: csrf, Connections: conns,
	})
}

// sameOriginPost refuses a POST whose Origin (or, without one, Referer) names another
// site than the gateway's.
func (g *Gateway) sameOriginPost(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" {
		ref := r.Header.Get("Referer")
		if ref == "" {
			return true // neither sent (privacy settings): the CSRF token decides
		}
		u, err := url.Parse(ref)
		if err != nil {
			return false
		}
		from = u.Scheme + "://" + u.Host
	}
	if from == "null" {
		return false
	}
	u, err := url.Parse(from)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || strings.EqualFold(from, g.publicBase(r))
}

// serveConnectCallback completes a connection: the authorization server's redirect back.
func (g *Gateway) serveConnectCallback(w http.ResponseWriter, r *http.Request, server *model.Server, segment string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		renderConnect(w, http.StatusMethodNotAllowed, "message", connectPage{Title: "Method not allowed", Message: "Use GET.", Error: true})
		return
	}
	q := r.URL.Query()
	f, err := g.registry.TakeConnectFlow(server.Name, q.Get("state"))
	if err != nil {
		g.connectRefused(w, server.Name, http.StatusBadRequest, err.Error())
		return
	}
	// The flow is taken: whatever happens next, it cannot be completed again.
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: "", Path: g.connectPath(segment) + "/callback", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	nonce := ""
	if c, err := r.Cookie(flowCookie); err == nil {
		nonce = c.Value
	}
	if !f.BrowserMatches(nonce) {
		g.connectRefused(w, server.Name, http.StatusForbidden, "this callback reached another browser than the one that started the connection", zap.String("user", f.Subject))
		return
	}
	signIn, ok := g.signInOf(f.Issuer)
	if !ok {
		g.connectRefused(w, server.Name, http.StatusBadRequest, externalIssuerConnect, zap.String("user", f.Subject))
		return
	}
	if user, ok := signIn.SignedIn(r); !ok || user != f.Subject {
		g.connectRefused(w, server.Name, http.StatusForbidden, "the user signed in here is not the one who started this connection", zap.String("user", f.Subject))
		return
	}
	if e := q.Get("error"); e != "" {
		g.connectRefused(w, server.Name, http.StatusForbidden, "the authorization server of "+server.Name+" did not grant access ("+printableParam(e)+")", zap.String("user", f.Subject))
		return
	}
	if err := g.registry.FinishConnect(r.Context(), f, q.Get("code"), q.Get("iss")); err != nil {
		g.connectRefused(w, server.Name, http.StatusBadGateway, "connecting failed: "+err.Error(), zap.String("user", f.Subject))
		return
	}
	renderConnect(w, http.StatusOK, "message", connectPage{Title: "Connected " + server.Name, Message: server.Name + " is connected for " + f.Subject + ".", Server: server.Name, Done: true})
}

// serveClientMetadata serves the gateway's client ID metadata document for server
// (registration cimd): public, since the upstream's authorization server fetches it.
func (g *Gateway) serveClientMetadata(w http.ResponseWriter, r *http.Request, server *model.Server, segment string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	doc, err := g.registry.ClientMetadataDocument(server.Name, g.publicBase(r)+g.connectPath(segment)+"/callback")
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Content-Length", strconv.Itoa(len(doc)))
	_, _ = w.Write(doc)
}

// printableParam bounds and cleans a query parameter for a page or a log.
func printableParam(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
