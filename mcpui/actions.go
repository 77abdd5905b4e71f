package mcpui

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// The server page's buttons post forms back to it. A form is honoured only with the
// CSRF token of the double-submit cookie the page set, from the dashboard's own origin,
// and for a caller whose policy grants the action on that server.

const csrfCookie = "mcp_ui_csrf"

// maxActionForm bounds a posted form.
const maxActionForm = 4 << 10

// csrfToken sets the page's double-submit cookie and returns the token its forms carry.
func (v view) csrfToken(w http.ResponseWriter) string {
	tok := rand.Text()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: v.ui.Prefix + "/", HttpOnly: true,
		Secure: v.r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return tok
}

// sameOrigin refuses a form another site made the browser post.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// act performs a posted action on the named server and sends the browser back to its
// page (303), or answers why not.
func (v view) act(w http.ResponseWriter, name string) {
	r := v.r
	r.Body = http.MaxBytesReader(w, r.Body, maxActionForm)
	if err := r.ParseForm(); err != nil {
		renderMessage(w, http.StatusBadRequest, "Bad request", "The form is malformed or too large.")
		return
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
		v.ui.logger.Warn("dashboard form without its page's CSRF token or from another site", zap.String("user", v.caller.Subject))
		renderMessage(w, http.StatusForbidden, "Forbidden", "This form does not come from your dashboard page. Reload the page and try again.")
		return
	}
	ctx := r.Context()
	s := v.ui.app.VisibleServer(ctx, name)
	if s == nil {
		renderMessage(w, http.StatusNotFound, "No such server", "There is no server named "+truncate(name, 64)+" here, or you may not see it.")
		return
	}
	action := r.PostForm.Get("action")
	var perm policy.UIPermission
	switch action {
	case "enable", "disable":
		perm = policy.ToggleService
	case "check":
		perm = policy.HealthCheckService
	default:
		renderMessage(w, http.StatusBadRequest, "Bad request", "Unknown action.")
		return
	}
	if !mcpregistry.Allowed(ctx, perm, s.Name) {
		renderMessage(w, http.StatusForbidden, "Not allowed", mcpregistry.DeniedError(perm, s.Name).Error())
		return
	}
	done := action + "d"
	if action == "check" {
		_, err = v.ui.app.RefreshNow(ctx, s.Name)
		done = "checked"
	} else {
		_, err = v.ui.app.SetEnabled(ctx, s.Name, action == "enable", model.AnyRevision)
	}
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, mcpregistry.ErrConfigManaged) {
			status = http.StatusConflict
		}
		renderMessage(w, status, "Not done", err.Error())
		return
	}
	v.ui.logger.Info("dashboard action", zap.String("user", v.caller.Subject), zap.String("server", s.Name), zap.String("action", action))
	http.Redirect(w, r, v.ui.Prefix+"/servers/"+url.PathEscape(s.Name)+"?done="+done, http.StatusSeeOther)
}
