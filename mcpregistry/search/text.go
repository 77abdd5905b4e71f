package search

import (
	"encoding/json"
	"slices"
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
//     found by its own name (split on _-./ and camelCase, normalised by its length),
//     its description (the first sentence counting most), the server's name and
//     tags, and the property names of its input schema, each with its own weight;
//   - no new dependency (bleve alone pulls in dozens of modules).
//
// Documents are each enabled server (name, tags, description) and each of its tools.
// Text is lowercased, split on non-alphanumerics and camelCase and lightly stemmed
// (plural s/es/ies, ing, ed, ment, ation, ate, final e) — the same on both sides. Grammatical stop
// words are dropped from descriptions but never from names (get_me keeps "me").
//
// A query loses its grammatical and asking words and its meaningless one- or
// two-letter words, keeps words of intent (find, search: weakened among others) and
// of the person asking (i, me, my → me, current, authenticated), and each remaining
// word brings weaker expansions: a small table of the field's abbreviations (db, k8s,
// pr …) and the WordNet concepts of the word (synonyms and derived forms, one level
// of broader words; wordnet.go). A hit's BM25F score is then multiplied by the share
// of the query's words it answers (an expansion answering in part) and lifted by how
// well its name matches the query (coverage.factor), so that a single word shared by
// chance ("back" in navigate_back for "get my money back") does not win; a name whose
// verb (its first word after the server's own) is the query's first word, the action
// asked for, is lifted again (list_containers for "list running docker containers").
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
// property names least. Tuned on the train half of testdata/eval only.
const (
	weightName        = 2.0
	weightTags        = 2.0
	weightServerCtx   = 1.0 // a tool's server name and tags
	weightDescription = 1.0
	// weightDescriptionRest is for a description after its first sentence: details,
	// caveats and other tools' names ("preferred over create_container").
	weightDescriptionRest = 0.3
	weightSchemaProps     = 0.5
	// A name's words count weightName/(1 - nameB + nameB*words/typicalNameWords):
	// BM25F's length normalisation of the name field, against a fixed typical length
	// so that a document's postings never depend on the rest of the corpus.
	nameB            = 0.5
	typicalNameWords = 3

	weightSynonym = 0.35 // a word of the synonyms table counts this much of the query word
	// weightAbbreviation is what the full form of an abbreviation counts (ns →
	// namespace): the same word written out, so nearly the word itself.
	weightAbbreviation = 0.8
	weightConcept      = 0.3  // a WordNet synonym or derived form of a query word
	weightBroader      = 0.15 // a WordNet hypernym (one level up) of a query word
	weightIntent       = 0.6  // a word of asking that may also name a tool ("find", "search")
	weightPart         = 0.5  // a part of a compound query word (sync in AppSync)

	// coverageFloor is what a hit answering none of the query's words but one
	// expansion keeps of its score (coverage.factor); nameBoost is what a hit whose
	// whole name the query names gains.
	coverageFloor = 0.2
	nameBoost     = 2.0
	// verbBoost is what a hit whose name takes the action the query asks for (its
	// first word) gains.
	verbBoost = 0.5
	// A query word is a product's name when at least productShare of the documents
	// holding it are the tools of servers it names; then a hit from any other server
	// keeps offProductFactor of its score.
	productShare     = 0.75
	offProductFactor = 0.7
	// askWriteFactor is what a tool that changes something keeps of its score for a
	// question (asksToRead).
	askWriteFactor = 0.6
	// serverShare is the part of its server's score a tool adds to its own.
	serverShare = 0.3

	bm25K1 = 1.2
	bm25B  = 0.5
)

const (
	// maxConcepts and maxBroader bound the WordNet terms of one query word.
	maxConcepts = 6
	maxBroader  = 2
	// An expansion term in more than maxExpansionShare of the documents (and more
	// than minExpansionCut of them) adds nothing a user would notice but costs a scan
	// of its postings, so it is left out.
	maxExpansionShare = 0.02
	minExpansionCut   = 1000
	// serverDocFactor lowers whole servers slightly against their tools: people
	// mostly look for a tool to call.
	serverDocFactor = 0.8
)

// stopWords are grammatical words, dropped from descriptions and queries alike (never
// from names: a tool called get_me or who_am_i keeps every word).
var stopWords = toSet(`a an the to of for and or with in on at by from into onto as is are was
	were be been being it its this that these those via than then there their them they he she
	his her we our us you your i`)

// queryStopWords are words of asking, dropped from queries only (on top of stopWords):
// they say how a person asks, not what for.
var queryStopWords = toSet(`what whats which how do does did can could would should will shall
	may might must am have has had some any something anything thing things way ways also just
	so very really about please`)

// queryNoise are words of asking ("find tools to …") dropped from queries only, and only
// when the query has other words: a query that is just "search" or "tools" still searches.
var queryNoise = toSet(`want wants need needs tool tools let lets using use`)

// intentWords ask to find something, and are tool names too (search_code, find_files):
// kept, at weightIntent, so that they decide only between otherwise equal hits.
var intentWords = toSet(`find search look lookup locate`)

// selfWords name the person asking: tools say "me", "current user" or "authenticated
// user" (get_me, get_current_user, whoami).
var (
	selfWords = map[string]float32{"i": 1, "me": 1, "myself": 1, "my": 0.5, "mine": 0.5}
	selfTerms = []string{"current", "authenticated", "whoami"}
)

// weightSelfAside is what a self word counts when the query is not about the person
// asking (see asksAboutSelf).
const weightSelfAside = 0.25

// shortTerms are words of one or two letters that mean something in a query; any other
// (am, ok, 's, …) is noise. Words with a digit (s3, v2, 42) are always kept.
var shortTerms = toSet(`db pr mr ci cd vm ai ml id ip ui ux os qa go js ts py gh io k8 tf
	ns pg ff dm ps ls rm mv cp tz`)

// abbreviations are the common short forms of developers' words and commands, each with
// its full form: a query word found here also stands for its full form (counting
// weightAbbreviation) and that form's WordNet concepts.
var abbreviations = map[string]string{
	"prs": "pull requests", "mrs": "merge requests", "gh": "github", "tf": "terraform",
	"k8s": "kubernetes", "kube": "kubernetes", "ns": "namespace", "pg": "postgres",
	"ff": "feature flag", "dm": "direct message", "dms": "direct messages",
	"repo": "repository", "repos": "repositories", "env": "environment", "envs": "environments",
	"prod": "production", "dev": "development", "cfg": "configuration", "config": "configuration",
	"msg": "message", "msgs": "messages", "cert": "certificate", "certs": "certificates",
	"dep": "dependency", "deps": "dependencies", "vuln": "vulnerability", "vulns": "vulnerabilities",
	"img": "image", "dir": "directory", "dirs": "directories", "pkg": "package", "pkgs": "packages",
	"lat": "latitude", "lng": "longitude", "lon": "longitude", "addr": "address", "tz": "timezone",
	"sev": "severity", "auth": "authentication", "creds": "credentials", "perms": "permissions",
	"stats": "statistics", "info": "information", "txn": "transaction", "txns": "transactions",
	"ps": "list processes", "ls": "list", "rm": "remove", "mv": "move", "cp": "copy",
	"mkdir": "create directory", "cat": "read file", "grep": "search", "md": "markdown",
	"tmpl": "template", "doc": "document", "docs": "documentation",
	"db": "database", "dbs": "databases", "k8": "kubernetes",
}

// synonyms expands a query word (before stemming) into the abbreviations, products
// and vocabulary of developer tools that WordNet does not know (db, k8s, pr, s3 …).
// Each word is looked up alone; expansions count weightSynonym of the word.
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

// tokenizeName is tokenize for names: every word is kept (get_me, who_am_i). words is
// the number of the name's own words, not counting the joined forms of compounds
// (getMe → get, me and getme: two words).
func tokenizeName(s string) (terms []string, words int) {
	terms, parts := splitWords(s)
	for i, w := range terms {
		terms[i] = stem(w)
		if parts[i] == 0 {
			words++
		}
	}
	return terms, words
}

// rawWords is tokenize without stop words and stemming.
func rawWords(s string) []string {
	words, _ := splitWords(s)
	return words
}

// splitWords splits s into lowercase words on anything not a letter or digit and on
// lower→upper case changes. A compound — hyphenated ("on-call") or camelCase
// ("GraphQL", "AppSync") — yields its parts and then its joined form (oncall, graphql,
// appsync), so that it meets the same product written as one word elsewhere; parts[i]
// is the number of parts words[i] joins (0 for a word of its own), which are the
// words just before it.
func splitWords(s string) (words []string, parts []int) {
	var cur []rune
	var joined []rune // the current compound, letters and digits only
	n := 0            // its parts so far
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			parts = append(parts, 0)
			joined = append(joined, cur...)
			cur = cur[:0]
			n++
		}
	}
	endChunk := func() {
		flush()
		if n > 1 {
			words = append(words, string(joined))
			parts = append(parts, n)
		}
		joined, n = joined[:0], 0
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
		default:
			endChunk()
		}
		prev = r
	}
	endChunk()
	return words, parts
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
	// deployment → deploy, management → manage (then manag): a noun of action meets
	// its verb. Short stems (comment, document, payment) keep the suffix.
	if strings.HasSuffix(w, "ment") && len(w) >= 9 {
		w = w[:len(w)-4]
	}
	// documentation → document, configuration and configure → configur,
	// validation and validate → valid.
	switch {
	case strings.HasSuffix(w, "ation") && len(w) >= 10:
		w = w[:len(w)-5]
	case strings.HasSuffix(w, "ate") && len(w) >= 8:
		w = w[:len(w)-3]
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
	// group is the query word the term stands for (its own word or an expansion of
	// it), for coverage: a hit is worth more the more of the query's words it answers.
	group   uint8
	primary bool // the query word itself, not an expansion
}

// maxGroups bounds the query words told apart for coverage (a quarter of the bits of
// a uint32, see coverage.factor); further words share the last group.
const maxGroups = 8

// queryTerms tokenizes a query into weighted terms: its words (stop words, noise and
// meaningless short words dropped), their synonyms and WordNet concepts. Each distinct
// term keeps its highest weight.
func queryTerms(query string) []queryTerm { return queryTermsKnown(query, nil) }

// queryTermsKnown is queryTerms with the misspelt words corrected against the terms
// of the index, docs giving each one's document frequency (correctSpelling); nil
// corrects none.
func queryTermsKnown(query string, docs func(string) int) []queryTerm {
	idx := map[string]int{}
	var out []queryTerm
	put := func(term string, w float32, g int, primary bool) {
		if term == "" {
			return
		}
		if i, ok := idx[term]; ok {
			if w > out[i].weight {
				out[i] = queryTerm{term, w, uint8(g), primary}
			}
			return
		}
		idx[term] = len(out)
		out = append(out, queryTerm{term, w, uint8(g), primary})
	}
	words, parts := splitWords(query)
	keep := make([]bool, len(words))
	// compound[i] is the joined form the part words[i] belongs to, or -1.
	compound := make([]int, len(words))
	for i := range compound {
		compound[i] = -1
	}
	for i, n := range parts {
		for j := i - n; j < i; j++ {
			compound[j] = i
		}
	}
	for i, w := range words {
		if parts[i] == 0 && compound[i] < 0 {
			words[i] = correctSpelling(w, docs)
		}
	}
	meaningful := 0
	for i, raw := range words {
		_, self := selfWords[raw]
		keep[i] = self || !(stopWords[raw] || queryStopWords[raw] ||
			(len(raw) <= 2 && !shortTerms[raw] && !hasDigit(raw)))
		if keep[i] && !queryNoise[raw] && compound[i] < 0 {
			meaningful++
		}
	}
	groups := map[string]int{}
	groupOf := func(raw string) int {
		g, ok := groups[raw]
		if !ok {
			g = min(len(groups), maxGroups-1)
			groups[raw] = g
		}
		return g
	}
	cn := concepts()
	expand := func(c concept, g int) {
		for _, t := range c.synonyms[:min(len(c.synonyms), maxConcepts)] {
			put(t, weightConcept, g, false)
		}
		for _, t := range c.broader[:min(len(c.broader), maxBroader)] {
			put(t, weightBroader, g, false)
		}
	}
	for i, raw := range words {
		// Two-word collocations ("pay back", "log in", "look up") mean more than
		// their words.
		if i+1 < len(words) && (keep[i] || keep[i+1]) {
			if c, ok := cn.lookup(words[i] + "_" + words[i+1]); ok {
				first := words[i]
				if !keep[i] {
					first = words[i+1]
				}
				expand(c, groupOf(first))
			}
		}
		if !keep[i] || (meaningful > 0 && queryNoise[raw]) {
			continue
		}
		if j := compound[i]; j >= 0 {
			// A part of a compound stands for the compound: "AppSync" is one word
			// of the query, answered in full by appsync and in part by app or sync.
			put(stem(raw), weightPart, groupOf(words[j]), false)
			continue
		}
		g := groupOf(raw)
		if w, ok := selfWords[raw]; ok {
			if !asksAboutSelf(words, keep, i) {
				w *= weightSelfAside
			}
			put("me", w, g, true)
			for _, t := range selfTerms {
				put(t, w*weightConcept, g, false)
			}
			continue
		}
		w := float32(1)
		if intentWords[raw] && meaningful > 1 {
			w = weightIntent
		}
		put(stem(raw), w, g, true)
		if full, ok := abbreviations[raw]; ok {
			for _, fw := range rawWords(full) {
				put(stem(fw), weightAbbreviation, g, false)
				if c, ok := cn.lookup(fw); ok {
					expand(c, g)
				}
			}
		}
		for _, syn := range synonyms[raw] {
			for _, t := range tokenize(syn) {
				put(t, weightSynonym, g, false)
			}
		}
		if intentWords[raw] {
			continue // their WordNet senses (happen, chance, bump …) are not about finding tools
		}
		if c, ok := cn.lookup(raw); ok {
			expand(c, g)
		}
	}
	return out
}

// asksAboutSelf reports whether the self word at i is what the query is about: a
// question of who ("who am I logged in as") or the end of the query ("assign the
// issue to me"); else it is an aside ("get me code examples", "list my repos").
func asksAboutSelf(words []string, keep []bool, i int) bool {
	if slices.Contains(words, "who") || slices.Contains(words, "whoami") {
		return true
	}
	for _, k := range keep[i+1:] {
		if k {
			return false
		}
	}
	return true
}

func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

// questionWords open a question: a query starting with one asks to be told something.
var questionWords = toSet(`what whats which who whos where when how is are was were did does
	do has have any why`)

// writeVerbs are the actions of tools that change something (stemmed, as nameVerb
// gives a name's verb).
var writeVerbs = stemSet(`create add delete remove update set put write edit modify move rename
	post send cancel merge close deploy start stop restart run execute trigger upload insert
	append assign transition approve reply invite scale apply install uninstall drop clear reset
	enable disable toggle push publish import make submit resolve archive mark star fork lock
	unlock commit rollback revert tag label replace patch upsert store save`)

func stemSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[stem(w)] = true
	}
	return m
}

// asksToRead reports whether query is a question ("what's due today on my todo
// list", "which pods eat the most memory") that names no action changing something:
// a tool that reads (get, list, search) answers it, and one that creates, updates or
// deletes is lowered (askWriteFactor) even when its name shares the query's nouns.
// "who deleted the bucket" names one, and is about it.
func asksToRead(query string) bool {
	words := rawWords(query)
	if len(words) == 0 || !questionWords[words[0]] {
		return false
	}
	for _, w := range words[1:] {
		if writeVerbs[stem(w)] {
			return false
		}
	}
	return true
}
