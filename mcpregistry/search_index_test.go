package mcpregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// sortedSources returns src ordered by server name, as the App indexes them.
func sortedSources(src []searchSource) []searchSource {
	out := slices.Clone(src)
	slices.SortFunc(out, func(a, b searchSource) int { return strings.Compare(a.server.Name, b.server.Name) })
	return out
}

type exactHit struct {
	server, tool string
	score        float32
}

func exactHits(ix *searchIndex, query string, limit int) []exactHit {
	var out []exactHit
	for _, sd := range ix.searchScored(query, limit) {
		d := ix.shards[sd.shard].docs[sd.doc]
		out = append(out, exactHit{d.server, d.tool, sd.score})
	}
	return out
}

// sameIndex fails t unless got answers every query exactly as want does (the same
// hits in the same order with bit-identical scores) and has the same statistics.
func sameIndex(t *testing.T, step string, got, want *searchIndex, queries []string) {
	t.Helper()
	if got.n != want.n || got.total != want.total || got.avgLen != want.avgLen {
		t.Fatalf("%s: statistics n %d total %v avg %v, full rebuild n %d total %v avg %v",
			step, got.n, got.total, got.avgLen, want.n, want.total, want.avgLen)
	}
	for _, q := range queries {
		g, w := exactHits(got, q, want.n+1), exactHits(want, q, want.n+1)
		if !slices.Equal(g, w) {
			for i := range min(len(g), len(w)) {
				if g[i] != w[i] {
					t.Fatalf("%s: query %q: hit %d is %+v, full rebuild %+v (%d vs %d hits)", step, q, i, g[i], w[i], len(g), len(w))
				}
			}
			t.Fatalf("%s: query %q: %d hits, full rebuild %d", step, q, len(g), len(w))
		}
	}
}

// TestSearchIndexIncrementalMatchesRebuild applies a random (fixed seed) sequence of
// registrations, edits, removals, disablings and tool-list changes to an index, one
// server at a time (withChanges) or by comparing everything (withSources), and checks
// after each step that every query gives exactly the hits and scores of an index
// built from scratch.
func TestSearchIndexIncrementalMatchesRebuild(t *testing.T) {
	// The labelled corpus and 500 generated servers: a dozen shards or more.
	corpus := sortedSources(append(loadSearchCorpus(t), synthetic20k()[:500]...))
	var queries []string
	raw, err := os.ReadFile("testdata/search/queries.json")
	if err != nil {
		t.Fatal(err)
	}
	var labelled []labelledQuery
	if err := json.Unmarshal(raw, &labelled); err != nil {
		t.Fatal(err)
	}
	for _, q := range labelled[:12] {
		queries = append(queries, q.Query)
	}
	queries = append(queries, "server", "create", "list issues", "new tool zeta", "team", "renamed",
		"team 42 dashboard metrics", "k8s pod logs", "open a pull request")

	rng := rand.New(rand.NewPCG(42, 7))
	// live: name → source; pool: tools to draw from.
	live := map[string]searchSource{}
	var pool []model.ToolInfo
	for _, s := range corpus[:len(corpus)/2] {
		live[s.server.Name] = s
	}
	for _, s := range corpus {
		pool = append(pool, s.tools...)
	}
	current := func() []searchSource {
		var out []searchSource
		for _, s := range live {
			out = append(out, s)
		}
		return sortedSources(out)
	}
	randomTools := func() []model.ToolInfo {
		n := rng.IntN(12)
		out := make([]model.ToolInfo, n)
		for i := range out {
			out[i] = pool[rng.IntN(len(pool))]
			if rng.IntN(4) == 0 {
				out[i].Description += " zeta"
			}
		}
		return out
	}
	ix := buildSearchIndex(current())
	sameIndex(t, "initial", ix, buildSearchIndex(current()), queries)
	shards0, splits := len(ix.shards), 0

	names := func() []string {
		var out []string
		for n := range live {
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	for step := range 100 {
		changes := map[string]*searchSource{}
		var what []string
		for range 1 + rng.IntN(3) {
			var name string
			var src *searchSource
			switch op := rng.IntN(7); {
			case op == 0 || op == 5 || len(live) == 0: // register a server of the corpus or a new one
				c := corpus[rng.IntN(len(corpus))]
				s := *c.server
				if rng.IntN(4) != 0 {
					// new names all in one range: its shard grows and splits
					s.Name = fmt.Sprintf("new-%03d-%s", step, s.Name)
				}
				src = &searchSource{server: &s, tools: c.tools}
				name = s.Name
			case op == 1: // remove (or disable: the same for search)
				name = names()[rng.IntN(len(live))]
			case op == 2: // edit the record: description, tags
				name = names()[rng.IntN(len(live))]
				s := *live[name].server
				s.Description = "renamed " + s.Description
				s.Tags = append(slices.Clone(s.Tags), fmt.Sprintf("tag%d", rng.IntN(5)))
				src = &searchSource{server: &s, tools: live[name].tools}
			case op == 3: // a new tool list
				name = names()[rng.IntN(len(live))]
				src = &searchSource{server: live[name].server, tools: randomTools()}
			case op == 4: // an equal tool list under new pointers
				name = names()[rng.IntN(len(live))]
				src = &searchSource{server: live[name].server, tools: slices.Clone(live[name].tools)}
			case op == 6: // nothing changed, but announced
				name = names()[rng.IntN(len(live))]
				s := live[name]
				src = &s
			}
			changes[name] = src
			if src == nil {
				delete(live, name)
				what = append(what, "-"+name)
			} else {
				live[name] = *src
				what = append(what, "+"+name)
			}
		}
		if step%3 == 2 {
			var ok bool
			if ix, ok = ix.withSources(current(), nil); !ok {
				t.Fatal("withSources stopped without a stop channel")
			}
		} else {
			ix = ix.withChanges(changes)
		}
		if len(ix.shards) > shards0 {
			splits++
		}
		full := buildSearchIndex(current())
		sameIndex(t, fmt.Sprintf("step %d %v", step, what), ix, full, queries)
		if step%10 == 0 {
			// The precomputed impacts give the same as computing them per search.
			sameIndex(t, fmt.Sprintf("step %d with impacts", step), ix.withImpacts(), full, queries)
		}
	}
	if len(live) == 0 || splits == 0 || len(ix.shards) < 10 {
		t.Fatalf("the sequence did not exercise enough (%d servers, %d shards, no split %v); pick another seed",
			len(live), len(ix.shards), splits == 0)
	}
	t.Logf("%d servers in %d shards (%d at the start)", len(live), len(ix.shards), shards0)
}

// TestSearchIndexReusesUnchangedShards: a change rebuilds only its own shard, and an
// unchanged comparison returns the same shards.
func TestSearchIndexReusesUnchangedShards(t *testing.T) {
	src := synthetic20k()[:1000]
	ix := buildSearchIndex(src)
	same, ok := ix.withSources(slices.Clone(src), nil)
	if !ok {
		t.Fatal("stopped")
	}
	if same != ix {
		t.Fatal("a comparison without changes made a new snapshot")
	}
	s := *src[300].server
	s.Description = "changed"
	next := ix.withChanges(map[string]*searchSource{s.Name: {server: &s, tools: src[300].tools}})
	if len(next.shards) != len(ix.shards) {
		t.Fatalf("%d shards, then %d", len(ix.shards), len(next.shards))
	}
	changed := 0
	for k := range ix.shards {
		if next.shards[k] != ix.shards[k] {
			changed++
		}
	}
	if changed != 1 {
		t.Fatalf("%d shards rebuilt for one server", changed)
	}
}

// TestSearchBuildStops: a first build gives up when its stop channel is closed.
func TestSearchBuildStops(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	if ix, ok := buildSearchIndexUnless(loadSearchCorpus(t), stop); ok || ix != nil {
		t.Fatal("build went on after stop")
	}
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
	if ix := app.search.index.Load(); ix.n < 401 {
		t.Fatalf("background index has %d documents", ix.n)
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
	app.health.Store("nebula", &model.ServerHealth{Server: "nebula", Status: model.HealthHealthy, Tools: tools})
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
	src := sortedSources(loadSearchCorpus(t))
	var servers []*model.Server
	for _, s := range src {
		servers = append(servers, s.server)
	}
	app.index = newIndex(servers)
	for _, s := range src {
		app.health.Store(s.server.Name, &model.ServerHealth{Server: s.server.Name, Tools: s.tools})
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
		tools := slices.Clone(s.tools)
		if len(tools) > 0 {
			tools[0].Description += fmt.Sprintf(" v%d", i)
		}
		old, _ := app.health.Load(s.server.Name)
		app.health.Store(s.server.Name, &model.ServerHealth{Server: s.server.Name, Tools: tools})
		app.searchToolsRecorded(s.server.Name, old.(*model.ServerHealth).Tools, tools)
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
	want := buildSearchIndex(app.searchSources())
	app.invalidateSearch()
	sameIndex(t, "after updates", app.currentSearchIndex(), want, []string{"create a jira ticket", "v199", "query"})
}

// BenchmarkSearchIndexUpdate: at 20,000 servers × 20 tools, one server's tool list
// changes. one-server: the update announced for that server (a health check);
// compare-all: the comparison of every server after invalidateSearch (sources already
// gathered). BenchmarkSearchBuild20k is what every change cost before.
func BenchmarkSearchIndexUpdate(b *testing.B) {
	src := synthetic20k()
	ix := buildSearchIndex(src)
	change := func(i int) (string, searchSource) {
		s := src[(i*7919)%len(src)]
		tools := slices.Clone(s.tools)
		tools[i%len(tools)].Description = fmt.Sprintf("changed %d", i)
		return s.server.Name, searchSource{server: s.server, tools: tools}
	}
	b.Run("one-server", func(b *testing.B) {
		cur := ix
		i := 0
		for b.Loop() {
			name, s := change(i)
			cur = cur.withChanges(map[string]*searchSource{name: &s})
			i++
		}
	})
	b.Run("compare-all", func(b *testing.B) {
		cur := ix
		all := slices.Clone(src)
		i := 0
		for b.Loop() {
			b.StopTimer()
			k := (i * 7919) % len(all)
			_, all[k] = change(i)
			b.StartTimer()
			cur, _ = cur.withSources(all, nil)
			i++
		}
	})
	b.Run("compare-all-unchanged", func(b *testing.B) {
		for b.Loop() {
			ix.withSources(src, nil)
		}
	})
	// What the background worker then spends to precompute the impacts (searches are
	// exact without them, only slower).
	b.Run("impacts-refresh", func(b *testing.B) {
		for b.Loop() {
			ix.withImpacts()
		}
	})
}
