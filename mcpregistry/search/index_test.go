package search

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// sortedSources returns src ordered by server name, as the App indexes them.
func sortedSources(src []Source) []Source {
	out := slices.Clone(src)
	slices.SortFunc(out, func(a, b Source) int { return strings.Compare(a.Server.Name, b.Server.Name) })
	return out
}

type exactHit struct {
	server, tool string
	score        float32
}

func exactHits(ix *Index, query string, limit int) []exactHit {
	var out []exactHit
	for _, sd := range ix.searchScored(query, limit) {
		d := ix.shards[sd.shard].docs[sd.doc]
		out = append(out, exactHit{d.server, d.tool, sd.score})
	}
	return out
}

// sameIndex fails t unless got answers every query exactly as want does (the same
// hits in the same order with bit-identical scores), at every limit from all of the
// index down to the top hit (where the pruning acts), and has the same statistics.
func sameIndex(t *testing.T, step string, got, want *Index, queries []string) {
	t.Helper()
	if got.n != want.n || got.total != want.total || got.avgLen != want.avgLen {
		t.Fatalf("%s: statistics n %d total %v avg %v, full rebuild n %d total %v avg %v",
			step, got.n, got.total, got.avgLen, want.n, want.total, want.avgLen)
	}
	for _, q := range queries {
		for _, limit := range []int{want.n + 1, 10, 5, 1} {
			g, w := exactHits(got, q, limit), exactHits(want, q, limit)
			if !slices.Equal(g, w) {
				for i := range min(len(g), len(w)) {
					if g[i] != w[i] {
						t.Fatalf("%s: query %q, limit %d: hit %d is %+v, full rebuild %+v (%d vs %d hits)", step, q, limit, i, g[i], w[i], len(g), len(w))
					}
				}
				t.Fatalf("%s: query %q, limit %d: %d hits, full rebuild %d", step, q, limit, len(g), len(w))
			}
		}
	}
}

// TestSearchIndexIncrementalMatchesRebuild applies a random (fixed seed) sequence of
// registrations, edits, removals, disablings and tool-list changes to an index, one
// server at a time (WithChanges) or by comparing everything (WithSources), and checks
// after each step that every query gives exactly the hits and scores of an index
// built from scratch.
func TestSearchIndexIncrementalMatchesRebuild(t *testing.T) {
	if testing.Short() {
		t.Skip("a long random sequence of index changes; runs without -short")
	}
	// The labelled corpus and 500 generated servers: a dozen shards or more.
	corpus := sortedSources(append(loadSearchCorpus(t), synthetic20k()[:500]...))
	var queries []string
	raw, err := os.ReadFile("testdata/queries.json")
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
	live := map[string]Source{}
	var pool []model.ToolInfo
	for _, s := range corpus[:len(corpus)/2] {
		live[s.Server.Name] = s
	}
	for _, s := range corpus {
		pool = append(pool, s.Tools...)
	}
	current := func() []Source {
		var out []Source
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
	ix := Build(current())
	sameIndex(t, "initial", ix, Build(current()), queries)
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
		changes := map[string]*Source{}
		var what []string
		for range 1 + rng.IntN(3) {
			var name string
			var src *Source
			switch op := rng.IntN(7); {
			case op == 0 || op == 5 || len(live) == 0: // register a server of the corpus or a new one
				c := corpus[rng.IntN(len(corpus))]
				s := *c.Server
				if rng.IntN(4) != 0 {
					// new names all in one range: its shard grows and splits
					s.Name = fmt.Sprintf("new-%03d-%s", step, s.Name)
				}
				src = &Source{Server: &s, Tools: c.Tools}
				name = s.Name
			case op == 1: // remove (or disable: the same for search)
				name = names()[rng.IntN(len(live))]
			case op == 2: // edit the record: description, tags
				name = names()[rng.IntN(len(live))]
				s := *live[name].Server
				s.Description = "renamed " + s.Description
				s.Tags = append(slices.Clone(s.Tags), fmt.Sprintf("tag%d", rng.IntN(5)))
				src = &Source{Server: &s, Tools: live[name].Tools}
			case op == 3: // a new tool list
				name = names()[rng.IntN(len(live))]
				src = &Source{Server: live[name].Server, Tools: randomTools()}
			case op == 4: // an equal tool list under new pointers
				name = names()[rng.IntN(len(live))]
				src = &Source{Server: live[name].Server, Tools: slices.Clone(live[name].Tools)}
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
			if ix, ok = ix.WithSources(current(), nil); !ok {
				t.Fatal("WithSources stopped without a stop channel")
			}
		} else {
			ix = ix.WithChanges(changes)
		}
		if len(ix.shards) > shards0 {
			splits++
		}
		full := Build(current())
		sameIndex(t, fmt.Sprintf("step %d %v", step, what), ix, full, queries)
		if step%10 == 0 {
			// The precomputed impacts give the same as computing them per search.
			sameIndex(t, fmt.Sprintf("step %d with impacts", step), ix.WithImpacts(), full, queries)
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
	ix := Build(src)
	same, ok := ix.WithSources(slices.Clone(src), nil)
	if !ok {
		t.Fatal("stopped")
	}
	if same != ix {
		t.Fatal("a comparison without changes made a new snapshot")
	}
	s := *src[300].Server
	s.Description = "changed"
	next := ix.WithChanges(map[string]*Source{s.Name: {Server: &s, Tools: src[300].Tools}})
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

// TestSearchShardBoundExact: a search that passes over the shards whose bound is
// below its kept hits (shardBound, with the impacts) returns exactly the hits and
// scores of one that scores every shard (without them), at the limits people ask
// for, where the pruning acts.
func TestSearchShardBoundExact(t *testing.T) {
	var cat evalCatalog
	readEvalJSON(t, "catalog.json", &cat)
	src := sortedSources(append(append(loadSearchCorpus(t), evalSources(cat)...), synthetic20k()[:3000]...))
	plain, _ := (&Index{}).WithSources(src, nil)
	bounded := plain.WithImpacts()
	var queries []string
	for _, set := range []string{"train", "train2"} {
		var qs []evalQuery
		readEvalJSON(t, set+".json", &qs)
		for _, q := range qs {
			queries = append(queries, q.Query)
		}
	}
	raw, err := os.ReadFile("testdata/queries.json")
	if err != nil {
		t.Fatal(err)
	}
	var labelled []labelledQuery
	if err := json.Unmarshal(raw, &labelled); err != nil {
		t.Fatal(err)
	}
	for _, q := range labelled {
		queries = append(queries, q.Query)
	}
	queries = append(queries, "create an invoice for a customer", "team 42 dashboard metrics", "list issues")
	below := 0 // shards whose bound is below the final worst hit: passed over
	for _, q := range queries {
		for _, limit := range []int{1, 5, 10, 30} {
			want, got := exactHits(plain, q, limit), exactHits(bounded, q, limit)
			if !slices.Equal(got, want) {
				t.Fatalf("query %q, limit %d: with shard bounds %v, without %v", q, limit, got, want)
			}
			if limit != 10 || len(want) < limit {
				continue
			}
			buf, cov := shardBoundsOf(bounded, q)
			for k := range bounded.shards {
				if shardBound(buf, cov, k, len(bounded.shards)) < want[len(want)-1].score {
					below++
				}
			}
		}
	}
	if below == 0 {
		t.Fatal("no shard's bound is below a query's 10th hit: the test does not exercise the bound")
	}
	t.Logf("%d queries, %d shards; %d shard bounds below the 10th hit", len(queries), len(bounded.shards), below)
}

// shardBoundsOf returns what searchScored passes shardBound for query.
func shardBoundsOf(ix *Index, query string) (*scoreBuf, *coverage) {
	var buf scoreBuf
	var cov coverage
	ix.weigh(queryTermsKnown(query, ix.docFreq), &buf, &cov)
	return &buf, &cov
}

// TestSearchBuildStops: a first build gives up when its stop channel is closed.
func TestSearchBuildStops(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	if ix, ok := BuildUnless(loadSearchCorpus(t), stop); ok || ix != nil {
		t.Fatal("build went on after stop")
	}
}

// BenchmarkSearchIndexUpdate: at 20,000 servers × 20 tools, one server's tool list
// changes. one-server: the update announced for that server (a health check);
// compare-all: the comparison of every server after invalidateSearch (sources already
// gathered). BenchmarkSearchBuild20k is what a full rebuild costs instead.
func BenchmarkSearchIndexUpdate(b *testing.B) {
	src := synthetic20k()
	ix := Build(src)
	change := func(i int) (string, Source) {
		s := src[(i*7919)%len(src)]
		tools := slices.Clone(s.Tools)
		tools[i%len(tools)].Description = fmt.Sprintf("changed %d", i)
		return s.Server.Name, Source{Server: s.Server, Tools: tools}
	}
	b.Run("one-server", func(b *testing.B) {
		cur := ix
		i := 0
		for b.Loop() {
			name, s := change(i)
			cur = cur.WithChanges(map[string]*Source{name: &s})
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
			cur, _ = cur.WithSources(all, nil)
			i++
		}
	})
	b.Run("compare-all-unchanged", func(b *testing.B) {
		for b.Loop() {
			ix.WithSources(src, nil)
		}
	})
	// What the background worker then spends to precompute the impacts (searches are
	// exact without them, only slower).
	b.Run("impacts-refresh", func(b *testing.B) {
		for b.Loop() {
			ix.WithImpacts()
		}
	})
}

// TestSearchProductName: a query word that names a server (most of its documents are
// that server's tools) lowers the tools of other servers; a word that a server's name
// shares with ordinary text does not.
func TestSearchProductName(t *testing.T) {
	tool := func(name, desc string) model.ToolInfo { return model.ToolInfo{Name: name, Description: desc} }
	src := sortedSources([]Source{
		{Server: &model.Server{Name: "acme"}, Tools: []model.ToolInfo{
			tool("list_items", "List the items in stock (parts, widgets)"),
		}},
		{Server: &model.Server{Name: "other"}, Tools: []model.ToolInfo{
			tool("list_widgets", "List widgets"),
		}},
		{Server: &model.Server{Name: "time"}, Tools: []model.ToolInfo{
			tool("convert_time", "Convert a time between time zones"),
		}},
		{Server: &model.Server{Name: "clock"}, Tools: []model.ToolInfo{
			tool("set_alarm", "Set an alarm for a time of day"),
			tool("start_timer", "Start a timer that runs out after some time"),
			tool("stopwatch", "Measure elapsed time"),
		}},
	})
	ix := Build(src)
	// other/list_widgets answers "list widgets" in both queries and neither of acme
	// and time: only the product penalty tells its scores apart.
	score := func(query string) float32 {
		for _, h := range exactHits(ix, query, 10) {
			if h.tool == "list_widgets" {
				return h.score
			}
		}
		t.Fatalf("%s: no list_widgets in %v", query, exactHits(ix, query, 10))
		return 0
	}
	if named, plain := score("list widgets acme"), score("list widgets time"); math.Abs(float64(named/plain-offProductFactor)) > 1e-4 {
		t.Errorf("list_widgets scores %v when the query names acme, %v when it says time: want a ratio of %v", named, plain, offProductFactor)
	}
	// "time" names the time server but is mostly ordinary text: no product.
	if hits := exactHits(ix, "alarm time", 3); len(hits) == 0 || hits[0].tool != "set_alarm" {
		t.Errorf("alarm time: %v, want clock/set_alarm first", hits)
	}
}

// TestSearchServerContext: what a query finds in a server's description counts, in
// part, for the server's tools: "todo items" finds the todo manager's list_items
// before another server's list_items.
func TestSearchServerContext(t *testing.T) {
	tool := func(name, desc string) model.ToolInfo { return model.ToolInfo{Name: name, Description: desc} }
	src := sortedSources([]Source{
		{Server: &model.Server{Name: "alpha", Description: "Inventory of parts"}, Tools: []model.ToolInfo{
			tool("list_items", "List items"),
		}},
		{Server: &model.Server{Name: "beta", Description: "Todo manager"}, Tools: []model.ToolInfo{
			tool("list_items", "List items"),
		}},
	})
	ix := Build(src)
	hits := exactHits(ix, "todo items", 10)
	var tools []exactHit
	for _, h := range hits {
		if h.tool != "" {
			tools = append(tools, h)
		}
	}
	if len(tools) != 2 || tools[0].server != "beta" || tools[0].score <= tools[1].score {
		t.Errorf("todo items: %v, want beta/list_items above alpha/list_items", hits)
	}
}

// TestSearchQuestionLowersWrites: a question that names no change is answered by a
// tool that reads; one that creates, updates or deletes keeps askWriteFactor.
func TestSearchQuestionLowersWrites(t *testing.T) {
	tool := func(name, desc string) model.ToolInfo { return model.ToolInfo{Name: name, Description: desc} }
	ix := Build([]Source{{Server: &model.Server{Name: "tasks"}, Tools: []model.ToolInfo{
		tool("create_task", "Create a task due on a day"),
		tool("get_tasks", "Get tasks"),
	}}})
	score := func(query, name string) float32 {
		for _, h := range exactHits(ix, query, 10) {
			if h.tool == name {
				return h.score
			}
		}
		t.Fatalf("%s: no %s", query, name)
		return 0
	}
	// "what" and "which" are dropped from the query: the two differ only in asking.
	asked, said := score("what task is due today", "create_task"), score("task is due today", "create_task")
	if math.Abs(float64(asked/said-askWriteFactor)) > 1e-4 {
		t.Errorf("create_task scores %v for the question, %v for the statement: want a ratio of %v", asked, said, askWriteFactor)
	}
	if asked, said := score("what task is due today", "get_tasks"), score("task is due today", "get_tasks"); asked != said {
		t.Errorf("get_tasks scores %v for the question, %v for the statement: want the same", asked, said)
	}
}

// bruteForceHits is the reference for a search's top limit: every document scored
// (a limit above the index's size prunes nothing), ordered by better, cut at limit.
func bruteForceHits(ix *Index, query string, limit int) []exactHit {
	all := exactHits(ix, query, ix.n+1)
	return all[:min(limit, len(all))]
}

// TestSearchTopKExact: at the limits people ask for (where the pruning acts), an
// index built up by changes, in several orders and with servers removed and added
// back, returns exactly the hits and scores of one built from scratch, and both
// exactly the top of a search that scores every document: what a search returns
// does not depend on the order it visits documents in, nor on where shards split.
func TestSearchTopKExact(t *testing.T) {
	var cat evalCatalog
	readEvalJSON(t, "catalog.json", &cat)
	// The catalog and generated servers between its names: shards that split.
	corpus := sortedSources(append(evalSources(cat), synthetic20k()[:400]...))
	var queries []string
	for _, set := range []string{"train", "train2"} {
		var qs []evalQuery
		readEvalJSON(t, set+".json", &qs)
		for _, q := range qs {
			queries = append(queries, q.Query)
		}
	}
	limits := []int{1, 5, 10}
	check := func(name string, got, rebuilt *Index) {
		t.Helper()
		if got.n != rebuilt.n {
			t.Fatalf("%s: %d documents, rebuilt %d", name, got.n, rebuilt.n)
		}
		for _, q := range queries {
			for _, limit := range limits {
				g, r, b := exactHits(got, q, limit), exactHits(rebuilt, q, limit), bruteForceHits(rebuilt, q, limit)
				if !slices.Equal(r, b) {
					t.Errorf("%s: query %q, limit %d: rebuilt index %v, every document scored %v", name, q, limit, r, b)
				}
				if !slices.Equal(g, r) {
					t.Errorf("%s: query %q, limit %d: %v, rebuilt index %v", name, q, limit, g, r)
				}
				if gb := bruteForceHits(got, q, limit); !slices.Equal(gb, b) {
					t.Errorf("%s: query %q, limit %d: every document scored %v, rebuilt %v", name, q, limit, gb, b)
				}
			}
		}
	}
	rebuilt := Build(corpus)
	check("rebuilt without impacts", rebuilt, (&Index{}).WithChanges(nil).WithChanges(changesOf(corpus)))
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 11))
		order := slices.Clone(corpus)
		switch seed {
		case 0:
			slices.Reverse(order)
		default:
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		ix := &Index{}
		var removed []Source
		for len(order) > 0 {
			n := min(len(order), 1+rng.IntN(8))
			changes := changesOf(order[:n])
			order = order[n:]
			if seed > 0 && rng.IntN(3) == 0 && len(removed) > 0 {
				// Add back a server removed earlier.
				s := removed[0]
				removed = removed[1:]
				changes[s.Server.Name] = &s
			}
			ix = ix.WithChanges(changes)
			if seed > 0 && rng.IntN(4) == 0 {
				// Remove a server it holds (added back later).
				sh := ix.shards[rng.IntN(len(ix.shards))]
				g := sh.segs[rng.IntN(len(sh.segs))]
				removed = append(removed, g.src)
				ix = ix.WithChanges(map[string]*Source{g.name(): nil})
			}
		}
		if len(removed) > 0 {
			ix = ix.WithChanges(changesOf(removed))
		}
		name := fmt.Sprintf("order %d (%d shards, rebuilt %d)", seed, len(ix.shards), len(rebuilt.shards))
		check(name+" without impacts", ix, rebuilt)
		check(name+" with impacts", ix.WithImpacts(), rebuilt)
		if t.Failed() {
			return
		}
	}
}

// changesOf is srcs as changes (see Index.WithChanges).
func changesOf(srcs []Source) map[string]*Source {
	out := make(map[string]*Source, len(srcs))
	for i := range srcs {
		out[srcs[i].Server.Name] = &srcs[i]
	}
	return out
}

// TestSearchShardBoundHolds: no document's final score (every boost and penalty
// applied) is above its shard's bound, to the last bit, and the bound is reached:
// a shard of duplicates is passed over only if its bound is exact.
func TestSearchShardBoundHolds(t *testing.T) {
	var cat evalCatalog
	readEvalJSON(t, "catalog.json", &cat)
	ix := Build(sortedSources(append(evalSources(cat), synthetic20k()[:1000]...)))
	var queries []string
	for _, set := range []string{"train", "train2"} {
		var qs []evalQuery
		readEvalJSON(t, set+".json", &qs)
		for _, q := range qs {
			queries = append(queries, q.Query)
		}
	}
	queries = append(queries, "list issues", "create an invoice for a customer", "team 42 dashboard metrics")
	reached := 0
	for _, q := range queries {
		buf, cov := shardBoundsOf(ix, q)
		best := make([]float32, len(ix.shards))
		for _, d := range ix.searchScored(q, ix.n+1) {
			best[d.shard] = max(best[d.shard], d.score)
		}
		for k, b := range best {
			bound := shardBound(buf, cov, k, len(ix.shards))
			if b > bound {
				t.Fatalf("query %q: shard %d has a hit scoring %v, above its bound %v", q, k, b, bound)
			}
			if b > 0 && b == bound {
				reached++
			}
		}
	}
	if reached == 0 {
		t.Fatal("no shard's best hit reaches its bound: the test does not show the bounds are tight")
	}
	t.Logf("%d queries over %d shards: %d shards' best hit scores exactly their bound", len(queries), len(ix.shards), reached)
}
