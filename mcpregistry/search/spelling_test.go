package search

import "testing"

func TestCorrectSpelling(t *testing.T) {
	vocab := map[string]bool{"kubernet": true, "deploy": true, "ticket": true, "request": true, "list": true}
	known := func(term string) bool { return vocab[term] }
	for in, want := range map[string]string{
		"kuberentes":  "kubernetes", // swapped
		"deplyoments": "deployments",
		"tiket":       "ticket", // missing
		"reqests":     "requests",
		"lsit":        "list",
		"deploy":      "deploy", // a WordNet word is not a typo
		"ns":          "ns",     // too short
		"v1beta":      "v1beta", // a digit
		"zzzzzz":      "zzzzzz", // nothing near
	} {
		if got := correctSpelling(in, known); got != want {
			t.Errorf("correctSpelling(%q) = %q, want %q", in, got, want)
		}
	}
	if got := correctSpelling("tiket", nil); got != "tiket" {
		t.Errorf("without an index, %q was corrected to %q", "tiket", got)
	}
}
