package registryapi

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/principal"
)

// The caller's own upstream connections (backend_auth oauth), over REST:
//
//	GET    /api/connections           the caller's connections: server, scope, since, expiry
//	DELETE /api/connections/{server}  remove the caller's connection to server (204)
//
// The caller is always the authenticated one: nothing in the request names a user,
// so no caller sees or removes another's. No token is ever returned.

// maxServerName bounds a server name in a path.
const maxServerName = 256

// userConnection is one of the caller's connections as listed.
type userConnection struct {
	Server      string    `json:"server"`
	Scope       string    `json:"scope,omitempty"`
	ConnectedAt time.Time `json:"connected_at"`
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

// serveConnections serves /api/connections[/…]; rest is the path after /api.
func (h *RegistryAPI) serveConnections(w http.ResponseWriter, r *http.Request, rest string) {
	caller, ok := principal.FromContext(r.Context())
	if !ok || caller == nil || caller.Subject == "" {
		msg := "connections belong to a user; this token names none"
		if !ok {
			msg = "the registry API has no auth configured, so there is no user whose connections to show; configure auth in mcp_registry_api"
		}
		restError(w, http.StatusForbidden, "forbidden", "", msg)
		return
	}
	if rest == "/connections" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			restMethodNotAllowed(w, "GET, HEAD")
			return
		}
		conns, err := h.app.UpstreamConnections(caller.Issuer, caller.Subject)
		if err != nil {
			h.logger.Error("listing a user's upstream connections", zap.Error(err))
			restError(w, http.StatusInternalServerError, "internal", "", "listing your connections failed")
			return
		}
		out := make([]userConnection, 0, len(conns))
		for _, c := range conns {
			out = append(out, userConnection{Server: c.Server, Scope: c.Scope, ConnectedAt: c.ConnectedAt, RefreshedAt: c.RefreshedAt, ExpiresAt: c.ExpiresAt})
		}
		apiWriteJSON(w, http.StatusOK, map[string]any{"connections": out})
		return
	}
	esc := strings.TrimPrefix(rest, "/connections/")
	if len(esc) > 3*maxServerName {
		restError(w, http.StatusBadRequest, "invalid_field", "server", "the server name is too long")
		return
	}
	name, err := url.PathUnescape(esc)
	if err != nil || name == "" || strings.Contains(name, "/") {
		restError(w, http.StatusNotFound, "not_found", "", "no such API endpoint: "+r.URL.Path)
		return
	}
	if len(name) > maxServerName {
		restError(w, http.StatusBadRequest, "invalid_field", "server", "the server name is too long")
		return
	}
	if r.Method != http.MethodDelete {
		restMethodNotAllowed(w, "DELETE")
		return
	}
	gone, err := h.app.DisconnectUpstream(caller.Issuer, caller.Subject, name)
	if err != nil {
		h.logger.Error("removing a user's upstream connection", zap.Error(err))
		restError(w, http.StatusInternalServerError, "internal", "", "removing your connection failed")
		return
	}
	if len(gone) == 0 {
		restError(w, http.StatusNotFound, "not_found", "", "you have no connection to "+name)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
