package search

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"strings"
	"sync"
)

//go:generate go run ./internal/wordnetgen -dict /usr/share/wordnet -out wordnet.txt.gz

// wordnetTable is the concept table generated from Princeton WordNet 3.0 by
// internal/wordnetgen (see its doc comment for what it keeps, and WORDNET-LICENSE).
//
//go:embed wordnet.txt.gz
var wordnetTable []byte

// concept is what WordNet relates to one lemma, as index terms (stemmed): words of
// the same meaning or derived from it, and the broader words one level up.
type concept struct {
	synonyms, broader []string
}

type conceptTable struct {
	concepts   map[string]concept // lemma ("pay_back" for a collocation) → concept
	inflection map[string]string  // irregular form → lemma
}

var concepts = sync.OnceValue(func() *conceptTable {
	t, err := parseConcepts(wordnetTable)
	if err != nil {
		panic("search: the embedded WordNet table is corrupt: " + err.Error())
	}
	return t
})

func parseConcepts(gz []byte) (*conceptTable, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	t := &conceptTable{concepts: map[string]concept{}, inflection: map[string]string{}}
	sc := bufio.NewScanner(zr)
	terms := func(list string) []string {
		var out []string
		for w := range strings.SplitSeq(list, ",") {
			if w == "" {
				continue
			}
			out = append(out, stem(w))
		}
		return out
	}
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		switch {
		case len(f) == 2 && strings.HasPrefix(f[0], "="):
			t.inflection[f[0][1:]] = f[1]
		case len(f) == 3:
			t.concepts[f[0]] = concept{synonyms: terms(f[1]), broader: terms(f[2])}
		default:
			return nil, errCorruptTable(sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return t, zr.Close()
}

type errCorruptTable string

func (e errCorruptTable) Error() string { return "bad line " + string(e) }

// lookup returns the concept of a query word: of the word itself, else of its lemma
// (irregular forms, then WordNet's detachment rules for regular ones:
// "refunds" → refund, "directions" → direction, "copied" → copy).
func (t *conceptTable) lookup(w string) (concept, bool) {
	if c, ok := t.concepts[w]; ok {
		return c, true
	}
	if base, ok := t.inflection[w]; ok {
		c, ok := t.concepts[base]
		return c, ok
	}
	for _, r := range detachments {
		if base, ok := strings.CutSuffix(w, r.suffix); ok && len(base) >= 2 {
			if c, ok := t.concepts[base+r.ending]; ok {
				return c, true
			}
		}
	}
	return concept{}, false
}

// detachments are WordNet's morphy rules for nouns and verbs (adjectives' er/est
// too), tried in order.
var detachments = []struct{ suffix, ending string }{
	{"ies", "y"}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"},
	{"men", "man"}, {"es", "e"}, {"es", ""}, {"s", ""}, {"ied", "y"}, {"ed", "e"}, {"ed", ""},
	{"ing", "e"}, {"ing", ""}, {"er", ""}, {"est", ""},
}
