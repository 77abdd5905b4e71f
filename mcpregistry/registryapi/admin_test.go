package registryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
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
			"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
			"health":            map[string]any{"disabled": true},
			"runtime_upstreams": loopbackUpstreams,
			"servers":           []map[string]any{{"name": "cfg", "upstream": "http://127.0.0.1:3000/mcp"}},
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
	if _, err := app.Put(context.Background(), &model.Server{Name: "rt", Upstream: "http://127.0.0.1:4000/sse", Transport: model.TransportSSE}, 0); err != nil {
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

	if code, body := do("GET", "/mcp_registry/upstream_connections", nil); code != 200 || string(bytes.TrimSpace(body)) != `{"connections":[]}` {
		t.Fatalf("upstream connections: %d %s", code, body)
	}
	if code, body := do("DELETE", "/mcp_registry/upstream_connections", nil); code != 400 {
		t.Fatalf("deleting every user's connections at once: %d %s", code, body)
	}
	if code, body := do("GET", "/mcp_registry/upstream_connections?subject=alice", nil); code != 400 {
		t.Fatalf("a subject without issuer: %d %s", code, body)
	}
	if code, body := do("DELETE", "/mcp_registry/upstream_connections?issuer=https://i.example&subject=alice", nil); code != 200 {
		t.Fatalf("deleting a user's connections: %d %s", code, body)
	}

	code, body := do("GET", "/mcp_registry/stats", nil)
	var st mcpregistry.RegistryStats
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("stats: %d %s", code, body)
	}
	if st.Servers != 3 || st.Enabled != 2 || st.Disabled != 1 || st.ByTransport["sse"] != 1 || st.BySource["api"] != 1 ||
		st.BySource["config"] != 2 || st.ByStatus["healthy"] != 1 || st.Tools == 0 || st.DBSizeBytes <= 0 {
		t.Fatalf("stats: %s", body)
	}

	code, export := do("GET", "/mcp_registry/backup", nil)
	if code != 200 || !strings.Contains(string(export), `"rt"`) {
		t.Fatalf("export: %d %s", code, export)
	}
	if err := app.Delete(context.Background(), "rt", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	if code, body := do("POST", "/mcp_registry/restore?mode=replace", export); code != 200 || !strings.Contains(string(body), `"servers":3`) {
		t.Fatalf("import: %d %s", code, body)
	}
	if s := app.Lookup("rt"); s == nil || s.Transport != model.TransportSSE {
		t.Fatalf("imported server not routed: %+v", s)
	}

	if code, body := do("POST", "/mcp_registry/restore?mode=upsert", export); code != 400 {
		t.Fatalf("bad mode: %d %s", code, body)
	}
	if code, body := do("POST", "/mcp_registry/restore", []byte(`{"format":"caddymcp-registry-export","version":1,"servers":[{"name":"x","upstream":"gopher://h"}]}`)); code != 400 || !strings.Contains(string(body), "upstream") {
		t.Fatalf("invalid import: %d %s", code, body)
	}
	// A backup is a way to register servers: its upstreams pass the same checks.
	for _, evil := range []string{"http://" + addr + "/stop", "http://169.254.169.254/latest/meta-data/"} {
		doc := `{"format":"caddymcp-registry-export","version":1,"servers":[{"name":"x","path":"x","upstream":"` + evil + `","transport":"streamable-http","enabled":true,"backend_auth":{"scheme":"none"},"source":"api","revision":1}]}`
		if code, body := do("POST", "/mcp_registry/restore", []byte(doc)); code != 400 || !strings.Contains(string(body), "upstream") {
			t.Errorf("import of %s: %d %s, want 400 naming the upstream", evil, code, body)
		}
	}
	if app.Lookup("x") != nil || app.Lookup("rt") == nil {
		t.Fatal("a failed import changed the index")
	}
	if code, _ := do("POST", "/mcp_registry/backup", nil); code != 405 {
		t.Fatalf("POST export: %d", code)
	}
	if code, _ := do("GET", "/mcp_registry/restore", nil); code != 405 {
		t.Fatalf("GET import: %d", code)
	}
}

// Through Caddy's admin endpoint: import_server_json and sync.
func TestAdminImportServerJSONAndSync(t *testing.T) {
	src := newSourceRegistry(t)
	src.put(t, &model.Server{Name: "remote", Upstream: "http://127.0.0.1:6301/mcp", Description: "from the source"})

	addr := freeLoopback(t)
	cfg, _ := json.Marshal(map[string]any{
		"admin": map[string]any{"listen": addr, "config": map[string]any{"persist": false}},
		"apps": map[string]any{"mcp_registry": map[string]any{
			"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
			"runtime_upstreams": loopbackUpstreams,
			"health":            map[string]any{"disabled": true},
		}},
	})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		off, _ := json.Marshal(map[string]any{"admin": noAdmin})
		caddy.Load(off, true)
		caddy.Stop()
	})
	app := runningApp(t)
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, out
	}

	doc := `[{"name": "com.example/weather", "description": "Weather", "version": "1.0.0",
		"remotes": [{"type": "streamable-http", "url": "http://127.0.0.1:6302/mcp"}]}]`
	if code, body := do("POST", "/mcp_registry/import_server_json?name_prefix=ext-", doc); code != 200 || body["created"] != float64(1) {
		t.Fatalf("import_server_json: %d %v", code, body)
	}
	if s := app.Lookup("ext-weather"); s == nil || s.Origin != "server.json#com.example/weather" {
		t.Fatalf("ext-weather: %+v", s)
	}
	pkg := `{"name": "com.example/cli", "description": "d", "version": "1", "packages": [{"registryType": "npm", "identifier": "x", "transport": {"type": "stdio"}}]}`
	if code, body := do("POST", "/mcp_registry/import_server_json", pkg); code != 400 ||
		!strings.Contains(fmt.Sprint(body["error"]), "com.example/cli") || !strings.Contains(fmt.Sprint(body["error"]), "packages") {
		t.Fatalf("packages-only: %d %v", code, body)
	}

	code, body := do("POST", "/mcp_registry/sync?from="+url.QueryEscape(src.url)+"&name_prefix=src-", "")
	if code != 200 || body["created"] != float64(1) || body["pages"] != float64(1) {
		t.Fatalf("sync: %d %v", code, body)
	}
	if s := app.Lookup("src-remote"); s == nil || s.Upstream != src.url+"/gw/remote/mcp" {
		t.Fatalf("src-remote: %+v", s)
	}
	if err := src.app.Delete(context.Background(), "remote", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	if code, body := do("POST", "/mcp_registry/sync?from="+url.QueryEscape(src.url)+"&name_prefix=src-", ""); code != 200 || body["deleted"] != float64(1) {
		t.Fatalf("sync after the deletion: %d %v", code, body)
	}
	if app.Lookup("src-remote") != nil || app.Lookup("ext-weather") == nil {
		t.Fatal("sync: src-remote should be gone, ext-weather kept")
	}

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/mcp_registry/sync", 400},
		{"POST", "/mcp_registry/sync?from=ftp://x", 400},
		{"POST", "/mcp_registry/sync?from=" + url.QueryEscape(src.url) + "&full=maybe", 400},
		{"POST", "/mcp_registry/sync?from=http://127.0.0.1:1", 502}, // nothing listens: the page fails
		{"GET", "/mcp_registry/sync", 405},
		{"GET", "/mcp_registry/import_server_json", 405},
	} {
		if code, body := do(tc.method, tc.path, ""); code != tc.want {
			t.Errorf("%s %s: %d %v, want %d", tc.method, tc.path, code, body, tc.want)
		}
	}
}
