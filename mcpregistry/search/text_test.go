package search

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func TestStem(t *testing.T) {
	for in, want := range map[string]string{
		"databases": "databas", "database": "databas", "queries": "query", "query": "query",
		"creates": "creat", "created": "creat", "creating": "creat", "create": "creat",
		"running": "run", "issues": "issu", "issue": "issu", "pages": "pag", "page": "pag",
		"searches": "search", "boxes": "box", "classes": "class", "status": "status",
		"analysis": "analysis", "called": "call", "copied": "copy", "logs": "log", "s3": "s3",
		"deployment": "deploy", "deployments": "deploy", "deploy": "deploy", "management": "manag",
		"manage": "manag", "comment": "comment", "document": "document", "payment": "payment",
		"documentation": "document", "configuration": "configur", "configure": "configur",
		"validation": "valid", "validate": "valid", "creation": "creation", "update": "updat",
	} {
		if got := stem(in); got != want {
			t.Errorf("stem(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokenize(t *testing.T) {
	for in, want := range map[string][]string{
		"create_pull_request":          {"creat", "pull", "request"},
		"getPodLogs":                   {"get", "pod", "log", "getpodlog"},
		"ec2.describe-instances":       {"ec2", "describ", "instanc", "describeinstanc"},
		"Find tools for the database":  {"find", "tool", "databas"},
		"page the on-call engineer":    {"pag", "call", "oncall", "engineer"},
		"S3 bucket/key, HTTPServer v2": {"s3", "bucket", "key", "httpserver", "v2"},
	} {
		if got := tokenize(in); !slices.Equal(got, want) {
			t.Errorf("tokenize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQueryTermsSynonyms(t *testing.T) {
	terms := queryTerms("k8s db")
	got := map[string]float32{}
	for _, qt := range terms {
		got[qt.term] = qt.weight
	}
	// k8s and db are abbreviations: their full forms count nearly as much as the
	// words; postgres is a synonym of db, weaker.
	if got["k8s"] != 1 || got["kubernet"] != weightAbbreviation || got["databas"] != weightAbbreviation ||
		got["postgr"] != weightSynonym {
		t.Errorf("queryTerms = %v", terms)
	}
}

type corpusFile struct {
	Servers []struct {
		Name        string           `json:"name"`
		Description string           `json:"description"`
		Tags        []string         `json:"tags"`
		Tools       []model.ToolInfo `json:"tools"`
	} `json:"servers"`
}

type labelledQuery struct {
	Query    string         `json:"query"`
	Relevant map[string]int `json:"relevant"` // "server" or "server/tool" → grade 1 or 2
}

func loadSearchCorpus(t testing.TB) []Source {
	raw, err := os.ReadFile("testdata/corpus.json")
	if err != nil {
		t.Fatal(err)
	}
	var c corpusFile
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	var src []Source
	for _, s := range c.Servers {
		src = append(src, Source{
			Server: &model.Server{Name: s.Name, Path: s.Name, Description: s.Description, Tags: s.Tags, Enabled: true},
			Tools:  s.Tools,
		})
	}
	return src
}

// TestSearchQuality measures the ranking over the labelled query set: NDCG@10 and MRR.
// The system this replaced scored NDCG@10 0.686 and MRR 0.717.
func TestSearchQuality(t *testing.T) {
	src := loadSearchCorpus(t)
	tools := 0
	for _, s := range src {
		tools += len(s.Tools)
	}
	raw, err := os.ReadFile("testdata/queries.json")
	if err != nil {
		t.Fatal(err)
	}
	var queries []labelledQuery
	if err := json.Unmarshal(raw, &queries); err != nil {
		t.Fatal(err)
	}
	if len(src) < 25 || tools < 200 || len(queries) < 30 {
		t.Fatalf("labelled set too small: %d servers, %d tools, %d queries", len(src), tools, len(queries))
	}
	ix := Build(src)
	var sumNDCG, sumRR float64
	for _, q := range queries {
		hits := ix.Search(q.Query, 10)
		var dcg, rr float64
		for i, h := range hits {
			id := h.Server
			if h.Tool != "" {
				id += "/" + h.Tool
			}
			g := q.Relevant[id]
			dcg += (math.Pow(2, float64(g)) - 1) / math.Log2(float64(i+2))
			if g > 0 && rr == 0 {
				rr = 1 / float64(i+1)
			}
		}
		var grades []int
		for _, g := range q.Relevant {
			grades = append(grades, g)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(grades)))
		var idcg float64
		for i, g := range grades[:min(10, len(grades))] {
			idcg += (math.Pow(2, float64(g)) - 1) / math.Log2(float64(i+2))
		}
		ndcg := dcg / idcg
		sumNDCG += ndcg
		sumRR += rr
		if testing.Verbose() {
			top := []string{}
			for _, h := range hits[:min(3, len(hits))] {
				top = append(top, h.Server+"/"+h.Tool)
			}
			t.Logf("ndcg %.3f rr %.2f %-40q %v", ndcg, rr, q.Query, top)
		}
	}
	ndcg, mrr := sumNDCG/float64(len(queries)), sumRR/float64(len(queries))
	t.Logf("%d queries over %d servers, %d tools: NDCG@10 %.3f, MRR %.3f", len(queries), len(src), tools, ndcg, mrr)
	// Achieved: NDCG@10 0.875, MRR 0.958 (44 queries). Thresholds sit a little below.
	const minNDCG, minMRR = 0.85, 0.95
	if ndcg < minNDCG || mrr < minMRR {
		t.Errorf("NDCG@10 %.3f, MRR %.3f; want at least %.3f, %.3f", ndcg, mrr, minNDCG, minMRR)
	}
}

func synthetic20k() []Source {
	verbs := []string{"list", "get", "create", "update", "delete", "search", "query", "run", "describe", "export"}
	nouns := []string{"issue", "pull_request", "table", "pod", "bucket", "invoice", "page", "message", "event", "incident",
		"record", "file", "deployment", "metric", "log", "ticket", "customer", "branch", "pipeline", "dashboard"}
	domains := []string{"database", "git", "chat", "cloud", "monitoring", "docs", "payments", "crm", "k8s", "tickets"}
	src := make([]Source, 0, 20000)
	for i := range 20000 {
		d := domains[i%len(domains)]
		s := &model.Server{Name: fmt.Sprintf("server-%05d-%s", i, d), Description: fmt.Sprintf("Team %d %s service for %s work", i%300, d, nouns[i%len(nouns)]),
			Tags: []string{d, fmt.Sprintf("team%d", i%300)}, Enabled: true}
		tools := make([]model.ToolInfo, 20)
		for j := range tools {
			v, n := verbs[(i+j)%len(verbs)], nouns[(i*7+j)%len(nouns)]
			tools[j] = model.ToolInfo{Name: fmt.Sprintf("%s_%s_%d", v, n, j),
				Description: fmt.Sprintf("%s a %s in the %s of team %d", v, n, d, i%300),
				InputSchema: json.RawMessage(fmt.Sprintf(`{"type":"object","properties":{"%s_id":{"type":"string"},"limit":{"type":"integer"},"project":{"type":"string"}}}`, n))}
		}
		src = append(src, Source{Server: s, Tools: tools})
	}
	return src
}

// BenchmarkSearch20k: one search over 20,000 servers × 20 tools.
func BenchmarkSearch20k(b *testing.B) {
	ix := Build(synthetic20k())
	queries := []string{"find tools for database operations", "open a pull request", "page the on-call engineer",
		"k8s pod logs", "create an invoice for a customer", "team 42 dashboard metrics"}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		ix.Search(queries[i%len(queries)], 10)
		i++
	}
}

func BenchmarkSearchBuild20k(b *testing.B) {
	src := synthetic20k()
	b.ReportAllocs()
	for b.Loop() {
		Build(src)
	}
}

func TestQueryNoiseOnlyWhenOtherWordsRemain(t *testing.T) {
	terms := func(q string) []string {
		var out []string
		for _, qt := range queryTerms(q) {
			if qt.weight == 1 {
				out = append(out, qt.term)
			}
		}
		return out
	}
	if got := terms("search"); len(got) != 1 || got[0] != stem("search") {
		t.Errorf(`"search" alone must still search: %v`, got)
	}
	if got := terms("tools"); len(got) != 1 {
		t.Errorf(`"tools" alone must still search: %v`, got)
	}
	if got := terms("find tools for database operations"); strings.Join(got, ",") != stem("database")+","+stem("operations") {
		t.Errorf("asking words must be dropped, or weakened, when the query has others: %v", got)
	}
	for _, qt := range queryTerms("find tools for database operations") {
		if qt.term == "find" && qt.weight != weightIntent {
			t.Errorf("find: weight %v, want %v (an intent word among others)", qt.weight, weightIntent)
		}
		if qt.term == "tool" {
			t.Errorf("tools is noise among other words: %v", queryTerms("find tools for database operations"))
		}
	}
	if got := tokenize("search_repositories"); len(got) != 2 || got[0] != stem("search") {
		t.Errorf("documents keep the word search: %v", got)
	}
}

func primaryTerms(q string) []string {
	var out []string
	for _, qt := range queryTerms(q) {
		if qt.primary {
			out = append(out, qt.term)
		}
	}
	return out
}

// TestQueryWords: grammatical words and meaningless short words go, words of intent
// and of the person asking stay.
func TestQueryWords(t *testing.T) {
	for q, want := range map[string]string{
		"who am I logged in as":            "who,me,log",
		"what can you do with my calendar": "me,calendar",
		"search the web":                   "search,web",
		"find":                             "find",
		"upload to s3 in us-east-1":        "upload,s3,useast1", // east and 1 only stand for us-east-1
		"ok go to the pr":                  "go,pr",
		"team 42 dashboard":                "team,42,dashboard",
	} {
		if got := strings.Join(primaryTerms(q), ","); got != want {
			t.Errorf("%q: query words %s, want %s", q, got, want)
		}
	}
	if got, n := tokenizeName("who_am_i"); strings.Join(got, ",") != "who,am,i" || n != 3 {
		t.Errorf("names keep every word: %v (%d words)", got, n)
	}
	// A camelCase compound also yields its joined form, which is not a word more.
	if got, n := tokenizeName("getMe"); strings.Join(got, ",") != "get,me,getm" || n != 2 {
		t.Errorf("names keep every word: %v (%d words)", got, n)
	}
}

// TestWordNetTable: the embedded table loads and relates what WordNet relates.
func TestWordNetTable(t *testing.T) {
	cn := concepts()
	if len(cn.concepts) < 10000 {
		t.Fatalf("%d concepts: the table is truncated", len(cn.concepts))
	}
	for _, pair := range [][2]string{
		{"vulnerability", "exposure"}, {"refund", "repayment"}, {"remember", "recall"},
		{"search", "seek"}, {"vulnerable", "vulnerability"}, {"refunds", "repay"},
		{"give_back", "refund"}, {"directions", "way"},
	} {
		c, ok := cn.lookup(pair[0])
		if !ok || !slices.Contains(c.synonyms, stem(pair[1])) {
			t.Errorf("%s: %v, want the synonym %s", pair[0], c, pair[1])
		}
	}
	if c, ok := cn.lookup("refund"); !ok || !slices.Contains(c.broader, "payment") {
		t.Errorf("refund: %v, want the broader payment", c)
	}
	if cn.inflection["ran"] != "run" || cn.inflection["children"] != "child" {
		t.Errorf("irregular forms: ran → %q, children → %q", cn.inflection["ran"], cn.inflection["children"])
	}
	if _, err := parseConcepts([]byte("not gzip")); err == nil {
		t.Error("a corrupt table parsed")
	}
	var weights []float32
	for _, qt := range queryTerms("vulnerability") {
		if qt.term == "exposur" {
			weights = append(weights, qt.weight)
		}
	}
	if len(weights) != 1 || weights[0] != weightConcept {
		t.Errorf("vulnerability expands to exposure at %v, want %v", weights, weightConcept)
	}
}

// TestIncidentalNameWordLoses: a tool sharing one word of the query by chance (in its
// name) ranks below one answering most of the query; and a paraphrase reaches a tool
// through WordNet.
func TestIncidentalNameWordLoses(t *testing.T) {
	tool := func(name, desc string) model.ToolInfo { return model.ToolInfo{Name: name, Description: desc} }
	src := sortedSources([]Source{
		{Server: &model.Server{Name: "browser", Enabled: true}, Tools: []model.ToolInfo{
			tool("navigate_back", "Go back to the previous page"), tool("navigate", "Open a URL")}},
		{Server: &model.Server{Name: "payments", Enabled: true}, Tools: []model.ToolInfo{
			tool("create_refund", "Refund money to a customer's card for a charge"), tool("list_charges", "List charges"),
			tool("get_customer", "Get a customer"), tool("list_customers", "List customers"),
			tool("update_customer", "Update a customer"), tool("get_balance", "Money in the account")}},
		{Server: &model.Server{Name: "scanner", Enabled: true}, Tools: []model.ToolInfo{
			tool("list_exposures", "List known exposures of a project's packages"), tool("scan", "Scan a project")}},
	})
	ix := Build(src)
	top := func(q string) string {
		hits := ix.Search(q, 3)
		if len(hits) == 0 {
			return ""
		}
		return hits[0].Server + "/" + hits[0].Tool
	}
	if got := top("send the money back to the customer's card"); got != "payments/create_refund" {
		t.Errorf("money back to the customer: top hit %s", got)
	}
	if got := top("vulnerabilities in my dependencies"); got != "scanner/list_exposures" {
		t.Errorf("vulnerabilities: top hit %s", got)
	}
}

// TestCoverageFactor: of two hits with the same BM25 score, the one answering more of
// the query's words wins, an expansion answers in part, and a name the query names
// lifts a hit only as far as the hit answers the query.
func TestCoverageFactor(t *testing.T) {
	var c coverage
	for g := range 3 {
		c.primary[g], c.expansion[g] = 2, 0.5 // three query words found in the index
	}
	c.expansion[2] = 0.6
	c.normalize()
	const p0, p1, p2 = 1, 2, 4 // primary bits of groups 0, 1, 2
	e2 := uint64(4) << maxGroups
	name := func(m uint64) uint64 { return m << nameShift }
	one, all := c.factor(p0, 0), c.factor(p0|p1|p2, 0)
	if !(one < all) || all != 1 {
		t.Errorf("one word of three %v, all three %v", one, all)
	}
	if part := c.factor(p0|p1|e2, 0); !(part < all && part > c.factor(p0|p1, 0)) {
		t.Errorf("an expansion answers in part: %v", part)
	}
	// A one-word name that is one query word: lifted, but less than a hit answering
	// the whole query without its name.
	if lifted := c.factor(p0|name(p0), 1); !(lifted > one && lifted < all) {
		t.Errorf("incidental name word: %v (one word %v, all %v)", lifted, one, all)
	}
	if named := c.factor(p0|p1|p2|name(p0|p1), 0.5); !(named > all) {
		t.Errorf("a name made of query words: %v, want above %v", named, all)
	}
	// Two names with the same query words: the one taking the query's first word as
	// its action wins (list_containers against run_container for "list running
	// docker containers").
	both := p0 | p1 | p2 | name(p0|p1)
	if verb, other := c.factor(both|p0<<verbShift, 0.5), c.factor(both, 0.5); !(verb > other) {
		t.Errorf("the name's verb is the query's: %v, want above %v", verb, other)
	}
}

// TestNameVerb: a tool name's verb is its first word after its server's own.
func TestNameVerb(t *testing.T) {
	server := map[string]bool{"todoist": true, "google": true, "map": true}
	for name, want := range map[string]string{
		"todoist_create_task": "creat", "maps_directions": "direction", "list_containers": "list",
		"ExecuteQuery": "execut", "delete-feature-flag": "delet", "todoist": "",
	} {
		if got := nameVerb(name, server); got != want {
			t.Errorf("nameVerb(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestFirstSentence(t *testing.T) {
	for in, want := range map[string][2]string{
		"Run an image. Prefer it over create_container.": {"Run an image.", " Prefer it over create_container."},
		"List v1.2 releases":                             {"List v1.2 releases", ""},
		"Get a file\nArgs: path":                         {"Get a file", "\nArgs: path"},
		"Ends here.":                                     {"Ends here.", ""},
	} {
		if f, r := firstSentence(in); f != want[0] || r != want[1] {
			t.Errorf("firstSentence(%q) = %q, %q; want %q, %q", in, f, r, want[0], want[1])
		}
	}
}

func TestAsksToRead(t *testing.T) {
	for q, want := range map[string]bool{
		"what's due today on my todo list": true,
		"which pods eat the most memory":   true,
		"who deleted the s3 bucket":        false, // about a deletion
		"how do I create a bucket":         false,
		"create a bucket":                  false,
		"list my tasks":                    false, // not a question: the verb lift decides
		"":                                 false,
	} {
		if got := asksToRead(q); got != want {
			t.Errorf("asksToRead(%q) = %v, want %v", q, got, want)
		}
	}
}
