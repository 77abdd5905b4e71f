package mcpregistry

import (
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

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
			status = string(model.HealthUnknown)
		}
		st.ByStatus[status]++
		st.Tools += len(h.Tools)
	}
	err := a.store.View(func(tx store.Tx) error {
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
	if sr, ok := a.store.(store.SizeReporter); ok {
		if st.DBSizeBytes, err = sr.SizeBytes(); err != nil {
			return nil, err
		}
	}
	return st, nil
}
