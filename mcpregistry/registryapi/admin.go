package registryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the admin.api.mcp_registry module: operator routes for the registry on
// Caddy's admin endpoint (which is only as protected as the admin endpoint itself):
//
//	GET  /mcp_registry/backup                       the whole store as JSON (credentials sealed)
//	POST /mcp_registry/restore?mode=merge|replace    load a backup (one transaction)
//	GET  /mcp_registry/stats                        counts and database size
//	POST /mcp_registry/import_server_json[?name_prefix=]  register server.json document(s)
//	POST /mcp_registry/sync?from=<url>[&name_prefix=][&full=true]  pull another registry's v0.1 API
//	GET|DELETE /mcp_registry/upstream_connections[?issuer=&subject=[&server=]]  users' upstream OAuth connections
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mcp_registry",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/mcp_registry/backup", Handler: caddy.AdminHandlerFunc(handleAdminBackup)},
		{Pattern: "/mcp_registry/restore", Handler: caddy.AdminHandlerFunc(handleAdminRestore)},
		{Pattern: "/mcp_registry/stats", Handler: caddy.AdminHandlerFunc(handleAdminStats)},
		{Pattern: "/mcp_registry/import_server_json", Handler: caddy.AdminHandlerFunc(handleAdminImportServerJSON)},
		{Pattern: "/mcp_registry/sync", Handler: caddy.AdminHandlerFunc(handleAdminSync)},
		{Pattern: "/mcp_registry/upstream_connections", Handler: caddy.AdminHandlerFunc(handleAdminConnections)},
	}
}

// runningRegistry returns the mcp_registry app of the running config.

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed; use %s", allow)}
}

func handleAdminBackup(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	a, err := mcpregistry.Running()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="mcp-registry-export.json"`)
	return a.Backup(w)
}

func handleAdminRestore(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, http.MethodPost)
	}
	a, err := mcpregistry.Running()
	if err != nil {
		return err
	}
	mode := store.RestoreMode(r.URL.Query().Get("mode"))
	if mode == "" {
		mode = store.RestoreMerge
	}
	if mode != store.RestoreMerge && mode != store.RestoreReplace {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("mode %q is not one of merge, replace", mode)}
	}
	if r.ContentLength > store.MaxBackupBytes {
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("backup is larger than %d bytes", store.MaxBackupBytes)}
	}
	body := http.MaxBytesReader(w, r.Body, store.MaxBackupBytes+1)
	res, err := a.Restore(r.Context(), body, mode)
	if err != nil {
		status := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || strings.Contains(err.Error(), "larger than") {
			status = http.StatusRequestEntityTooLarge
		}
		return caddy.APIError{HTTPStatus: status, Err: err}
	}
	return writeAdminJSON(w, res)
}

func handleAdminStats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	a, err := mcpregistry.Running()
	if err != nil {
		return err
	}
	st, err := a.Stats()
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return writeAdminJSON(w, st)
}

// handleAdminImportServerJSON registers the servers of one server.json document or a
// JSON array of them (see ImportServerJSON). An unusable document fails the request
// (400) and nothing is written; names held by other records are skipped (200, reasons
// in the answer).
func handleAdminImportServerJSON(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, http.MethodPost)
	}
	a, err := mcpregistry.Running()
	if err != nil {
		return err
	}
	if r.ContentLength > mcpregistry.MaxServerJSONBytes {
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("body is larger than %d bytes", mcpregistry.MaxServerJSONBytes)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, mcpregistry.MaxServerJSONBytes))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("reading the body (at most %d bytes): %w", mcpregistry.MaxServerJSONBytes, err)}
	}
	res, err := a.ImportServerJSON(r.Context(), body, r.URL.Query().Get("name_prefix"))
	if err != nil {
		if res != nil { // a store error part way
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	return writeAdminJSON(w, res)
}

// handleAdminSync runs one sync from the registry at ?from= (see SyncFrom); full=true
// ignores the remembered time of the last sync. A sync that fails part way answers 502
// with the counts of the pages applied before the failure.
func handleAdminSync(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, http.MethodPost)
	}
	a, err := mcpregistry.Running()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from := q.Get("from")
	if from == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("from: the base URL of the registry to sync from is required")}
	}
	full := false
	if v := q.Get("full"); v != "" {
		if full, err = strconv.ParseBool(v); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("full: %q must be true or false", v)}
		}
	}
	res, err := a.SyncFrom(r.Context(), mcpregistry.SyncOptions{From: from, NamePrefix: q.Get("name_prefix"), Full: full})
	if err != nil {
		if res == nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusBadGateway)
		return json.NewEncoder(w).Encode(res)
	}
	return writeAdminJSON(w, res)
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var _ caddy.AdminRouter = AdminAPI{}
