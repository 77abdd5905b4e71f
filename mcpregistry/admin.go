package mcpregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the admin.api.mcp_registry module: operator routes for the registry on
// Caddy's admin endpoint (which is only as protected as the admin endpoint itself):
//
//	GET  /mcp_registry/export                       the whole store as JSON (credentials sealed)
//	POST /mcp_registry/import?mode=merge|replace    load an export (one transaction)
//	GET  /mcp_registry/stats                        counts and database size
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
		{Pattern: "/mcp_registry/export", Handler: caddy.AdminHandlerFunc(handleAdminExport)},
		{Pattern: "/mcp_registry/import", Handler: caddy.AdminHandlerFunc(handleAdminImport)},
		{Pattern: "/mcp_registry/stats", Handler: caddy.AdminHandlerFunc(handleAdminStats)},
	}
}

// runningRegistry returns the mcp_registry app of the running config.
func runningRegistry() (*App, error) {
	app, err := caddy.ActiveContext().AppIfConfigured("mcp_registry")
	if err != nil || app == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("the mcp_registry app is not running")}
	}
	a, ok := app.(*App)
	if !ok || a.store == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the mcp_registry app is not ready")}
	}
	return a, nil
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed; use %s", allow)}
}

func handleAdminExport(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	a, err := runningRegistry()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="mcp-registry-export.json"`)
	return a.Export(w)
}

func handleAdminImport(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, http.MethodPost)
	}
	a, err := runningRegistry()
	if err != nil {
		return err
	}
	mode := ImportMode(r.URL.Query().Get("mode"))
	if mode == "" {
		mode = ImportMerge
	}
	if mode != ImportMerge && mode != ImportReplace {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("mode %q is not one of merge, replace", mode)}
	}
	if r.ContentLength > MaxImportBytes {
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("import is larger than %d bytes", MaxImportBytes)}
	}
	body := http.MaxBytesReader(w, r.Body, MaxImportBytes+1)
	res, err := a.Import(r.Context(), body, mode)
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

// RegistryStats is the answer of GET /mcp_registry/stats.
type RegistryStats struct {
	Servers     int            `json:"servers"`
	Enabled     int            `json:"enabled"`
	Disabled    int            `json:"disabled"`
	ByStatus    map[string]int `json:"by_status"`
	ByTransport map[string]int `json:"by_transport"`
	BySource    map[string]int `json:"by_source"`
	Tools       int            `json:"tools"`
	Tombstones  int            `json:"tombstones"`
	Credentials int            `json:"credentials"`
	DBPath      string         `json:"db_path,omitempty"`
	DBSizeBytes int64          `json:"db_size_bytes"`
}

// Stats counts the registry's servers (by health status, enabled, transport and
// source), their discovered tools, tombstones and credentials, and sizes the store.
func (a *App) Stats() (*RegistryStats, error) {
	st := &RegistryStats{
		ByStatus: map[string]int{}, ByTransport: map[string]int{}, BySource: map[string]int{},
		DBPath: a.storePath,
	}
	for _, s := range a.ListServers() {
		st.Servers++
		if s.Enabled {
			st.Enabled++
		} else {
			st.Disabled++
		}
		st.ByTransport[string(s.Transport)]++
		st.BySource[string(s.Source)]++
		h, _ := a.Health(s.Name)
		status := string(h.Status)
		if status == "" {
			status = string(HealthUnknown)
		}
		st.ByStatus[status]++
		st.Tools += len(h.Tools)
	}
	err := a.store.View(func(tx StoreTx) error {
		ts, err := tx.ListTombstones()
		if err != nil {
			return err
		}
		st.Tombstones = len(ts)
		cs, err := tx.ListCredentials()
		st.Credentials = len(cs)
		return err
	})
	if err != nil {
		return nil, err
	}
	if sr, ok := a.store.(SizeReporter); ok {
		if st.DBSizeBytes, err = sr.SizeBytes(); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func handleAdminStats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, http.MethodGet)
	}
	a, err := runningRegistry()
	if err != nil {
		return err
	}
	st, err := a.Stats()
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return writeAdminJSON(w, st)
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var _ caddy.AdminRouter = AdminAPI{}
