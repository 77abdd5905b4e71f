package mcpregistry

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Ranked search over the registry's servers and tools.
//
// This is a compact BM25F of our own rather than a library such as bleve:
//
//   - the corpus is small and lives in memory already (tens of thousands of servers at
//     most, each with a few dozen tools): an inverted index over it is a few megabytes
//     and builds in well under a second, so there is nothing to persist and no index
//     files to open, lock, migrate or repair next to the store;
//   - we want full control over what is a document and how fields count: a tool is
//     found by its own name (split on _-./ and camelCase), its description, the
//     server's name and tags, and the property names of its input schema, each with
//     its own weight, plus a small synonym table for the vocabulary of MCP servers
//     (db → database, k8s → kubernetes, ticket → issue …);
//   - no new dependency (bleve alone pulls in dozens of modules).
//
// Documents are each enabled server (name, tags, description) and each of its tools.
// Text is lowercased, split on non-alphanumerics and camelCase, stop words dropped and
// lightly stemmed (plural s/es/ies, ing, ed, final e) — the same on both sides.
//
// The index is an immutable snapshot swapped with an atomic pointer: searches never
// lock. A search first checks (cheaply, and for large registries at most every few
// hundred milliseconds, see searchRecheck) whether the servers or their tool lists
// changed and rebuilds the snapshot when they did; invalidateSearch forces that check
// on the next search.

// Field weights (BM25F): a query word in a tool's name counts most, in the schema's
// property names least.
const (
	weightName        = 3.0
	weightTags        = 2.0
	weightServerCtx   = 1.0 // a tool's server name and tags
	weightDescription = 1.0
	weightSchemaProps = 0.5
	weightSynonym     = 0.35 // a synonym of a query word counts this much of the word
	// serverDocFactor lowers whole servers slightly against their tools: people
	// mostly look for a tool to call.
	serverDocFactor = 0.8

	bm25K1 = 1.2
	bm25B  = 0.75
)

// stopWords are grammatical words, dropped from documents and queries alike.
var stopWords = toSet(`a an the to of for and or with in on at by from into as is are be it its
	this that these those i me my we our us you your what which who how do does can could
	would should will some any via`)

// queryNoise are words of asking ("find tools to …") dropped from queries only, and only
// when the query has other words: a query that is just "search" or "tools" still searches.
var queryNoise = toSet(`want need please find tool tools look looking let lets using use`)

// synonyms expands a query word (before stemming) into related words. Each word is
// looked up alone; expansions count weightSynonym of the word.
var synonyms = map[string][]string{
	"db":          {"database", "sql", "postgres", "mysql"},
	"database":    {"db", "sql", "query", "table"},
	"databases":   {"db", "sql", "query", "table"},
	"sql":         {"query", "database"},
	"postgres":    {"postgresql", "database", "sql"},
	"postgresql":  {"postgres", "database", "sql"},
	"repo":        {"repository", "git"},
	"repos":       {"repository", "git"},
	"repository":  {"repo", "git"},
	"pr":          {"pull", "merge"},
	"mr":          {"merge"},
	"ticket":      {"issue", "jira", "incident"},
	"tickets":     {"issue", "jira", "incident"},
	"issue":       {"ticket"},
	"bug":         {"issue", "error"},
	"doc":         {"document", "wiki", "confluence", "page"},
	"docs":        {"document", "wiki", "confluence", "page"},
	"document":    {"doc", "page", "file"},
	"wiki":        {"confluence", "page", "doc"},
	"note":        {"page", "notion", "observation"},
	"notes":       {"page", "notion", "observation"},
	"k8s":         {"kubernetes"},
	"kubernetes":  {"k8s"},
	"kubectl":     {"kubernetes"},
	"oncall":      {"pagerduty", "incident", "schedule"},
	"page":        {"pagerduty", "incident", "wiki"},
	"alert":       {"incident", "monitor", "alerting"},
	"alerts":      {"incident", "monitor", "alerting"},
	"incident":    {"alert", "pagerduty"},
	"email":       {"mail", "gmail", "message"},
	"mail":        {"email", "gmail"},
	"meeting":     {"event", "calendar"},
	"calendar":    {"event", "schedule"},
	"vm":          {"instance", "compute", "ec2"},
	"machine":     {"instance", "compute", "ec2"},
	"server":      {"instance"},
	"s3":          {"bucket", "object", "aws"},
	"bucket":      {"s3", "storage", "gcs"},
	"pay":         {"payment", "charge"},
	"payment":     {"charge", "stripe"},
	"invoice":     {"billing"},
	"billing":     {"invoice", "payment", "cost"},
	"cost":        {"billing", "usage"},
	"crm":         {"salesforce", "account", "contact", "lead"},
	"log":         {"logs", "logging"},
	"logs":        {"log", "logging"},
	"error":       {"exception", "sentry", "stacktrace"},
	"exception":   {"error", "stacktrace"},
	"remember":    {"memory", "entity", "observation"},
	"screenshot":  {"capture", "snapshot"},
	"web":         {"browser", "url", "http"},
	"website":     {"browser", "url", "page"},
	"url":         {"browser", "link", "navigate"},
	"deploy":      {"apply", "rollout", "release", "deployment"},
	"container":   {"docker", "pod"},
	"ci":          {"pipeline", "workflow", "job"},
	"pipeline":    {"ci", "workflow"},
	"chat":        {"slack", "message", "channel"},
	"message":     {"chat", "slack"},
	"warehouse":   {"snowflake", "bigquery"},
	"load":        {"import", "copy", "upload"},
	"import":      {"load", "copy", "upload"},
	"schedule":    {"calendar", "event"},
	"weather":     {"forecast", "temperature"},
	"metric":      {"timeseries", "monitor"},
	"metrics":     {"timeseries", "monitor"},
	"storage":     {"bucket", "s3", "file"},
	"spreadsheet": {"sheet", "csv"},
	// everyday verbs for the ones tools use
	"open":  {"create", "new"},
	"write": {"create", "append", "edit"},
	"add":   {"create", "append", "insert"},
	"show":  {"get", "list", "describe"},
}

func toSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// tokenize splits s into words: lowercase, split on anything not a letter or digit and
// on lower→upper case changes (camelCase); hyphenated words also yield their joined
// form ("on-call" → on, call, oncall). Stop words are dropped; the rest are stemmed.
func tokenize(s string) []string {
	var out []string
	for _, w := range rawWords(s) {
		if stopWords[w] {
			continue
		}
		out = append(out, stem(w))
	}
	return out
}

// rawWords is tokenize without stop words and stemming.
func rawWords(s string) []string {
	var out []string
	var cur []rune
	var joined []rune // the current hyphenated chunk, letters only
	hyphens := 0
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			joined = append(joined, cur...)
			cur = cur[:0]
		}
	}
	endChunk := func() {
		flush()
		if hyphens > 0 && len(joined) > 0 {
			out = append(out, string(joined))
		}
		joined, hyphens = joined[:0], 0
	}
	var prev rune
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)) {
				flush()
			}
			cur = append(cur, unicode.ToLower(r))
		case r == '-' && len(cur) > 0:
			flush()
			hyphens++
		default:
			endChunk()
		}
		prev = r
	}
	endChunk()
	return out
}

// stem removes common English suffixes: plurals (s, es, ies), ing, ed and a final e, so
// that create/creates/created/creating, query/queries and database/databases meet.
// Words of three letters or fewer are left alone.
func stem(w string) string {
	if len(w) <= 3 {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && len(w) > 4:
		w = w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "ied") && len(w) > 4:
		w = w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "sses"), strings.HasSuffix(w, "xes"), strings.HasSuffix(w, "ches"),
		strings.HasSuffix(w, "shes"), strings.HasSuffix(w, "zes"):
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") &&
		!strings.HasSuffix(w, "is"):
		w = w[:len(w)-1]
	case strings.HasSuffix(w, "ing") && len(w) >= 6:
		w = undouble(w[:len(w)-3])
	case strings.HasSuffix(w, "ed") && len(w) >= 5:
		w = undouble(w[:len(w)-2])
	}
	if len(w) >= 4 && strings.HasSuffix(w, "e") {
		w = w[:len(w)-1]
	}
	return w
}

// undouble turns a doubled final consonant into one (running → runn → run), except l,
// s and z (call, pass, buzz).
func undouble(w string) string {
	n := len(w)
	if n >= 3 && w[n-1] == w[n-2] && !strings.ContainsRune("aeiouylsz", rune(w[n-1])) {
		return w[:n-1]
	}
	return w
}

// schemaProperties returns the property names of a JSON Schema's top level (and of
// nested object properties, one level down), in a stable order.
func schemaProperties(schema json.RawMessage) []string {
	if len(schema) == 0 {
		return nil
	}
	var s struct {
		Properties map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
	}
	if json.Unmarshal(schema, &s) != nil {
		return nil
	}
	var out []string
	for name, p := range s.Properties {
		out = append(out, name)
		for sub := range p.Properties {
			out = append(out, sub)
		}
	}
	sort.Strings(out)
	return out
}

// searchSource is one server and its tools as last indexed; a snapshot keeps them to
// tell whether anything changed.
type searchSource struct {
	server *Server
	tools  []ToolInfo
}

type posting struct {
	doc int32
	// tf is the weighted term frequency while building, then the term's BM25 impact
	// in the document (with the document's factor).
	tf float32
}

type searchDoc struct {
	server, tool, description string
	length                    float32 // weighted length
	factor                    float32
}

// searchIndex is an immutable snapshot of the inverted index.
type searchIndex struct {
	sources  []searchSource
	docs     []searchDoc
	postings map[string][]posting
	avgLen   float32
}

func buildSearchIndex(sources []searchSource) *searchIndex {
	ix := &searchIndex{sources: sources, postings: map[string][]posting{}}
	var total float64
	tf := map[string]float32{}
	addTerms := func(w float32, terms []string) float32 {
		for _, term := range terms {
			tf[term] += w
		}
		return w * float32(len(terms))
	}
	add := func(w float32, texts ...string) float32 {
		var n float32
		for _, t := range texts {
			n += addTerms(w, tokenize(t))
		}
		return n
	}
	finish := func(d searchDoc) {
		id := int32(len(ix.docs))
		for term, f := range tf {
			ix.postings[term] = append(ix.postings[term], posting{doc: id, tf: f})
			delete(tf, term)
		}
		total += float64(d.length)
		ix.docs = append(ix.docs, d)
	}
	for _, src := range sources {
		s := src.server
		tags := strings.Join(s.Tags, " ")
		n := add(weightName, s.Name) + add(weightTags, tags) + add(weightDescription, s.Description)
		finish(searchDoc{server: s.Name, description: s.Description, length: n, factor: serverDocFactor})
		ctx := append(tokenize(s.Name), tokenize(tags)...) // once per server, not per tool
		for _, t := range src.tools {
			n := add(weightName, t.Name) + addTerms(weightServerCtx, ctx) +
				add(weightDescription, t.Description) + add(weightSchemaProps, schemaProperties(t.InputSchema)...)
			finish(searchDoc{server: s.Name, tool: t.Name, description: t.Description, length: n, factor: 1})
		}
	}
	if len(ix.docs) > 0 {
		ix.avgLen = float32(total / float64(len(ix.docs)))
	}
	// Turn each weighted term frequency into its BM25 impact (everything but idf and
	// the query word's weight), so that a search only multiplies and adds.
	for _, ps := range ix.postings {
		for i, p := range ps {
			d := &ix.docs[p.doc]
			norm := bm25K1 * (1 - bm25B + bm25B*d.length/ix.avgLen)
			ps[i].tf = d.factor * p.tf * (bm25K1 + 1) / (p.tf + norm)
		}
	}
	return ix
}

type queryTerm struct {
	term   string
	weight float32
}

// queryTerms tokenizes a query and adds synonyms; each distinct term keeps its highest
// weight.
func queryTerms(query string) []queryTerm {
	weights := map[string]float32{}
	var order []string
	put := func(term string, w float32) {
		if old, ok := weights[term]; !ok {
			order = append(order, term)
			weights[term] = w
		} else if w > old {
			weights[term] = w
		}
	}
	words := rawWords(query)
	meaningful := 0
	for _, raw := range words {
		if !stopWords[raw] && !queryNoise[raw] {
			meaningful++
		}
	}
	for _, raw := range words {
		if stopWords[raw] || (meaningful > 0 && queryNoise[raw]) {
			continue
		}
		put(stem(raw), 1)
		for _, syn := range synonyms[raw] {
			for _, t := range tokenize(syn) {
				put(t, weightSynonym)
			}
		}
	}
	out := make([]queryTerm, len(order))
	for i, t := range order {
		out[i] = queryTerm{t, weights[t]}
	}
	return out
}

var scorePool = sync.Pool{New: func() any { return new(scoreBuf) }}

type scoreBuf struct {
	scores  []float32
	touched []int32
}

func (ix *searchIndex) search(query string, limit int) []SearchHit {
	terms := queryTerms(query)
	if len(terms) == 0 || len(ix.docs) == 0 || limit <= 0 {
		return []SearchHit{}
	}
	buf := scorePool.Get().(*scoreBuf)
	defer scorePool.Put(buf)
	if cap(buf.scores) < len(ix.docs) {
		buf.scores = make([]float32, len(ix.docs))
	}
	scores := buf.scores[:len(ix.docs)]
	touched := buf.touched[:0]
	n := float64(len(ix.docs))
	for _, qt := range terms {
		ps := ix.postings[qt.term]
		if len(ps) == 0 {
			continue
		}
		idf := float32(math.Log(1 + (n-float64(len(ps))+0.5)/(float64(len(ps))+0.5)))
		w := qt.weight * idf
		for _, p := range ps {
			s := w * p.tf
			if scores[p.doc] == 0 {
				touched = append(touched, p.doc)
			}
			scores[p.doc] += s
		}
	}
	h := make(hitHeap, 0, limit+1)
	for _, id := range touched {
		s := scores[id]
		scores[id] = 0
		if len(h) < limit {
			heap.Push(&h, scoredDoc{id, s})
		} else if s > h[0].score || (s == h[0].score && id < h[0].doc) {
			h[0] = scoredDoc{id, s}
			heap.Fix(&h, 0)
		}
	}
	buf.touched = touched
	sort.Slice(h, func(i, j int) bool { return h.better(i, j) })
	out := make([]SearchHit, len(h))
	for i, sd := range h {
		d := ix.docs[sd.doc]
		out[i] = SearchHit{Server: d.server, Tool: d.tool, Description: d.description,
			Score: math.Round(float64(sd.score)*1000) / 1000}
	}
	return out
}

type scoredDoc struct {
	doc   int32
	score float32
}

// hitHeap is a min-heap: the worst kept hit on top. Ties go to the earlier document.
type hitHeap []scoredDoc

func (h hitHeap) better(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].doc < h[j].doc
}
func (h hitHeap) Len() int           { return len(h) }
func (h hitHeap) Less(i, j int) bool { return h.better(j, i) }
func (h hitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *hitHeap) Push(x any)        { *h = append(*h, x.(scoredDoc)) }
func (h *hitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// searchState is an App's search index and what is needed to keep it current.
type searchState struct {
	index     atomic.Pointer[searchIndex]
	dirty     atomic.Bool
	checkedAt atomic.Int64 // unix nanoseconds of the last change check
	checkCost atomic.Int64 // nanoseconds the last change check took
	mu        sync.Mutex   // one check or rebuild at a time
}

func (a *App) searchState() *searchState { return &a.search }

// invalidateSearch makes the next search check for changed servers or tools at once
// (instead of within searchRecheck). Call it after changing servers or tool lists.
func (a *App) invalidateSearch() { a.searchState().dirty.Store(true) }

// searchRecheck is how long a search may use the snapshot without checking for
// changes, given how long the last check took: small registries check on every
// search; 20,000 servers (a check of a few milliseconds) every few hundred
// milliseconds, so that checks take at most ~2% of one CPU.
func searchRecheck(lastCost time.Duration) time.Duration {
	if lastCost < 200*time.Microsecond {
		return 0
	}
	return min(50*lastCost, 5*time.Second)
}

// Search ranks the enabled servers and their tools for a natural-language query and
// returns at most limit hits, best first. It is safe for concurrent use and never
// blocks on another search.
func (a *App) Search(query string, limit int) []SearchHit {
	return a.currentSearchIndex().search(query, limit)
}

func (a *App) currentSearchIndex() *searchIndex {
	st := a.searchState()
	ix := st.index.Load()
	due := ix == nil || st.dirty.Load() ||
		time.Since(time.Unix(0, st.checkedAt.Load())) >= searchRecheck(time.Duration(st.checkCost.Load()))
	if !due {
		return ix
	}
	if ix == nil {
		st.mu.Lock() // nothing to serve yet: wait for the first build
	} else if !st.mu.TryLock() {
		return ix // another search is checking; use the current snapshot
	}
	defer st.mu.Unlock()
	start := time.Now()
	st.dirty.Store(false)
	sources := a.searchSources()
	cur := st.index.Load()
	if cur == nil || !sameSources(cur.sources, sources) {
		cur = buildSearchIndex(sources)
	} else if !identicalSources(cur.sources, sources) {
		// Same content under new pointers (a health check replaced an equal list):
		// keep the postings, remember the new sources.
		c := *cur
		c.sources = sources
		cur = &c
	}
	st.index.Store(cur)
	st.checkCost.Store(int64(time.Since(start)))
	st.checkedAt.Store(time.Now().UnixNano())
	return cur
}

func (a *App) searchSources() []searchSource {
	var out []searchSource
	for _, s := range a.ListServers() {
		if !s.Enabled {
			continue
		}
		out = append(out, searchSource{server: s, tools: a.toolsOf(s)})
	}
	return out
}

// identicalSources reports whether a and b are the very same records.
func identicalSources(a, b []searchSource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].server != b[i].server || len(a[i].tools) != len(b[i].tools) ||
			(len(a[i].tools) > 0 && &a[i].tools[0] != &b[i].tools[0]) {
			return false
		}
	}
	return true
}

// sameSources reports whether a and b index the same: the same server records and
// tool lists of equal content.
func sameSources(a, b []searchSource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.server != y.server || len(x.tools) != len(y.tools) {
			return false
		}
		if len(x.tools) == 0 || &x.tools[0] == &y.tools[0] {
			continue
		}
		for j := range x.tools {
			if x.tools[j].Name != y.tools[j].Name || x.tools[j].Description != y.tools[j].Description ||
				!bytes.Equal(x.tools[j].InputSchema, y.tools[j].InputSchema) {
				return false
			}
		}
	}
	return true
}
