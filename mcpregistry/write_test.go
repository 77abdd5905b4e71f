package mcpregistry

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func loadWritableRegistry(t *testing.T) *App {
	t.Helper()
	loadConfig(t, map[string]any{
		"storage": map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"health":  map[string]any{"disabled": true},
		"servers": []map[string]any{{"name": "cfg", "upstream": "http://127.0.0.1:3000/mcp"}},
	})
	t.Cleanup(func() { caddy.Stop() })
	return runningApp(t)
}

func TestAppPutDeleteLive(t *testing.T) {
	app := loadWritableRegistry(t)
	ctx := context.Background()
	if hits := app.Search("quasar telemetry", 5); len(hits) != 0 {
		t.Fatalf("search before registration: %+v", hits)
	}
	// Behave like a large registry, whose searches reuse the snapshot for a while
	// instead of checking for changes: only the write's invalidation can refresh it.
	app.search.checkCost.Store(int64(time.Second))
	app.search.checkedAt.Store(time.Now().UnixNano())

	s, err := app.Put(ctx, &model.Server{Name: "live", Upstream: "http://127.0.0.1:4000/mcp", Enabled: true, Description: "Quasar telemetry archive"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Revision != 1 || s.Source != model.SourceAPI {
		t.Fatalf("registered: %+v", s)
	}
	if got := app.Lookup("live"); got == nil || got.Upstream != "http://127.0.0.1:4000/mcp" {
		t.Fatalf("Lookup right after Put: %+v", got)
	}
	if hits := app.Search("quasar telemetry", 5); len(hits) == 0 || hits[0].Server != "live" {
		t.Fatalf("a server registered at runtime must be searchable at once: %+v", hits)
	}
	if _, err := app.Put(ctx, &model.Server{Name: "live", Upstream: "http://127.0.0.1:4000/mcp"}, 0); !errors.Is(err, model.ErrRevisionMismatch) {
		t.Fatalf("second registration: %v", err)
	}
	if _, err := app.Put(ctx, &model.Server{Name: "other", Path: "cfg", Upstream: "http://h/mcp"}, 0); !errors.Is(err, model.ErrPathConflict) {
		t.Fatalf("path conflict: %v", err)
	}
	var fe *model.FieldError
	if _, err := app.Put(ctx, &model.Server{Name: "Bad Name", Upstream: "http://h/mcp"}, 0); !errors.As(err, &fe) || fe.Field != "name" {
		t.Fatalf("invalid: %v", err)
	}
	if _, err := app.Put(ctx, &model.Server{Name: "bi", Upstream: "builtin:nothing"}, 0); !errors.As(err, &fe) {
		t.Fatalf("unknown builtin: %v", err)
	}

	// Move to another path: the old one stops routing at once.
	moved := *s
	moved.Path = "elsewhere"
	s2, err := app.Put(ctx, &moved, 1)
	if err != nil || s2.Revision != 2 {
		t.Fatalf("update: %+v %v", s2, err)
	}
	if app.Lookup("live") != nil || app.Lookup("elsewhere") == nil {
		t.Fatal("index not updated on path change")
	}
	if _, err := app.Put(ctx, &moved, 1); !errors.Is(err, model.ErrRevisionMismatch) {
		t.Fatalf("stale update: %v", err)
	}

	s3, err := app.SetEnabled(ctx, "live", false, 2)
	if err != nil || s3.Enabled || s3.Revision != 3 || app.Lookup("elsewhere").Enabled {
		t.Fatalf("disable: %+v %v", s3, err)
	}
	if _, err := app.SetEnabled(ctx, "live", true, 2); !errors.Is(err, model.ErrRevisionMismatch) {
		t.Fatalf("stale toggle: %v", err)
	}

	if err := app.Delete(ctx, "live", 2); !errors.Is(err, model.ErrRevisionMismatch) {
		t.Fatalf("stale delete: %v", err)
	}
	if err := app.Delete(ctx, "live", 3); err != nil {
		t.Fatal(err)
	}
	if app.Lookup("elsewhere") != nil || app.Server("live") != nil {
		t.Fatal("deleted server still routed")
	}
	if err := app.Delete(ctx, "live", model.AnyRevision); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	// Re-created: the revision continues past the tombstone (3 → tombstone 4 → 5).
	s4, err := app.Put(ctx, &model.Server{Name: "live", Upstream: "http://127.0.0.1:4000/mcp"}, 0)
	if err != nil || s4.Revision != 5 || app.Lookup("live") == nil {
		t.Fatalf("re-create: %+v %v", s4, err)
	}
}

// Twenty writers race for each revision: exactly one wins each round, and a
// read-modify-write counter loses no update.
func TestAppConcurrentWriters(t *testing.T) {
	app := loadWritableRegistry(t)
	ctx := context.Background()
	if _, err := app.Put(ctx, &model.Server{Name: "c", Upstream: "http://h/mcp", Description: "0"}, 0); err != nil {
		t.Fatal(err)
	}
	const writers = 20
	for round := uint64(1); round <= 5; round++ {
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < writers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := app.Put(ctx, &model.Server{Name: "c", Upstream: "http://h/mcp", Description: fmt.Sprint(i)}, round)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, model.ErrRevisionMismatch):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != writers-1 {
			t.Fatalf("round %d: %d wins, %d conflicts", round, wins.Load(), conflicts.Load())
		}
	}

	// Counter: each writer adds 1 five times, retrying on conflict.
	start := app.Server("c")
	if _, err := app.Put(ctx, &model.Server{Name: "c", Upstream: "http://h/mcp", Description: "0"}, start.Revision); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5; {
				cur := app.Server("c")
				v, _ := strconv.Atoi(cur.Description)
				next := *cur
				next.Description = strconv.Itoa(v + 1)
				_, err := app.Put(ctx, &next, cur.Revision)
				if errors.Is(err, model.ErrRevisionMismatch) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				n++
			}
		}()
	}
	wg.Wait()
	if got := app.Server("c").Description; got != strconv.Itoa(writers*5) {
		t.Fatalf("counter = %s, want %d (lost update)", got, writers*5)
	}
}
