package mcpregistry

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// eventsFor returns the recorded events about server, in order.
func eventsFor(server string) []fullEvent {
	recordedMu.Lock()
	defer recordedMu.Unlock()
	var out []fullEvent
	for _, e := range recordedFull {
		if e.data["server"] == server {
			out = append(out, e)
		}
	}
	return out
}

// TestRegistryEvents subscribes a real events handler module (through Caddy's events
// app) to every event of the mcp_registry app and drives one server, a real MCP server
// that changes its tools, through its life: registered, checked healthy, tools changed
// (heard through the list_changed watch), disabled, checked unhealthy, removed. Each
// event must come from origin mcp_registry with the right data, in order.
func TestRegistryEvents(t *testing.T) {
	recordedMu.Lock()
	recordedFull = nil // earlier runs (-count) used the same name
	recordedMu.Unlock()
	g := startGrowingServer(t, "stateful")
	loadWithEvents(t, map[string]any{
		"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"runtime_upstreams": loopbackUpstreams,
		"health":            map[string]any{"interval": int64(time.Hour), "timeout": int64(3 * time.Second), "jitter": 0},
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := app.Put(ctx, &model.Server{Name: "ev", Path: "ev-path", Upstream: g.URL, Enabled: true}, 0); err != nil {
		t.Fatal(err)
	}
	if h, err := app.RefreshNow(ctx, "ev"); err != nil || h.Status != model.HealthHealthy {
		t.Fatalf("RefreshNow: %+v %v", h, err)
	}
	// A check that finds the same lists announces no change.
	if _, err := app.RefreshNow(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watch session", 10*time.Second, func() bool { return app.watchSessions() == 1 })
	g.AddTool("extra")
	waitFor(t, "tools changed", 5*time.Second, hasTool(app, "ev", "extra"))
	if _, err := app.SetEnabled(ctx, "ev", false, 1); err != nil {
		t.Fatal(err)
	}
	g.Stop()
	if h, _ := app.RefreshNow(ctx, "ev"); h.Status != model.HealthUnhealthy {
		t.Fatalf("after stop: %+v", h)
	}
	if err := app.Delete(ctx, "ev", 2); err != nil {
		t.Fatal(err)
	}

	want := []fullEvent{
		{EventServerRegistered, "mcp_registry", map[string]any{"server": "ev", "path": "ev-path", "revision": uint64(1)}},
		{EventServerHealthChanged, "mcp_registry", map[string]any{"server": "ev", "status": "healthy", "previous": "unknown"}},
		{EventServerToolsChanged, "mcp_registry", map[string]any{"server": "ev", "tools": 2}},
		{EventServerUpdated, "mcp_registry", map[string]any{"server": "ev", "path": "ev-path", "revision": uint64(2)}},
		{EventServerHealthChanged, "mcp_registry", map[string]any{"server": "ev", "status": "unhealthy", "previous": "healthy"}},
		{EventServerRemoved, "mcp_registry", map[string]any{"server": "ev", "path": "ev-path", "revision": uint64(3)}},
	}
	// Events are delivered synchronously by Emit, so all are recorded by now.
	got := eventsFor("ev")
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("got %s %s %v", e.name, e.origin, e.data)
		}
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || g.origin != w.origin || fmt.Sprint(g.data) != fmt.Sprint(w.data) {
			t.Errorf("event %d: got %s %s %v, want %s %s %v", i, g.name, g.origin, g.data, w.name, w.origin, w.data)
		}
		for k, v := range w.data {
			if fmt.Sprintf("%T", g.data[k]) != fmt.Sprintf("%T", v) {
				t.Errorf("event %d %s: %s is a %T, want %T", i, w.name, k, g.data[k], v)
			}
		}
	}
}
