package registryapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry"
)

// handleAdminConnections lists and removes users' upstream connections (the vault of
// backend_auth oauth). Nothing secret is returned.
//
//	GET    /mcp_registry/upstream_connections[?issuer=&subject=]   every connection, or one user's
//	DELETE /mcp_registry/upstream_connections?issuer=&subject=[&server=]
func handleAdminConnections(w http.ResponseWriter, r *http.Request) error {
	app, err := mcpregistry.Running()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	issuer, subject, server := q.Get("issuer"), q.Get("subject"), q.Get("server")
	if (issuer == "") != (subject == "") {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("give both issuer and subject (a user), or neither")}
	}
	var conns []mcpregistry.UpstreamConnection
	switch r.Method {
	case http.MethodGet:
		conns, err = app.UpstreamConnections(issuer, subject)
	case http.MethodDelete:
		if subject == "" {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("DELETE needs issuer and subject (and optionally server)")}
		}
		conns, err = app.DisconnectUpstream(issuer, subject, server)
	default:
		return methodNotAllowed(w, "GET, DELETE")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]any{"connections": conns})
}
