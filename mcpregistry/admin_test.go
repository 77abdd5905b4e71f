package mcpregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Through Caddy's admin endpoint: stats, export, import (replace) and the errors.
func TestAdminRoutes(t *testing.T) {
	addr := freeLoopback(t)
	cfg, _ := json.Marshal(map[string]any{
		"admin": map[string]any{"listen": addr, "config": map[string]any{"persist": false}},
		"apps": map[string]any{"mcp_registry": map[string]any{
			"storage": map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
			"health":  map[string]any{"disabled": true},
			"servers": []map[string]any{{"name": "cfg", "upstream": "http://127.0.0.1:3000/mcp"}},
		}},
	})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop the admin listener too: load a config without one.
		off, _ := json.Marshal(map[string]any{"admin": noAdmin})
		caddy.Load(off, true)
		caddy.Stop()
	})
	app := runningApp(t)
	if _, err := app.Put(context.Background(), &Server{Name: "rt", Upstream: "http://127.0.0.1:4000/sse", Transport: TransportSSE}, 0); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second}
	do := func(method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	code, body := do("GET", "/mcp_registry/stats", nil)
	var st RegistryStats
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("stats: %d %s", code, body)
	}
	if st.Servers != 3 || st.Enabled != 2 || st.Disabled != 1 || st.ByTransport["sse"] != 1 || st.BySource["api"] != 1 ||
		st.BySource["config"] != 2 || st.ByStatus["healthy"] != 1 || st.Tools == 0 || st.DBSizeBytes <= 0 {
		t.Fatalf("stats: %s", body)
	}

	code, export := do("GET", "/mcp_registry/export", nil)
	if code != 200 || !strings.Contains(string(export), `"rt"`) {
		t.Fatalf("export: %d %s", code, export)
	}
	if err := app.Delete(context.Background(), "rt", AnyRevision); err != nil {
		t.Fatal(err)
	}
	if code, body := do("POST", "/mcp_registry/import?mode=replace", export); code != 200 || !strings.Contains(string(body), `"servers":3`) {
		t.Fatalf("import: %d %s", code, body)
	}
	if s := app.Lookup("rt"); s == nil || s.Transport != TransportSSE {
		t.Fatalf("imported server not routed: %+v", s)
	}

	if code, body := do("POST", "/mcp_registry/import?mode=upsert", export); code != 400 {
		t.Fatalf("bad mode: %d %s", code, body)
	}
	if code, body := do("POST", "/mcp_registry/import", []byte(`{"format":"caddymcp-registry-export","version":1,"servers":[{"name":"x","upstream":"gopher://h"}]}`)); code != 400 || !strings.Contains(string(body), "upstream") {
		t.Fatalf("invalid import: %d %s", code, body)
	}
	if app.Lookup("x") != nil || app.Lookup("rt") == nil {
		t.Fatal("a failed import changed the index")
	}
	if code, _ := do("POST", "/mcp_registry/export", nil); code != 405 {
		t.Fatalf("POST export: %d", code)
	}
	if code, _ := do("GET", "/mcp_registry/import", nil); code != 405 {
		t.Fatalf("GET import: %d", code)
	}
}
