package search

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"sort"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// The evaluation set of testdata/eval (see its README): a catalog of real public
// MCP servers and graded queries split into a train half, which a ranker may be
// tuned on, and a held-out half, which is frozen and only ever reported in aggregate.

const (
	evalDir     = "testdata/eval"
	evalTopK    = 10
	evalMinRank = 2 // the grade a tool needs to count for MRR and for "a relevant tool was found"
	// Floors on the held-out half (lexical ranking alone). Issue 12 asks NDCG@10 ≥ 0.75
	// (met: 0.772) and MRR ≥ 0.80, which is not met: the ranker tuned on the train
	// half reaches 0.789 (0.792 before that tuning). The MRR floor guards what is
	// reached until a ranker reaches the target; raise it then, never lower it.
	evalMinNDCG = 0.75
	evalMinMRR  = 0.78
)

type evalCatalog struct {
	Servers []evalServer `json:"servers"`
}

type evalServer struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Source      struct {
		Repo   string `json:"repo"`
		Path   string `json:"path"`
		Commit string `json:"commit"`
	} `json:"source"`
	Tools []model.ToolInfo `json:"tools"`
}

type evalQuery struct {
	Query    string         `json:"query"`
	Relevant map[string]int `json:"relevant"` // "server/tool" → grade 1..3; unlisted tools are grade 0
}

// evalScore is one query's result: NDCG@k with gain 2^g−1, the reciprocal rank of
// the first tool graded at least evalMinRank (0 if none is in the ranking), and
// whether any tool graded at least evalMinRank was returned at all.
type evalScore struct {
	NDCG, RR float64
	Found    bool
}

// scoreRanking scores a ranked list of tool ids ("server/tool", best first, server
// hits already removed) against graded relevance, looking at the first k.
func scoreRanking(ranked []string, relevant map[string]int, k int) evalScore {
	var s evalScore
	var dcg float64
	for i, id := range ranked {
		g := relevant[id]
		if i < k {
			dcg += (math.Pow(2, float64(g)) - 1) / math.Log2(float64(i+2))
		}
		if g >= evalMinRank {
			s.Found = true
			if s.RR == 0 {
				s.RR = 1 / float64(i+1)
			}
		}
	}
	grades := make([]int, 0, len(relevant))
	for _, g := range relevant {
		grades = append(grades, g)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(grades)))
	var idcg float64
	for i, g := range grades[:min(k, len(grades))] {
		idcg += (math.Pow(2, float64(g)) - 1) / math.Log2(float64(i+2))
	}
	if idcg > 0 {
		s.NDCG = dcg / idcg
	}
	return s
}

func TestScoreRanking(t *testing.T) {
	rel := map[string]int{"a/x": 3, "b/y": 2, "c/z": 1}
	// Ranking: c/z (1), miss, a/x (3). DCG = 1/log2(2) + 0 + 7/log2(4) = 1 + 3.5 = 4.5.
	// Ideal: 3, 2, 1 → 7/1 + 3/log2(3) + 1/2 = 7 + 1.892789 + 0.5 = 9.392789.
	got := scoreRanking([]string{"c/z", "d/w", "a/x"}, rel, 10)
	if want := 4.5 / (7 + 3/math.Log2(3) + 0.5); math.Abs(got.NDCG-want) > 1e-9 {
		t.Errorf("NDCG = %v, want %v", got.NDCG, want)
	}
	if got.RR != 1.0/3 || !got.Found { // c/z is graded 1, below evalMinRank
		t.Errorf("RR = %v, Found = %v; want 1/3, true", got.RR, got.Found)
	}
	// A relevant tool beyond k counts for RR and Found but not for NDCG@k.
	got = scoreRanking([]string{"d/w", "b/y"}, rel, 1)
	if got.NDCG != 0 || got.RR != 0.5 || !got.Found {
		t.Errorf("k=1: %+v, want NDCG 0, RR 0.5, Found", got)
	}
	got = scoreRanking(nil, rel, 10)
	if got != (evalScore{}) {
		t.Errorf("empty ranking: %+v", got)
	}
	if got := scoreRanking([]string{"a/x", "b/y", "c/z"}, rel, 10); math.Abs(got.NDCG-1) > 1e-12 || got.RR != 1 {
		t.Errorf("ideal ranking: %+v", got)
	}
}

func readEvalJSON(t *testing.T, name string, v any) []byte {
	t.Helper()
	raw, err := os.ReadFile(evalDir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return raw
}

// evalSets are the query files of testdata/eval, by name without ".json": the
// train and held-out halves of the first round, split by evalHalf, a second
// held-out set written later by someone who saw neither the ranker nor the first
// round's queries, and a second train set written the same way (see the README).
var evalSets = []string{"train", "heldout", "heldout2", "train2"}

// evalTrainSets are the sets a ranker may be tuned on, with the label each is
// reported under. Only these get per-query lines: the others are held out.
var evalTrainSets = map[string]string{"train": "train", "train2": "train 2"}

// evalSplit is the evalHalf of each set that is one half of the hashed split.
var evalSplit = map[string]int{"train": 0, "heldout": 1}

// evalHalf is the half a query belongs to: the low bit of the first byte of the
// SHA-256 of its text (0 train, 1 held-out).
func evalHalf(query string) int {
	sum := sha256.Sum256([]byte(query))
	return int(sum[0] & 1)
}

func checkEvalData(t *testing.T, cat evalCatalog, sets map[string][]evalQuery) {
	t.Helper()
	ids := map[string]bool{}
	tools := 0
	for _, s := range cat.Servers {
		if s.Name == "" || s.Source.Repo == "" || s.Source.Path == "" || len(s.Tools) == 0 {
			t.Errorf("server %q: needs a name, a source repo and path, and tools", s.Name)
		}
		for _, tool := range s.Tools {
			id := s.Name + "/" + tool.Name
			if ids[id] {
				t.Errorf("tool %s listed twice", id)
			}
			ids[id] = true
			tools++
		}
	}
	if len(cat.Servers) < 80 {
		t.Errorf("catalog has %d servers, want at least 80", len(cat.Servers))
	}
	seen := map[string]string{}
	split := 0
	for set, qs := range sets {
		if len(qs) == 0 {
			t.Errorf("query set %s has no queries", set)
		}
		want, hashed := evalSplit[set]
		if hashed {
			split += len(qs)
		}
		for _, q := range qs {
			if q.Query == "" {
				t.Errorf("query set %s has an empty query", set)
			}
			if prev, dup := seen[q.Query]; dup {
				t.Errorf("query %q appears twice (%s and %s)", q.Query, prev, set)
			}
			seen[q.Query] = set
			if hashed && evalHalf(q.Query) != want {
				t.Errorf("query %q is in %s, but its hash puts it in the other half", q.Query, set)
			}
			good := false
			for id, g := range q.Relevant {
				if g < 0 || g > 3 {
					t.Errorf("query %q: %s has grade %d, want 0..3", q.Query, id, g)
				}
				if !ids[id] {
					t.Errorf("query %q: graded tool %s is not in the catalog", q.Query, id)
				}
				good = good || g >= evalMinRank
			}
			if !good {
				t.Errorf("query %q has no tool graded %d or more", q.Query, evalMinRank)
			}
		}
	}
	if split < 200 {
		t.Errorf("%d queries in train and held-out, want at least 200", split)
	}
}

func evalSources(cat evalCatalog) []Source {
	src := make([]Source, 0, len(cat.Servers))
	for _, s := range cat.Servers {
		src = append(src, Source{
			Server: &model.Server{Name: s.Name, Path: s.Name, Description: s.Description, Enabled: true},
			Tools:  s.Tools,
		})
	}
	return src
}

// TestSearchEval reports the ranking's quality on each query set and on both
// held-out sets together. Per-query lines (SEARCH_EVAL_VERBOSE=1 with -v) are
// printed for the train sets only (evalTrainSets): the held-out sets are
// reported in aggregate, never query by query.
func TestSearchEval(t *testing.T) {
	var cat evalCatalog
	readEvalJSON(t, "catalog.json", &cat)
	sets := map[string][]evalQuery{}
	for _, set := range evalSets {
		var qs []evalQuery
		readEvalJSON(t, set+".json", &qs)
		sets[set] = qs
	}
	checkEvalData(t, cat, sets)
	if t.Failed() {
		return
	}
	tools := 0
	for _, s := range cat.Servers {
		tools += len(s.Tools)
	}
	ix := Build(evalSources(cat))
	verbose := testing.Verbose() && os.Getenv("SEARCH_EVAL_VERBOSE") == "1"
	results := map[string][]evalResult{}
	for _, set := range evalSets {
		for _, q := range sets[set] {
			r := runEvalQuery(ix, q, len(cat.Servers))
			results[set] = append(results[set], r)
			if label, train := evalTrainSets[set]; verbose && train {
				t.Logf("%s ndcg %.3f rr %.2f %-55q %v", label, r.NDCG, r.RR, q.Query, r.top[:min(3, len(r.top))])
			}
		}
	}
	report := func(label string, rs []evalResult) evalSummary {
		sum := summarize(rs)
		t.Logf("%-16s %3d queries over %d servers, %d tools: NDCG@%d %.3f, MRR %.3f, %d with no relevant tool, %d with no tool at all",
			label, len(rs), len(cat.Servers), tools, evalTopK, sum.NDCG, sum.MRR, sum.empty, sum.nothing)
		return sum
	}
	report(evalTrainSets["train"], results["train"])
	report(evalTrainSets["train2"], results["train2"])
	heldout := report("held-out", results["heldout"])
	report("held-out 2", results["heldout2"])
	report("held-out 1+2", append(append([]evalResult(nil), results["heldout"]...), results["heldout2"]...))
	// Floors for lexical ranking alone on the first held-out half, checked in
	// aggregate only (see evalMinMRR). The second held-out set has no floor: it
	// measures, it is not a target.
	if heldout.NDCG < evalMinNDCG || heldout.MRR < evalMinMRR || heldout.nothing > 0 {
		t.Errorf("held-out: NDCG@%d %.3f, MRR %.3f, %d queries with no tool at all; want at least %.2f, %.2f and none",
			evalTopK, heldout.NDCG, heldout.MRR, heldout.nothing, evalMinNDCG, evalMinMRR)
	}
}

// evalResult is one query's score and whether the search returned any tool at all.
type evalResult struct {
	evalScore
	noTools bool
	top     []string // the ranked tool ids scored, best first
}

// runEvalQuery searches for q and scores its top evalTopK tool hits. It asks for
// enough hits that server hits, which are skipped, cannot crowd the tool hits out
// of the top evalTopK.
func runEvalQuery(ix *Index, q evalQuery, servers int) evalResult {
	var ranked []string
	for _, h := range ix.Search(q.Query, evalTopK+servers) {
		if h.Tool != "" {
			ranked = append(ranked, h.Server+"/"+h.Tool)
		}
	}
	ranked = ranked[:min(evalTopK, len(ranked))]
	return evalResult{evalScore: scoreRanking(ranked, q.Relevant, evalTopK), noTools: len(ranked) == 0, top: ranked}
}

// evalSummary aggregates a set of results: mean NDCG@k, MRR, the number of queries
// with no tool graded at least evalMinRank among the hits, and with no tool at all.
type evalSummary struct {
	NDCG, MRR      float64
	empty, nothing int
}

func summarize(rs []evalResult) evalSummary {
	var s evalSummary
	for _, r := range rs {
		s.NDCG += r.NDCG
		s.MRR += r.RR
		if !r.Found {
			s.empty++
		}
		if r.noTools {
			s.nothing++
		}
	}
	if n := float64(len(rs)); n > 0 {
		s.NDCG /= n
		s.MRR /= n
	}
	return s
}

// The held-out sets and the catalog are frozen: a ranker is tuned on train.json
// only, and its held-out figures mean something only while these files stay as
// they were when the queries were graded.
const (
	evalHeldoutSHA256  = "9de4591a40ed24c098e0a9984ea96c528be167931163f190e6f76cf65384005c"
	evalHeldout2SHA256 = "696c872490f7a19489bcc13d169e12aa9d031f281a38b1d2254283f317052ff6"
	evalCatalogSHA256  = "3c940764e6b743f5d8c1854bd9ef1a26017d0c725dcff601e8fe1db03aa7e327"
)

func TestEvalFrozen(t *testing.T) {
	for _, f := range []struct{ name, want string }{
		{"heldout.json", evalHeldoutSHA256},
		{"heldout2.json", evalHeldout2SHA256},
		{"catalog.json", evalCatalogSHA256},
	} {
		raw, err := os.ReadFile(evalDir + "/" + f.name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		if got := hex.EncodeToString(sum[:]); got != f.want {
			t.Errorf("%s has sha256 %s, want %s: the held-out sets of the evaluation set and its catalog are frozen "+
				"and must not be edited (tune on train.json only; see %s/README.md)", f.name, got, f.want, evalDir)
		}
	}
}
