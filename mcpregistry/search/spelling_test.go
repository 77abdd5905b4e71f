package search

import "testing"

func TestCorrectSpelling(t *testing.T) {
	vocab := map[string]int{"kubernet": 9, "deploy": 9, "ticket": 9, "request": 9, "list": 9, "too": 9, "cane": 9,
		"photo": 9, "retry": 9, "untils": 1}
	docs := func(term string) int { return vocab[term] }
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
		"todo":        "todo",   // too short to miss a letter
		"jane":        "jane",   // too short for a wrong letter
		"proto":       "proto",
		"retro":       "retro",
		"utils":       "utils", // untils is in too few documents
	} {
		if got := correctSpelling(in, docs); got != want {
			t.Errorf("correctSpelling(%q) = %q, want %q", in, got, want)
		}
	}
	if got := correctSpelling("tiket", nil); got != "tiket" {
		t.Errorf("without an index, %q was corrected to %q", "tiket", got)
	}
}
