package search

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
)

// TestSearchRankingDump writes the exact top 10 (ids and float32 score bits) of
// every query of the train sets, the labelled set of testdata/queries.json and a
// generated 20,000-server corpus to the file named by SEARCH_RANKING_DUMP, so that
// a change meant to make searching cheaper can be shown to leave every ranking as
// it was: dump before, dump after, diff. The held-out sets are left out: their
// rankings are not to be looked at query by query.
func TestSearchRankingDump(t *testing.T) {
	path := os.Getenv("SEARCH_RANKING_DUMP")
	if path == "" {
		t.Skip("set SEARCH_RANKING_DUMP to the file to write")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	dump := func(set string, ix *Index, queries []string, limits ...int) {
		for _, q := range queries {
			for _, limit := range limits {
				fmt.Fprintf(w, "%s limit=%d %q\n", set, limit, q)
				for i, sd := range ix.searchScored(q, limit) {
					if i == 10 {
						break
					}
					d := ix.shards[sd.shard].docs[sd.doc]
					fmt.Fprintf(w, "  %2d %s/%s %.9g %08x\n", i+1, d.server, d.tool, sd.score, math.Float32bits(sd.score))
				}
			}
		}
	}

	var cat evalCatalog
	readEvalJSON(t, "catalog.json", &cat)
	evalIx := Build(evalSources(cat))
	for _, set := range []string{"train", "train2"} {
		var qs []evalQuery
		readEvalJSON(t, set+".json", &qs)
		var texts []string
		for _, q := range qs {
			texts = append(texts, q.Query)
		}
		// TestSearchEval asks for evalTopK+servers hits; the API for 10.
		dump(set, evalIx, texts, evalTopK, evalTopK+len(cat.Servers))
	}

	raw, err := os.ReadFile("testdata/queries.json")
	if err != nil {
		t.Fatal(err)
	}
	var labelled []labelledQuery
	if err := json.Unmarshal(raw, &labelled); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, q := range labelled {
		texts = append(texts, q.Query)
	}
	dump("labelled", Build(loadSearchCorpus(t)), texts, 10)

	// The generated corpus: many documents per term, where shortcuts in the scoring
	// loop would show.
	big := []string{"find tools for database operations", "open a pull request", "page the on-call engineer",
		"k8s pod logs", "create an invoice for a customer", "team 42 dashboard metrics",
		"create a github issue", "query postgres database", "send slack message to channel",
		"list kubernetes pods", "upload file to s3 bucket", "schedule a meeting", "refund a stripe payment",
		"find sentry errors for release", "open a ticket", "who is on call", "take a screenshot of a web page",
		"export notion page", "k8s deployment logs", "db schema", "archive old pull requests", "count invoices"}
	dump("synthetic20k", Build(synthetic20k()), big, 10, 100)

	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
