package mcpregistry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// growingServer is a real MCP server (go-sdk, in this process, on a real TCP port)
// whose tool list the test changes at runtime: mcp.Server.AddTool sends
// notifications/tools/list_changed to its sessions, as any go-sdk server does.
type growingServer struct {
	t    *testing.T
	kind string // "stateful" (2025-11-25, GET stream), "stateless" (2026-07-28, subscriptions/listen) or "sse"
	addr string
	URL  string
	mu   sync.Mutex
	srv  *mcp.Server
	hs   *httptest.Server
	wrap func(http.Handler) http.Handler // optional middleware in front of the MCP handler
}

func startGrowingServer(t *testing.T, kind string) *growingServer {
	t.Helper()
	return startGrowingServerWrapped(t, kind, nil)
}

func startGrowingServerWrapped(t *testing.T, kind string, wrap func(http.Handler) http.Handler) *growingServer {
	t.Helper()
	g := &growingServer{t: t, kind: kind, wrap: wrap}
	g.start("")
	t.Cleanup(g.Stop)
	return g
}

func (g *growingServer) start(addr string) {
	g.t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the port of a just-closed listener may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		g.t.Fatal(err)
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "growing", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "seed", Description: "always there", InputSchema: jsonSchemaObject}, noopTool)
	var h http.Handler
	switch g.kind {
	case "sse":
		h = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	default:
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
			&mcp.StreamableHTTPOptions{Stateless: g.kind == "stateless"})
	}
	if g.wrap != nil {
		h = g.wrap(h)
	}
	hs := httptest.NewUnstartedServer(h)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	g.mu.Lock()
	g.srv, g.hs, g.addr = srv, hs, ln.Addr().String()
	g.URL = "http://" + g.addr + "/mcp"
	if g.kind == "sse" {
		g.URL = "http://" + g.addr + "/sse"
	}
	g.mu.Unlock()
}

// jsonSchemaObject is the input schema of the test tools (no arguments).
var jsonSchemaObject = map[string]any{"type": "object"}

func noopTool(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return &mcp.CallToolResult{}, nil
}

// AddTool adds a tool to the running server, which notifies its sessions.
func (g *growingServer) AddTool(name string) {
	g.mu.Lock()
	srv := g.srv
	g.mu.Unlock()
	srv.AddTool(&mcp.Tool{Name: name, Description: "added at runtime", InputSchema: jsonSchemaObject}, noopTool)
}

// Sessions is how many MCP sessions the running server has open.
func (g *growingServer) Sessions() int {
	g.mu.Lock()
	srv := g.srv
	g.mu.Unlock()
	n := 0
	for range srv.Sessions() {
		n++
	}
	return n
}

// Stop drops every connection (like a crash) and closes the listener.
func (g *growingServer) Stop() {
	g.mu.Lock()
	hs := g.hs
	g.hs = nil
	g.mu.Unlock()
	if hs != nil {
		hs.CloseClientConnections()
		hs.Close()
	}
}

// Restart starts a fresh server (only the seed tool) on the same address.
func (g *growingServer) Restart() {
	g.Stop()
	g.start(g.addr)
}

func hasTool(app *App, server, tool string) func() bool {
	return func() bool {
		h, _ := app.Health(server)
		return slices.Contains(toolNames(h), tool)
	}
}

// TestWatchListChanged: with a 1h health interval, a server that adds a tool and sends
// notifications/tools/list_changed has its stored tools updated within seconds, for each
// transport the client can be notified on (legacy streamable GET stream, 2026-07-28
// subscriptions/listen, legacy SSE). The watch survives a server restart (reconnects,
// rechecks, and hears the restarted server's notifications), and its session is closed
// when the server is disabled, re-opened when enabled, and closed on removal.
func TestWatchListChanged(t *testing.T) {
	if testing.Short() {
		t.Skip("waits seconds for watch sessions; runs without -short")
	}
	kinds := []string{"stateful", "stateless", "sse"}
	servers := map[string]*growingServer{}
	var cfg []map[string]any
	for _, k := range kinds {
		g := startGrowingServer(t, k)
		servers[k] = g
		c := map[string]any{"name": k, "upstream": g.URL}
		if k == "sse" {
			c["transport"] = "sse"
		}
		cfg = append(cfg, c)
	}
	loadWithEvents(t, map[string]any{
		"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"runtime_upstreams": loopbackUpstreams,
		"health":            map[string]any{"interval": int64(time.Hour), "timeout": int64(3 * time.Second), "jitter": 0},
		"servers":           cfg,
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)

	for _, k := range kinds {
		waitFor(t, k+" first check", 10*time.Second, hasTool(app, k, "seed"))
	}
	waitFor(t, "3 watch sessions", 10*time.Second, func() bool {
		ok := app.watchSessions() == 3
		if !ok {
			logWatches(t, app)
		}
		return ok
	})
	for _, k := range kinds {
		h, _ := app.Health(k)
		t.Logf("%s: protocol %s", k, h.ProtocolVersion)
	}
	if h, _ := app.Health("stateless"); h.ProtocolVersion < "2026-07-28" {
		t.Errorf("stateless server negotiated %q; the subscriptions/listen path is not covered", h.ProtocolVersion)
	}

	for _, k := range kinds {
		servers[k].AddTool("grown")
	}
	for _, k := range kinds {
		start := time.Now()
		waitFor(t, k+" sees the new tool", 5*time.Second, hasTool(app, k, "grown"))
		t.Logf("%s: new tool recorded after %v", k, time.Since(start))
	}
	for _, k := range kinds {
		if !sawEvent(recordedEvent{name: EventServerToolsChanged, origin: "mcp_registry", server: k}) {
			t.Errorf("no %s event for %s", EventServerToolsChanged, k)
		}
	}
	// Also in the store, not only in memory.
	app.store.View(func(tx store.Tx) error {
		h, err := tx.GetStatus("stateless")
		if err != nil || !slices.Contains(toolNames(*h), "grown") {
			t.Errorf("stored status: %+v %v", h, err)
		}
		return nil
	})

	// A restart: the watch reconnects with backoff, rechecks (the restarted server
	// lost "grown"), and hears the new server's notifications.
	for _, k := range kinds {
		servers[k].Restart()
	}
	for _, k := range kinds {
		waitFor(t, k+" recheck after restart", 15*time.Second, func() bool { return !hasTool(app, k, "grown")() })
	}
	waitFor(t, "3 watch sessions again", 15*time.Second, func() bool { return app.watchSessions() == 3 })
	for _, k := range kinds {
		servers[k].AddTool("regrown")
	}
	for _, k := range kinds {
		waitFor(t, k+" sees the tool added after restart", 5*time.Second, hasTool(app, k, "regrown"))
	}

	// Disabled: its watch session closes; enabled again: it reopens.
	ctx := context.Background()
	if _, err := app.SetEnabled(ctx, "stateful", false, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "watch closed on disable", 5*time.Second, func() bool { return app.watchSessions() == 2 })
	waitFor(t, "the server's session closed on disable", 5*time.Second, func() bool { return servers["stateful"].Sessions() == 0 })
	if _, err := app.SetEnabled(ctx, "stateful", true, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "watch reopened on enable", 5*time.Second, func() bool { return app.watchSessions() == 3 })
	waitFor(t, "the server's watch session", 5*time.Second, func() bool { return servers["stateful"].Sessions() == 1 })

	// Upstream changed: the old upstream's session closes; once the new upstream has
	// been checked (here by a manual refresh), it is watched.
	moved := startGrowingServer(t, "stateful")
	rec := cloneServer(app.Server("stateful"))
	rec.Upstream = moved.URL
	if _, err := app.Put(ctx, rec, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "old upstream's session closed", 5*time.Second, func() bool { return servers["stateful"].Sessions() == 0 })
	if h, err := app.RefreshNow(ctx, "stateful"); err != nil || h.Status != model.HealthHealthy {
		t.Fatalf("RefreshNow: %+v %v", h, err)
	}
	waitFor(t, "new upstream watched", 5*time.Second, func() bool { return moved.Sessions() == 1 && app.watchSessions() == 3 })
	moved.AddTool("moved")
	waitFor(t, "the new upstream's tool", 5*time.Second, hasTool(app, "stateful", "moved"))
	// Removed: closed for good. (Put from the API drops the config server only until
	// the next config load; that is enough here.)
	if err := app.Delete(ctx, "sse", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "watch closed on removal", 5*time.Second, func() bool { return app.watchSessions() == 2 })

	// App stop closes every session and waits for the watch goroutines.
	w := app.health.watcher.Load()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := w.sessions.Load(); n != 0 {
		t.Errorf("%d watch sessions left after stop", n)
	}
	w.mu.Lock()
	left := len(w.watches)
	w.mu.Unlock()
	if left != 0 {
		t.Errorf("%d watches left after stop", left)
	}
}

// TestWatchLimit: no more sessions than watch_limit; off watches nothing.
func TestWatchLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("waits seconds for watch sessions; runs without -short")
	}
	a, b := startGrowingServer(t, "stateful"), startGrowingServer(t, "stateful")
	for _, limit := range []int{1, -1} {
		loadWithEvents(t, map[string]any{
			"storage": map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
			"health":  map[string]any{"interval": int64(time.Hour), "timeout": int64(3 * time.Second), "jitter": 0, "watch_limit": limit},
			"servers": []map[string]any{{"name": "a", "upstream": a.URL}, {"name": "b", "upstream": b.URL}},
		})
		app := runningApp(t)
		waitFor(t, "checks", 10*time.Second, func() bool { return hasTool(app, "a", "seed")() && hasTool(app, "b", "seed")() })
		want := int64(max(limit, 0))
		waitFor(t, "watch sessions", 5*time.Second, func() bool { return app.watchSessions() == want })
		time.Sleep(1500 * time.Millisecond) // a reconcile or two later, still bounded
		if n := app.watchSessions(); n != want {
			t.Errorf("limit %d: %d sessions", limit, n)
		}
		if err := caddy.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWatchNoStream: a server that announces listChanged but refuses the GET stream
// (405) cannot notify; the watch gives up instead of reconnecting in a loop, and the
// regular checks go on.
func TestWatchNoStream(t *testing.T) {
	if testing.Short() {
		t.Skip("waits seconds for watch retries; runs without -short")
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "noget", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "seed", InputSchema: jsonSchemaObject}, noopTool)
	mh := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	var gets atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
			http.Error(w, "no stream here", http.StatusMethodNotAllowed)
			return
		}
		mh.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	loadWithEvents(t, map[string]any{
		"storage": map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"health":  map[string]any{"interval": int64(time.Hour), "timeout": int64(3 * time.Second), "jitter": 0},
		"servers": []map[string]any{{"name": "noget", "upstream": hs.URL}},
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	waitFor(t, "check", 10*time.Second, hasTool(app, "noget", "seed"))
	waitFor(t, "watch given up", 10*time.Second, func() bool {
		w := app.health.watcher.Load()
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.gaveUp) == 1 && len(w.watches) == 0
	})
	time.Sleep(1500 * time.Millisecond)
	if n := app.watchSessions(); n != 0 {
		t.Errorf("%d sessions", n)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("GET attempts: %d (want exactly one, no reconnect loop)", n)
	}
}

// TestWatchSendsBackendCredential: the watch session authenticates like the checks (the
// server's backend credential and headers), on every request including the streams.
func TestWatchSendsBackendCredential(t *testing.T) {
	var refused atomic.Int32
	g := startGrowingServerWrapped(t, "stateless", func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Api-Key") != "k-123" || r.Header.Get("X-Extra") != "e" {
				refused.Add(1)
				http.Error(w, "nope", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	_, key := newTestKey(t)
	loadWithEvents(t, map[string]any{
		"storage":        map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"encryption_key": key,
		"health":         map[string]any{"interval": int64(time.Hour), "timeout": int64(3 * time.Second), "jitter": 0},
		"servers": []map[string]any{{"name": "keyed", "upstream": g.URL,
			"backend_auth": map[string]any{"scheme": "api_key", "header": "X-API-Key"}, "backend_credential": "k-123",
			"backend_headers": map[string]string{"X-Extra": "e"}}},
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	waitFor(t, "check", 10*time.Second, hasTool(app, "keyed", "seed"))
	waitFor(t, "watch session", 10*time.Second, func() bool { return app.watchSessions() == 1 })
	g.AddTool("secret_tool")
	waitFor(t, "tool change heard", 5*time.Second, hasTool(app, "keyed", "secret_tool"))
	if n := refused.Load(); n != 0 {
		t.Errorf("%d requests without the credential", n)
	}
}

func TestWatchLimitCaddyfile(t *testing.T) {
	for in, want := range map[string]int{"watch_limit 10": 10, "watch_limit off": -1, "watch_limit 0": -1} {
		app := new(App)
		if err := app.UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_registry {\nhealth {\n" + in + "\n}\n}")); err != nil || app.HealthChecks.WatchLimit != want {
			t.Errorf("%q: %v %+v", in, err, app.HealthChecks)
		}
	}
	for _, bad := range []string{"watch_limit -2", "watch_limit x", "watch_limit 1000001"} {
		if err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_registry {\nhealth {\n" + bad + "\n}\n}")); err == nil || !strings.Contains(err.Error(), "watch_limit") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	hc := new(HealthConfig)
	hc.provision()
	if hc.WatchLimit != defaultWatchLimit {
		t.Errorf("default watch limit %d", hc.WatchLimit)
	}
}

func logWatches(t *testing.T, app *App) {
	w := app.health.watcher.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	var names, gaveUp []string
	for n := range w.watches {
		names = append(names, n)
	}
	for s := range w.gaveUp {
		gaveUp = append(gaveUp, s.Name)
	}
	t.Logf("watch sessions %d, watches %v, given up %v", w.sessions.Load(), names, gaveUp)
}
