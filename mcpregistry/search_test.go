package mcpregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/search"
)

// loadSearchCorpus reads the search package's test corpus, ordered by server name as
// the App indexes it.
func loadSearchCorpus(t testing.TB) []search.Source {
	raw, err := os.ReadFile("search/testdata/corpus.json")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Servers []struct {
			Name        string           `json:"name"`
			Description string           `json:"description"`
			Tags        []string         `json:"tags"`
			Tools       []model.ToolInfo `json:"tools"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	var src []search.Source
	for _, s := range c.Servers {
		src = append(src, search.Source{
			Server: &model.Server{Name: s.Name, Path: s.Name, Description: s.Description, Tags: s.Tags, Enabled: true},
			Tools:  s.Tools,
		})
	}
	slices.SortFunc(src, func(a, b search.Source) int { return strings.Compare(a.Server.Name, b.Server.Name) })
	return src
}

// TestSearchReadyAfterStart: the App builds its index in the background when it
// starts (no search needed), a search right after start answers, and writes and new
// tool lists are seen by the next search.
func TestSearchReadyAfterStart(t *testing.T) {
	var servers []map[string]any
	for i := range 400 {
		servers = append(servers, map[string]any{
			"name":        fmt.Sprintf("svc-%03d", i),
			"upstream":    fmt.Sprintf("http://127.0.0.1:9/%d/mcp", i),
			"description": fmt.Sprintf("Quasar telemetry service number %d", i),
			"tags":        []string{"telemetry"},
		})
	}
	cfg := map[string]any{
		"storage": map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"health":  map[string]any{"disabled": true},
		"servers": servers,
	}
	// Search at once after start.
	loadConfig(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	if hits := app.Search("quasar telemetry", 5); len(hits) != 5 || !strings.HasPrefix(hits[0].Server, "svc-") {
		t.Fatalf("search right after start: %+v", hits)
	}

	// Reload (the store is now populated) and wait without searching: the worker
	// builds the index.
	loadConfig(t, cfg)
	app = runningApp(t)
	deadline := time.Now().Add(10 * time.Second)
	for app.search.index.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the index was not built in the background")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ix := app.search.index.Load(); ix.Docs() < 401 {
		t.Fatalf("background index has %d documents", ix.Docs())
	}
	if hits := app.Search("quasar telemetry", 5); len(hits) != 5 {
		t.Fatalf("search on the populated store: %+v", hits)
	}

	// A write is seen by the next search.
	ctx := context.Background()
	if _, err := app.Put(ctx, &model.Server{Name: "nebula", Upstream: "http://127.0.0.1:9/nebula/mcp",
		Description: "Nebula spectrograph archive", Enabled: true}, 0); err != nil {
		t.Fatal(err)
	}
	if hits := app.Search("spectrograph", 5); len(hits) != 1 || hits[0].Server != "nebula" {
		t.Fatalf("after Put: %+v", hits)
	}
	// A tool list recorded by a health check is seen by the next search.
	tools := []model.ToolInfo{{Name: "capture_spectrum", Description: "Capture a spectrum of a star"}}
	app.health.byServer.Store("nebula", &model.ServerHealth{Server: "nebula", Status: model.HealthHealthy, Tools: tools})
	app.searchToolsRecorded("nebula", nil, tools)
	if hits := app.Search("capture spectrum", 5); len(hits) == 0 || hits[0].Tool != "capture_spectrum" {
		t.Fatalf("after new tools: %+v", hits)
	}
	if _, err := app.SetEnabled(ctx, "nebula", false, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	if hits := app.Search("spectrograph spectrum", 5); len(hits) != 0 {
		t.Fatalf("after disabling: %+v", hits)
	}
	if err := app.Delete(ctx, "svc-007", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	for _, h := range app.Search("quasar telemetry 7", 50) {
		if h.Server == "svc-007" {
			t.Fatalf("deleted server still found: %+v", h)
		}
	}
}

// TestSearchConcurrentWithUpdates: searches keep answering while servers change
// (run with -race).
func TestSearchConcurrentWithUpdates(t *testing.T) {
	app := new(App)
	src := loadSearchCorpus(t)
	var servers []*model.Server
	for _, s := range src {
		servers = append(servers, s.Server)
	}
	app.index = newIndex(servers)
	for _, s := range src {
		app.health.byServer.Store(s.Server.Name, &model.ServerHealth{Server: s.Server.Name, Tools: s.Tools})
	}
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 3 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if hits := app.Search("create a jira ticket", 10); len(hits) == 0 {
					errs <- fmt.Errorf("no hits during updates")
					return
				}
			}
		}()
	}
	for i := range 200 {
		s := src[i%len(src)]
		tools := slices.Clone(s.Tools)
		if len(tools) > 0 {
			tools[0].Description += fmt.Sprintf(" v%d", i)
		}
		old, _ := app.health.byServer.Load(s.Server.Name)
		app.health.byServer.Store(s.Server.Name, &model.ServerHealth{Server: s.Server.Name, Tools: tools})
		app.searchToolsRecorded(s.Server.Name, old.(*model.ServerHealth).Tools, tools)
		if i%20 == 0 {
			app.invalidateSearch()
		}
	}
	close(done)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want := search.Build(app.searchSources())
	app.invalidateSearch()
	got := app.currentSearchIndex()
	if got.Docs() != want.Docs() {
		t.Fatalf("after updates: %d documents, full rebuild %d", got.Docs(), want.Docs())
	}
	for _, q := range []string{"create a jira ticket", "v199", "query"} {
		if g, w := got.Search(q, want.Docs()+1), want.Search(q, want.Docs()+1); !slices.Equal(g, w) {
			t.Fatalf("after updates: query %q gives %d hits %v, a full rebuild %d %v", q, len(g), g, len(w), w)
		}
	}
}
