package mcpregistry

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func tombstone(t *testing.T, app *App, name string) *model.Tombstone {
	t.Helper()
	var ts *model.Tombstone
	err := app.store.View(func(tx store.Tx) (err error) { ts, err = tx.GetTombstone(name); return })
	if errors.Is(err, model.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestPurgeTombstones(t *testing.T) {
	if app := loadWritableRegistry(t); app.tombstoneRetention() != defaultTombstoneRetention {
		t.Fatalf("default retention %v", app.tombstoneRetention())
	}
	loadConfig(t, map[string]any{
		"storage":             map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"health":              map[string]any{"disabled": true},
		"tombstone_retention": int64(time.Hour),
	})
	app := runningApp(t)
	ctx := context.Background()
	for _, n := range []string{"old", "kept"} {
		if _, err := app.Put(ctx, &model.Server{Name: n, Upstream: "http://h/mcp"}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Put(ctx, &model.Server{Name: n, Upstream: "http://h/mcp", Description: "v2"}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Delete(ctx, "old", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	deleted := tombstone(t, app, "old").DeletedAt
	if n, err := app.purgeTombstones(deleted.Add(59 * time.Minute)); err != nil || n != 0 {
		t.Fatalf("purge before the retention: %d %v", n, err)
	}
	if tombstone(t, app, "old") == nil {
		t.Fatal("tombstone purged early")
	}
	if n, err := app.purgeTombstones(deleted.Add(61 * time.Minute)); err != nil || n != 1 {
		t.Fatalf("purge after the retention: %d %v", n, err)
	}
	if tombstone(t, app, "old") != nil {
		t.Fatal("expired tombstone kept")
	}
	if app.Server("kept") == nil {
		t.Fatal("purge touched a live server")
	}
	// The name is valid again; its revisions start over.
	s, err := app.Put(ctx, &model.Server{Name: "old", Upstream: "http://h/mcp"}, 0)
	if err != nil || s.Revision != 1 || app.Lookup("old") == nil || app.Lookup("old").Revision != 1 {
		t.Fatalf("re-registered after purge: %+v %v", s, err)
	}
}

// The background cleanup purges at start: a config with a tiny retention loaded over
// a store holding a tombstone removes it without waiting for the interval.
func TestTombstoneCleanupRunsAtStart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "registry.db")
	cfg := map[string]any{
		"storage": map[string]any{"path": db},
		"health":  map[string]any{"disabled": true},
	}
	loadConfig(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	ctx := context.Background()
	if _, err := app.Put(ctx, &model.Server{Name: "gone", Upstream: "http://h/mcp"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := app.Delete(ctx, "gone", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	cfg["tombstone_retention"] = int64(time.Millisecond)
	loadConfig(t, cfg)
	app = runningApp(t)
	deadline := time.Now().Add(5 * time.Second)
	for tombstone(t, app, "gone") != nil {
		if time.Now().After(deadline) {
			t.Fatal("tombstone not purged by the cleanup at start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTombstoneCleanupInterval(t *testing.T) {
	for retention, want := range map[time.Duration]time.Duration{
		30 * 24 * time.Hour: time.Hour,
		5 * time.Hour:       30 * time.Minute,
		time.Minute:         6 * time.Second,
		time.Millisecond:    time.Second,
	} {
		if got := tombstoneCleanupInterval(retention); got != want {
			t.Errorf("interval for %v = %v, want %v", retention, got, want)
		}
	}
}

func TestCaddyfileTombstoneRetention(t *testing.T) {
	d := caddyfile.NewTestDispenser(`mcp_registry {
		tombstone_retention 72h
	}`)
	var a App
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if time.Duration(a.TombstoneRetention) != 72*time.Hour {
		t.Fatalf("retention %v", time.Duration(a.TombstoneRetention))
	}
	for _, bad := range []string{"tombstone_retention", "tombstone_retention soon", "tombstone_retention 0s", "tombstone_retention 1h 2h"} {
		d := caddyfile.NewTestDispenser("mcp_registry {\n" + bad + "\n}")
		if err := new(App).UnmarshalCaddyfile(d); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
