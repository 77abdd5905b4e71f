package mcpregistry

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/internal/testenv"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// TestRegisteredServerCheckedAtOnce: with an hour between rounds, a server registered
// at runtime is still checked (health and tools) right after it is registered, and
// again when it is re-pointed to another upstream.
func TestRegisteredServerCheckedAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two MCP server processes; runs without -short")
	}
	up := testenv.StartEverythingServer(t, false)
	up2 := testenv.StartEverythingServer(t, true)
	loadConfig(t, map[string]any{
		"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"runtime_upstreams": loopbackUpstreams,
		"health":            map[string]any{"interval": int64(time.Hour), "jitter": 0},
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	// The first round (at start, over no servers) is done; the next is an hour away.
	time.Sleep(100 * time.Millisecond)

	s, err := app.Put(t.Context(), &model.Server{Name: "fresh", Upstream: up.URL, Enabled: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new server checked", 10*time.Second, func() bool {
		h, _ := app.Health("fresh")
		return h.Status == model.HealthHealthy && len(h.Tools) > 0
	})
	first, _ := app.Health("fresh")

	s.Upstream = up2.URL
	if _, err := app.Put(t.Context(), s, s.Revision); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-pointed server checked", 10*time.Second, func() bool {
		h, _ := app.Health("fresh")
		return h.Status == model.HealthHealthy && h.CheckedAt.After(first.CheckedAt)
	})

	// A disabled registration is not checked.
	if _, err := app.Put(t.Context(), &model.Server{Name: "parked", Upstream: up.URL}, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if h, _ := app.Health("parked"); h.Status != model.HealthUnknown {
		t.Errorf("a disabled server was checked: %+v", h)
	}
}
