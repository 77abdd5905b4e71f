package mcpregistry

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/search"
)

// searchState is an App's search index and what is needed to keep it current.
//
// Changes reach the index three ways:
//   - searchServerChanged (after Put, SetEnabled, Delete) and searchToolsRecorded (a
//     health check recorded a different tool list): the next update looks at that
//     server only;
//   - invalidateSearch (after Import): the next update
//     compares every enabled server and its tool list with the indexed ones (pointer
//     comparisons mostly: a few milliseconds at 20,000 servers) and rebuilds the
//     shards of those that changed;
//   - a periodic full comparison by the background worker, for changes that were not
//     announced (recheckSearch: without holding mu, so that no search waits for it).
//
// Announced changes bump gen; a search whose snapshot is older applies them first
// (waiting for an update in progress), so a search that follows a write sees it.
type searchState struct {
	index     atomic.Pointer[search.Index]
	gen       atomic.Uint64 // announced changes so far
	full      atomic.Bool   // the next update compares every server
	checkedAt atomic.Int64  // unix nanoseconds of the last full comparison
	checkCost atomic.Int64  // nanoseconds the last full comparison took
	mu        sync.Mutex    // one update at a time

	pendMu  sync.Mutex
	pending map[string]bool // servers whose tool lists changed

	wakeOnce sync.Once
	wake     chan struct{} // tells the worker there is something to apply

	slotsOnce sync.Once
	slots     chan struct{} // searches scoring now, at most GOMAXPROCS (searchSlot)
}

// searchSlot waits for a turn to score a query and returns the function that ends it.
//
// Scoring is pure CPU (~0.1 ms at 20,000 servers) and never blocks, so under load the
// searching goroutines would run back to back until the scheduler preempts one after
// its 10 ms time slice; a preempted goroutine goes to the global run queue and waits
// there for the others' slices, hundreds of milliseconds with 100 concurrent
// searches on 2 CPUs: a rare search then took ~1 s while the median took 0.1 ms.
// Letting only GOMAXPROCS searches score at once, the others waiting their turn in
// order (a channel's senders are served first come, first served), shares the CPU
// fairly: every search waits about as long as its share, and none is preempted.
func (st *searchState) searchSlot() (release func()) {
	st.slotsOnce.Do(func() { st.slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0))) })
	st.slots <- struct{}{}
	return st.releaseSlot
}

func (st *searchState) releaseSlot() { <-st.slots }

func (st *searchState) wakeChan() chan struct{} {
	st.wakeOnce.Do(func() { st.wake = make(chan struct{}, 1) })
	return st.wake
}

func (st *searchState) signal() {
	select {
	case st.wakeChan() <- struct{}{}:
	default:
	}
}

// invalidateSearch announces that servers changed (any of them, and their tool
// lists): the next search, or the background worker before it, applies the changes.
// Call it after changing servers or tool lists.
func (a *App) invalidateSearch() {
	st := &a.search
	st.full.Store(true)
	st.gen.Add(1)
	st.signal()
}

// searchToolsRecorded announces that a health check recorded tools for the named
// server; nothing happens when the list's content is unchanged.
func (a *App) searchToolsRecorded(name string, prev, cur []model.ToolInfo) {
	if search.SameTools(prev, cur) {
		return
	}
	a.searchServerChanged(name)
}

// searchServerChanged announces that the named server's record (or tool list)
// changed: the next update looks at that server only.
func (a *App) searchServerChanged(name string) {
	st := &a.search
	st.pendMu.Lock()
	if st.pending == nil {
		st.pending = map[string]bool{}
	}
	st.pending[name] = true
	st.pendMu.Unlock()
	st.gen.Add(1)
	st.signal()
}

// searchRecheck is how long the index may go without a full comparison with the
// registry (for changes nobody announced), given how long the last one took: small
// registries compare on every search, as they always did; at 20,000 servers (a
// comparison of a few milliseconds) the background worker compares every few hundred
// milliseconds to 5 seconds, at most ~1% of one CPU.
func searchRecheck(lastCost time.Duration) time.Duration {
	if lastCost < 200*time.Microsecond {
		return 0
	}
	return min(100*lastCost, 5*time.Second)
}

// Search ranks the enabled servers and their tools for a natural-language query and
// returns at most limit hits, best first. It is safe for concurrent use. It waits only
// for the first build of the index and for announced changes not yet applied, and,
// with embeddings configured, for the query's embedding (bounded by their timeout).
func (a *App) Search(query string, limit int) []search.Hit {
	return a.SearchContext(context.Background(), query, limit)
}

// SearchContext is Search for a caller's request: the query's embedding, if any, is
// given up when ctx ends (the search is then lexical).
func (a *App) SearchContext(ctx context.Context, query string, limit int) []search.Hit {
	ix := a.currentSearchIndex()
	qv := a.queryVector(ctx, query) // I/O: before taking a scoring slot
	defer a.search.searchSlot()()
	if qv == nil {
		return ix.Search(query, limit)
	}
	depth := max(limit, semanticDepth)
	return search.Fuse(limit, ix.Search(query, depth), a.semanticHits(qv, depth))
}

func (a *App) currentSearchIndex() *search.Index {
	st := &a.search
	ix := st.index.Load()
	if ix == nil || ix.Gen < st.gen.Load() {
		ix, _ = a.updateSearch(false, false, nil)
		return ix
	}
	if searchRecheck(time.Duration(st.checkCost.Load())) == 0 {
		// A small registry: compare now, unless another search is at it.
		if next, ok := a.updateSearch(true, true, nil); ok {
			return next
		}
		return st.index.Load()
	}
	return ix
}

// updateSearch applies the announced changes (and compares every server when full),
// stores and returns the new snapshot. With try it gives up (false) when another
// update is running; with stop it gives up when stop closes during a first build.
func (a *App) updateSearch(full, try bool, stop <-chan struct{}) (*search.Index, bool) {
	st := &a.search
	if try {
		if !st.mu.TryLock() {
			return nil, false
		}
	} else {
		st.mu.Lock()
	}
	defer st.mu.Unlock()
	g := st.gen.Load()
	cur := st.index.Load()
	if cur != nil && cur.Gen >= g && !full {
		return cur, true // applied meanwhile
	}
	full = st.full.Swap(false) || full || cur == nil
	st.pendMu.Lock()
	names := st.pending
	st.pending = nil
	st.pendMu.Unlock()

	var next *search.Index
	if full {
		start := time.Now()
		sources := a.searchSources()
		var ok bool
		if cur == nil {
			next, ok = search.BuildUnless(sources, stop)
		} else {
			next, ok = cur.WithSources(sources, nil)
		}
		if !ok {
			// Stopped: leave the changes for whoever comes next.
			st.full.Store(true)
			return nil, false
		}
		if cur != nil {
			st.checkCost.Store(int64(time.Since(start)))
		}
		st.checkedAt.Store(time.Now().UnixNano())
	} else {
		changes := make(map[string]*search.Source, len(names))
		for name := range names {
			changes[name] = a.searchSourceOf(name)
		}
		next = cur.WithChanges(changes)
	}
	if next == cur {
		c := *cur
		next = &c
	}
	next.Gen = g
	st.index.Store(next)
	return next, true
}

// recheckSearch compares every server with the index, for changes nobody announced
// (the background worker's periodic comparison). It works on the current snapshot
// without holding st.mu, which a search waiting for an announced change takes: the
// result is stored only when no update replaced that snapshot meanwhile (else the
// next comparison catches up). It keeps the snapshot's gen: announced changes are
// still applied by updateSearch, which finds them already done.
func (a *App) recheckSearch() {
	st := &a.search
	cur := st.index.Load()
	if cur == nil {
		return
	}
	start := time.Now()
	next, _ := cur.WithSources(a.searchSources(), nil)
	st.checkCost.Store(int64(time.Since(start)))
	st.checkedAt.Store(time.Now().UnixNano())
	if next == cur {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.index.CompareAndSwap(cur, next)
}

// searchSources returns every enabled server with its tools, ordered by name.
func (a *App) searchSources() []search.Source {
	var out []search.Source
	for _, s := range a.ListServers() {
		if !s.Enabled {
			continue
		}
		out = append(out, search.Source{Server: s, Tools: a.ToolsOf(s)})
	}
	return out
}

// searchSourceOf returns the named server with its tools, or nil when it is absent or
// disabled.
func (a *App) searchSourceOf(name string) *search.Source {
	s := a.Server(name)
	if s == nil || !s.Enabled {
		return nil
	}
	return &search.Source{Server: s, Tools: a.ToolsOf(s)}
}

// searchWorkerTick is how often the background worker considers a full comparison.
const searchWorkerTick = 500 * time.Millisecond

// startSearch builds the search index in the background and keeps it current until
// the App's context ends. Searches that come before the first build is done wait for
// it (there is nothing correct to serve before), so the first search after start is
// not the one that pays for the build, unless it comes at once.
func (a *App) startSearch() {
	if a.ctx.Context == nil {
		return // not provisioned by Caddy: searches build the index themselves
	}
	done := a.ctx.Done()
	wake := a.search.wakeChan()
	logger := a.logger
	if logger == nil {
		logger = zap.NewNop()
	}
	// step runs one update and survives its panic (searches would then update
	// themselves, and panic in the caller).
	step := func(full bool, stop <-chan struct{}) (ix *search.Index) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("search index update panicked", zap.Any("panic", r), zap.Stack("stack"))
				ix = nil
			}
		}()
		ix, _ = a.updateSearch(full, false, stop)
		return ix
	}
	// refresh precomputes the impacts of the current snapshot (an update leaves them
	// out: recomputing every posting's impact on every change would cost what a
	// change should not), unless an update replaces the snapshot meanwhile.
	refresh := func() {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("search index refresh panicked", zap.Any("panic", r), zap.Stack("stack"))
			}
		}()
		cur := a.search.index.Load()
		if cur == nil || cur.HasImpacts() {
			return
		}
		a.search.index.CompareAndSwap(cur, cur.WithImpacts())
	}
	recheck := func() {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("search index comparison panicked", zap.Any("panic", r), zap.Stack("stack"))
			}
		}()
		a.recheckSearch()
	}
	go func() {
		start := time.Now()
		if ix := step(false, done); ix != nil {
			logger.Info("search index built", zap.Int("documents", ix.Docs()), zap.Duration("took", time.Since(start)))
			recheck() // measures a full comparison, for searchRecheck
		}
		tick := time.NewTicker(searchWorkerTick)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-wake:
				step(false, done)
			case <-tick.C:
				st := &a.search
				if time.Since(time.Unix(0, st.checkedAt.Load())) >= max(searchRecheck(time.Duration(st.checkCost.Load())), searchWorkerTick) {
					recheck()
				}
				refresh()
			}
		}
	}()
}

// Bounds of one search, the same on every path (the REST API's /api/search and the
// registry's search_tools tool): a long query costs CPU on every document, so it is
// capped before any work.
const (
	MaxSearchQueryBytes = 512
	DefaultSearchLimit  = 10
	MaxSearchLimit      = 100
)

// CheckSearch validates a search: the query (trimmed) must be 1–MaxSearchQueryBytes
// bytes; limit nil means DefaultSearchLimit, else it must be 1–MaxSearchLimit. Errors
// are *model.FieldError naming "query" or "limit".
func CheckSearch(query string, limit *int) (string, int, error) {
	query = strings.TrimSpace(query)
	if query == "" || len(query) > MaxSearchQueryBytes {
		return "", 0, &model.FieldError{Field: "query", Reason: fmt.Sprintf("required, at most %d bytes", MaxSearchQueryBytes)}
	}
	if limit == nil {
		return query, DefaultSearchLimit, nil
	}
	if *limit < 1 || *limit > MaxSearchLimit {
		return "", 0, &model.FieldError{Field: "limit", Reason: fmt.Sprintf("must be an integer from 1 to %d", MaxSearchLimit)}
	}
	return query, *limit, nil
}
