package search

import (
	"encoding/json"
	"sort"
	"strings"
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
// The index (index.go) is split by server: each enabled server's documents form
// an immutable segment, and segments are grouped into a fixed number of shards by a
// hash of the server's name, each shard with its own inverted index. A change to one
// server rebuilds that server's segment and merges its shard again (a millisecond or
// two at 20,000 servers) instead of the whole index. The global BM25 statistics
// (document count, document frequencies, average length) are not stored in the
// postings but computed at query time from the shards, so they are always exact and
// the ranking is the same as that of an index built at once.
//
// A shard holds its segments' documents and postings once; a segment keeps only its
// source once merged, and a shard rebuilt for a change copies the postings of its
// unchanged servers from the shard it replaces.
//
// An App builds its index in the background when it starts and keeps it current
// (the registry app's search.go); searches load an immutable snapshot with an atomic pointer and
// never wait for the background worker's periodic comparison or precomputation,
// only for changes announced with invalidateSearch that are not yet applied (a
// write is seen by the next search), for the first build, and for their turn to
// score: at most GOMAXPROCS searches score at once, first come first served
// (searchSlot), which keeps the latency of a loaded server fair.

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
