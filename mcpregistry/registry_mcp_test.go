package mcpregistry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// registryClient talks to the builtin registry server as caller (nil: auth off), the
// way the gateway hands it requests: with the caller in the request context.
type registryClient struct {
	t       *testing.T
	ctx     context.Context
	session *mcp.ClientSession
	base    string // the gateway base the client reached the registry under
}

func connectRegistry(t *testing.T, ctx context.Context, app *App, caller *principal.Caller) *registryClient {
	t.Helper()
	h := app.Builtin("registry")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if caller != nil {
			r = r.WithContext(principal.WithCaller(r.Context(), caller))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	// Reached as the gateway would route it: <gateway base>/<path>/mcp.
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL + "/gw/registry/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { session.Close() })
	return &registryClient{t: t, ctx: ctx, session: session, base: srv.URL + "/gw"}
}

// call returns the structured result, or the error text of a tool error.
func (c *registryClient) call(name string, args map[string]any) (map[string]any, string) {
	c.t.Helper()
	res, err := c.session.CallTool(c.ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		c.t.Fatalf("%s %v: protocol error %v", name, args, err)
	}
	if res.IsError {
		var b strings.Builder
		for _, ct := range res.Content {
			if tc, ok := ct.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		if b.Len() == 0 {
			c.t.Fatalf("%s %v: tool error without text", name, args)
		}
		return nil, b.String()
	}
	out, _ := res.StructuredContent.(map[string]any)
	return out, ""
}

func (c *registryClient) ok(name string, args map[string]any) map[string]any {
	c.t.Helper()
	out, msg := c.call(name, args)
	if msg != "" {
		c.t.Fatalf("%s %v: unexpected tool error %q", name, args, msg)
	}
	return out
}

func (c *registryClient) fails(name string, args map[string]any, want string) {
	c.t.Helper()
	out, msg := c.call(name, args)
	if msg == "" {
		c.t.Fatalf("%s %v: succeeded (%v), want a tool error containing %q", name, args, out, want)
	}
	if !strings.Contains(msg, want) {
		c.t.Fatalf("%s %v: error %q does not contain %q", name, args, msg, want)
	}
}

func testCallers(t *testing.T) map[string]*principal.Caller {
	t.Helper()
	p, _, err := policy.Compile(&policy.Config{
		GroupMappings: map[string][]string{
			"admins": {"registry-admin", "all-tools"}, "viewers": {"registry-viewer", "query-only"}, "registrars": {"registrar"}, "nobody": {"no-ui"},
		},
		UIScopes: map[string]map[string][]string{
			"registry-admin":  {"list_service": {"all"}, "register_service": {"all"}, "toggle_service": {"all"}},
			"registry-viewer": {"list_service": {"postgres", "github", "registry"}, "toggle_service": {"github"}},
			"registrar":       {"list_service": {"newone"}, "register_service": {"newone"}},
		},
		Scopes: map[string][]policy.RuleConfig{
			"no-ui":      {{Server: "*", Methods: []string{"tools/list"}}},
			"all-tools":  {{Server: "*", Methods: []string{"tools/list", "tools/call"}, Tools: []string{"*"}}},
			"query-only": {{Server: "postgres", Methods: []string{"tools/list", "tools/call"}, Tools: []string{"run_query"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*principal.Caller{}
	for _, g := range []string{"admins", "viewers", "registrars", "nobody"} {
		out[g] = &principal.Caller{Subject: g + "-user", ClientID: "cli", Groups: []string{g}, Grant: p.Resolve([]string{g})}
	}
	return out
}

func TestRegistryMCPCallerScopes(t *testing.T) {
	loadConfig(t, map[string]any{
		"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"runtime_upstreams": loopbackUpstreams,
		"health":            map[string]any{"disabled": true},
		"servers": []map[string]any{
			{"name": "postgres", "upstream": "http://127.0.0.1:5/mcp", "description": "Query the analytics database with SQL", "tags": []string{"database"}},
			{"name": "github", "upstream": "http://127.0.0.1:6/mcp", "description": "Pull requests and issues"},
			{"name": "secret", "upstream": "http://127.0.0.1:7/mcp", "description": "Vault holding secret credentials"},
		},
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	app.health.byServer.Store("postgres", &model.ServerHealth{Server: "postgres", Status: model.HealthHealthy, Tools: []model.ToolInfo{
		{Name: "run_query", Description: "Run a SQL query", InputSchema: []byte(`{"type":"object","properties":{"sql":{"type":"string"}},"required":["sql"]}`)},
		{Name: "drop_table", Description: "Drop a database table"},
	}})
	app.health.byServer.Store("secret", &model.ServerHealth{Server: "secret", Status: model.HealthHealthy, Tools: []model.ToolInfo{{Name: "read_secret"}}})
	app.invalidateSearch()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callers := testCallers(t)
	anon := connectRegistry(t, ctx, app, nil)
	admin := connectRegistry(t, ctx, app, callers["admins"])
	viewer := connectRegistry(t, ctx, app, callers["viewers"])
	registrar := connectRegistry(t, ctx, app, callers["registrars"])
	nobody := connectRegistry(t, ctx, app, callers["nobody"])

	// list_service: unlisted servers are hidden everywhere, as if absent.
	for _, c := range []struct {
		who  *registryClient
		want string
	}{{anon, "github,postgres,registry,secret"}, {admin, "github,postgres,registry,secret"}, {viewer, "github,postgres,registry"}, {nobody, ""}} {
		if got := serverNames(c.who.ok("list_servers", nil)["servers"]); got != c.want {
			t.Errorf("list_servers: %q, want %q", got, c.want)
		}
	}
	viewer.ok("get_server", map[string]any{"name": "postgres"})
	viewer.fails("get_server", map[string]any{"name": "secret"}, `no server named "secret"`)
	// search_tools is bounded as /api/search is: a huge query is refused before any
	// scoring, and so is a limit outside 1–100.
	viewer.fails("search_tools", map[string]any{"query": strings.Repeat("sql ", 1<<18)}, "invalid query: required, at most 512 bytes")
	viewer.fails("search_tools", map[string]any{"query": "   "}, "invalid query")
	for _, bad := range []int{0, -1, 101} {
		viewer.fails("search_tools", map[string]any{"query": "sql", "limit": bad}, "invalid limit: must be an integer from 1 to 100")
	}
	if hits, _ := viewer.ok("search_tools", map[string]any{"query": "sql", "limit": 1})["results"].([]any); len(hits) != 1 {
		t.Errorf("search_tools limit 1: %d results", len(hits))
	}
	// A tool hit is usable at once: kind, the server's MCP URL through the gateway, and
	// with include_schemas the tool's input schema; server hits say they are servers.
	var toolHit, serverHit map[string]any
	for _, h := range viewer.ok("search_tools", map[string]any{"query": "run sql query analytics database", "include_schemas": true})["results"].([]any) {
		hit := h.(map[string]any)
		if hit["kind"] == "tool" && hit["tool"] == "run_query" && toolHit == nil {
			toolHit = hit
		}
		if hit["kind"] == "server" && hit["server"] == "postgres" && serverHit == nil {
			serverHit = hit
		}
	}
	hitSchema, _ := toolHit["input_schema"].(map[string]any)
	if toolHit == nil || toolHit["url"] != viewer.base+"/postgres/mcp" || hitSchema["type"] != "object" {
		t.Errorf("tool hit: %v", toolHit)
	}
	if serverHit == nil || serverHit["url"] != viewer.base+"/postgres/mcp" || serverHit["tool"] != nil || serverHit["input_schema"] != nil {
		t.Errorf("server hit: %v", serverHit)
	}
	if h := viewer.ok("search_tools", map[string]any{"query": "run sql query"})["results"].([]any)[0].(map[string]any); h["input_schema"] != nil {
		t.Errorf("input schema without include_schemas: %v", h)
	}
	nobody.fails("get_server", map[string]any{"name": "postgres"}, `no server named "postgres"`)
	viewer.fails("server_health", map[string]any{"name": "secret"}, `no server named "secret"`)
	admin.ok("server_health", map[string]any{"name": "secret"})

	searchServers := func(c *registryClient, q string) string {
		hits, _ := c.ok("search_tools", map[string]any{"query": q})["results"].([]any)
		var s []string
		for _, h := range hits {
			s = append(s, h.(map[string]any)["server"].(string))
		}
		return strings.Join(s, ",")
	}
	if got := searchServers(admin, "vault secret credentials"); !strings.Contains(got, "secret") {
		t.Errorf("admin search: %q", got)
	}
	if got := searchServers(anon, "vault secret credentials"); !strings.Contains(got, "secret") {
		t.Errorf("anonymous search: %q", got)
	}
	if got := searchServers(viewer, "vault secret credentials"); strings.Contains(got, "secret") {
		t.Errorf("viewer search shows a hidden server: %q", got)
	}
	if got := searchServers(nobody, "sql query database"); got != "" {
		t.Errorf("search without list_service: %q", got)
	}

	// One view per caller: a tool the viewer's tools/list would hide is hidden from
	// search, list_tools_of_server and server_health too.
	searchTools := func(c *registryClient, q string) string {
		hits, _ := c.ok("search_tools", map[string]any{"query": q})["results"].([]any)
		var s []string
		for _, h := range hits {
			if tool, _ := h.(map[string]any)["tool"].(string); tool != "" {
				s = append(s, tool)
			}
		}
		return strings.Join(s, ",")
	}
	if got := searchTools(admin, "drop database table"); !strings.Contains(got, "drop_table") {
		t.Errorf("admin tool search: %q", got)
	}
	if got := searchTools(viewer, "drop database table"); strings.Contains(got, "drop_table") {
		t.Errorf("viewer search shows a tool their tools/list hides: %q", got)
	}
	if out := admin.ok("list_tools_of_server", map[string]any{"name": "postgres"}); len(out["tools"].([]any)) != 2 {
		t.Errorf("admin list_tools_of_server postgres: %v", out)
	}
	if out := viewer.ok("server_health", map[string]any{"name": "postgres"}); fmt.Sprint(out["tools"]) != "[run_query]" {
		t.Errorf("viewer server_health postgres tools: %v", out["tools"])
	}

	// list_tools_of_server: tools with descriptions and input schemas.
	out := viewer.ok("list_tools_of_server", map[string]any{"name": "postgres"})
	tools, _ := out["tools"].([]any)
	if out["server"] != "postgres" || len(tools) != 1 {
		t.Fatalf("list_tools_of_server postgres: %v", out)
	}
	tool := tools[0].(map[string]any)
	schema, _ := tool["input_schema"].(map[string]any)
	if tool["name"] != "run_query" || tool["description"] != "Run a SQL query" || schema["type"] != "object" || schema["properties"] == nil {
		t.Errorf("tool: %v", tool)
	}
	if out := anon.ok("list_tools_of_server", map[string]any{"name": "registry"}); !strings.Contains(serverNames(out["tools"]), "register_server") {
		t.Errorf("registry's own tools: %v", out)
	}
	viewer.fails("list_tools_of_server", map[string]any{"name": "secret"}, `no server named "secret"`)
	viewer.fails("list_tools_of_server", map[string]any{"name": "nope"}, `no server named "nope"`)

	// register_server needs register_service for the name (or all).
	reg := map[string]any{"name": "newone", "upstream": "http://127.0.0.1:8/mcp", "description": "A new one", "tags": []string{"x"}}
	viewer.fails("register_server", reg, "permission denied: register_service")
	nobody.fails("register_server", reg, "permission denied: register_service")
	registrar.fails("register_server", map[string]any{"name": "other", "upstream": "http://127.0.0.1:8/mcp"}, "permission denied")
	registrar.fails("register_server", map[string]any{"name": "newone", "upstream": "http://127.0.0.1:8/mcp", "transport": "carrier-pigeon"}, "transport")
	registrar.fails("register_server", map[string]any{"name": "newone", "upstream": "builtin:registry"}, "upstream")
	admin.fails("register_server", map[string]any{"name": "bad", "upstream": "ftp://127.0.0.1/x"}, "upstream")
	admin.fails("register_server", map[string]any{"name": "meta", "upstream": "http://169.254.169.254/latest/meta-data/"}, "invalid upstream: host \"169.254.169.254\" is 169.254.169.254: link-local")
	admin.fails("register_server", map[string]any{"name": "zoned", "upstream": "http://[fe80::1%25eth0]/mcp"}, "zone")
	admin.fails("register_server", map[string]any{"name": "Bad Name", "upstream": "http://127.0.0.1:8/mcp"}, "name")
	admin.fails("register_server", map[string]any{"name": "clash", "upstream": "http://127.0.0.1:8/mcp", "path": "postgres"}, "path")
	out = registrar.ok("register_server", reg)
	if out["name"] != "newone" || out["path"] != "newone" || out["enabled"] != true || out["description"] != "A new one" {
		t.Errorf("register_server: %v", out)
	}
	if s := app.Lookup("newone"); s == nil || s.Upstream != "http://127.0.0.1:8/mcp" || !s.Enabled {
		t.Fatalf("newone not routed: %+v", s)
	}
	registrar.fails("register_server", reg, "already exists")
	if got := serverNames(registrar.ok("list_servers", nil)["servers"]); got != "newone" {
		t.Errorf("registrar lists %q", got)
	}
	admin.ok("register_server", map[string]any{"name": "side", "upstream": "http://127.0.0.1:9/sse", "transport": "sse", "path": "side-path"})
	if s := app.Lookup("side-path"); s == nil || s.Name != "side" || s.Transport != model.TransportSSE {
		t.Fatalf("side not routed: %+v", s)
	}

	// toggle_server needs toggle_service; a hidden server stays not found.
	viewer.fails("toggle_server", map[string]any{"name": "postgres", "enabled": false}, "permission denied: toggle_service")
	viewer.fails("toggle_server", map[string]any{"name": "secret", "enabled": false}, `no server named "secret"`)
	registrar.fails("toggle_server", map[string]any{"name": "newone", "enabled": false}, "permission denied: toggle_service")
	if out := viewer.ok("toggle_server", map[string]any{"name": "github", "enabled": false}); out["enabled"] != false {
		t.Errorf("toggle github: %v", out)
	}
	if app.Lookup("github").Enabled {
		t.Error("github still enabled")
	}
	admin.ok("toggle_server", map[string]any{"name": "secret", "enabled": false})
	admin.ok("toggle_server", map[string]any{"name": "github", "enabled": true})
	if app.Lookup("secret").Enabled || !app.Lookup("github").Enabled {
		t.Error("admin toggles not applied")
	}
	anon.ok("toggle_server", map[string]any{"name": "secret", "enabled": true})
	admin.fails("toggle_server", map[string]any{"name": "nope", "enabled": true}, `no server named "nope"`)
}
