package mcpregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func loadConfig(t *testing.T, registry map[string]any) {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{
		"admin": noAdmin,
		"apps":  map[string]any{"mcp_registry": registry},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- caddy.Load(cfg, true) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("loading config: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("loading config hung (database lock held across the reload?)")
	}
}

// noAdmin keeps tests from listening on the admin port or autosaving their config.
var noAdmin = map[string]any{"disabled": true, "config": map[string]any{"persist": false}}

func runningApp(t *testing.T) *App {
	t.Helper()
	ctx, ok := caddy.ActiveContext(), true
	app, err := ctx.AppIfConfigured("mcp_registry")
	if err != nil || !ok {
		t.Fatalf("mcp_registry not running: %v", err)
	}
	return app.(*App)
}

// TestReloadKeepsStoreAndRoutes loads a config, then a changed one with the same
// database: the second must provision while the first still holds the file.
func TestReloadKeepsStoreAndRoutes(t *testing.T) {
	db := filepath.Join(t.TempDir(), "registry.db")
	storage := map[string]any{"path": db, "open_timeout": int64(2 * time.Second)}
	loadConfig(t, map[string]any{"storage": storage, "servers": []map[string]any{
		{"name": "one", "upstream": "http://127.0.0.1:3000/mcp"},
	}})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	if s := app.Lookup("one"); s == nil || !s.Enabled || s.Source != model.SourceConfig {
		t.Fatalf("server one not routed: %+v", s)
	}
	if app.Lookup("registry") == nil {
		t.Fatal("the builtin registry server is not routed")
	}

	loadConfig(t, map[string]any{"storage": storage, "disable_builtin_server": true, "servers": []map[string]any{
		{"name": "two", "path": "second", "upstream": "http://127.0.0.1:3001/sse", "transport": "sse", "disabled": true},
	}})
	app = runningApp(t)
	if app.Lookup("one") != nil || app.Lookup("registry") != nil {
		t.Fatal("servers removed from the config are still routed")
	}
	s := app.Lookup("second")
	if s == nil || s.Name != "two" || s.Enabled || s.Transport != model.TransportSSE {
		t.Fatalf("server two: %+v", s)
	}
}

func TestProvisionRejectsBadServers(t *testing.T) {
	db := filepath.Join(t.TempDir(), "registry.db")
	for _, tc := range []struct {
		servers []map[string]any
		want    string
	}{
		{[]map[string]any{{"name": "Bad Name", "upstream": "http://x/mcp"}}, "name"},
		{[]map[string]any{{"name": "a", "upstream": "gopher://x"}}, "upstream"},
		{[]map[string]any{{"name": "a", "upstream": "http://x/mcp"}, {"name": "a", "upstream": "http://y/mcp"}}, "declared twice"},
		{[]map[string]any{{"name": "a", "upstream": "http://x/mcp"}, {"name": "b", "path": "a", "upstream": "http://y/mcp"}}, "both use path"},
	} {
		cfg, _ := json.Marshal(map[string]any{"admin": noAdmin,
			"apps": map[string]any{"mcp_registry": map[string]any{"storage": map[string]any{"path": db}, "servers": tc.servers}}})
		err := caddy.Load(cfg, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("servers %v: want an error mentioning %q, got %v", tc.servers, tc.want, err)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`mcp_registry {
		storage bbolt /var/lib/reg.db {
			open_timeout 3s
		}
		disable_builtin_server
		server gh https://gh.example.com/mcp {
			path github
			description "GitHub tools"
			tags scm code
			backend_auth api_key X-Key
		}
		server legacy {
			upstream http://127.0.0.1:3001/sse
			transport sse
			disabled
		}
	}`)
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if app.Storage.Path != "/var/lib/reg.db" || app.Storage.OpenTimeout != caddy.Duration(3*time.Second) || !app.DisableBuiltinServer {
		t.Fatalf("storage/options: %+v", app)
	}
	gh, legacy := app.Servers[0], app.Servers[1]
	if gh.Name != "gh" || gh.Upstream != "https://gh.example.com/mcp" || gh.Path != "github" || gh.Description != "GitHub tools" ||
		strings.Join(gh.Tags, ",") != "scm,code" || gh.BackendAuth != (model.BackendAuth{Scheme: model.BackendAuthAPIKey, Header: "X-Key"}) {
		t.Fatalf("server gh: %+v", gh)
	}
	if legacy.Upstream != "http://127.0.0.1:3001/sse" || legacy.Transport != model.TransportSSE || !legacy.Disabled {
		t.Fatalf("server legacy: %+v", legacy)
	}

	for _, bad := range []string{
		"extra",
		"{\n unknown\n}",
		"{\n server\n}",
		"{\n server a\n}",
		"{\n server a http://x {\n bogus 1\n }\n}",
		"{\n server a http://x {\n tags\n }\n}",
		"{\n server a http://x {\n path a b\n }\n}",
		"{\n storage\n}",
		"{\n storage bbolt /a /b\n}",
		"{\n storage bbolt {\n open_timeout soon\n }\n}",
	} {
		if err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_registry " + bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// TestRegistryMCPServer drives the builtin server's tools with the go-sdk client.
func TestRegistryMCPServer(t *testing.T) {
	db := filepath.Join(t.TempDir(), "registry.db")
	loadConfig(t, map[string]any{"storage": map[string]any{"path": db}, "servers": []map[string]any{
		{"name": "postgres", "upstream": "http://127.0.0.1:5/mcp", "description": "Query the analytics database with SQL", "tags": []string{"database"}},
		{"name": "off", "upstream": "http://127.0.0.1:6/mcp", "disabled": true},
	}})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	srv := httptest.NewServer(app.Builtin("registry"))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()

	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if strings.Join(names, ",") != "get_server,list_servers,list_tools_of_server,register_server,search_tools,server_health,toggle_server" {
		t.Fatalf("tools: %v", names)
	}

	call := func(name string, args map[string]any) (*mcp.CallToolResult, map[string]any) {
		t.Helper()
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, _ := res.StructuredContent.(map[string]any)
		return res, out
	}
	_, out := call("list_servers", nil)
	if got := serverNames(out["servers"]); got != "postgres,registry" {
		t.Errorf("list_servers: %s", got)
	}
	_, out = call("list_servers", map[string]any{"include_disabled": true, "tag": "database"})
	if got := serverNames(out["servers"]); got != "postgres" {
		t.Errorf("list_servers by tag: %s", got)
	}
	_, out = call("get_server", map[string]any{"name": "postgres"})
	if out["path"] != "postgres" || out["description"] != "Query the analytics database with SQL" || out["upstream"] != nil {
		t.Errorf("get_server: %v", out)
	}
	res, _ := call("get_server", map[string]any{"name": "nope"})
	if !res.IsError {
		t.Error("get_server of an unknown name must be a tool error")
	}
	_, out = call("search_tools", map[string]any{"query": "database sql"})
	hits, _ := out["results"].([]any)
	if len(hits) == 0 || hits[0].(map[string]any)["server"] != "postgres" {
		t.Errorf("search_tools database: %v", out)
	}
	_, out = call("server_health", map[string]any{"name": "registry"})
	if out["status"] != "healthy" || !strings.Contains(fmt.Sprint(out["tools"]), "search_tools") {
		t.Errorf("server_health registry: %v", out)
	}
	_, out = call("server_health", map[string]any{"name": "postgres"})
	if out["status"] != "unknown" && out["status"] != "unhealthy" {
		t.Errorf("server_health postgres: %v", out)
	}
	if res, _ := call("server_health", map[string]any{"name": "nope"}); !res.IsError {
		t.Error("server_health of an unknown name must be a tool error")
	}
	res, _ = call("search_tools", map[string]any{"query": "  "})
	if !res.IsError {
		t.Error("an empty query must be a tool error")
	}
}

func serverNames(v any) string {
	list, _ := v.([]any)
	var names []string
	for _, s := range list {
		names = append(names, s.(map[string]any)["name"].(string))
	}
	return strings.Join(names, ",")
}
