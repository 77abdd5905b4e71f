package search

// Spelling correction of query words: developers type fast ("kuberentes deplyoments",
// "opne prs", "tiket"), and a misspelt word matches nothing. A query word that neither
// the index, the WordNet table nor the abbreviation and synonym tables know is
// replaced by the first word one edit away that the index knows, trying the commonest
// slips first: two letters swapped, then one letter too many, one missing, one wrong
// (Damerau's edits). Only words of minSpellLen letters or more are corrected: shorter
// ones are too often a real abbreviation, and have too many neighbours.

const minSpellLen = 4

// correctSpelling returns w or the correction of it; known reports whether the index
// has a (stemmed) term.
func correctSpelling(w string, known func(string) bool) string {
	if known == nil || len(w) < minSpellLen || hasDigit(w) || !isASCIILower(w) ||
		known(stem(w)) || abbreviations[w] != "" || synonyms[w] != nil || stopWords[w] ||
		queryStopWords[w] {
		return w
	}
	if _, ok := concepts().lookup(w); ok {
		return w // a real word the catalog does not use
	}
	b := []byte(w)
	try := func(c []byte) bool { return known(stem(string(c))) }
	for i := 0; i+1 < len(b); i++ { // swapped
		if b[i] == b[i+1] {
			continue
		}
		c := append([]byte(nil), b...)
		c[i], c[i+1] = c[i+1], c[i]
		if try(c) {
			return string(c)
		}
	}
	for i := range b { // one too many
		c := append(append([]byte(nil), b[:i]...), b[i+1:]...)
		if try(c) {
			return string(c)
		}
	}
	for i := 0; i <= len(b); i++ { // one missing
		for l := byte('a'); l <= 'z'; l++ {
			c := append(append(append([]byte(nil), b[:i]...), l), b[i:]...)
			if try(c) {
				return string(c)
			}
		}
	}
	for i := range b { // one wrong
		for l := byte('a'); l <= 'z'; l++ {
			if l == b[i] {
				continue
			}
			c := append([]byte(nil), b...)
			c[i] = l
			if try(c) {
				return string(c)
			}
		}
	}
	return w
}

func isASCIILower(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] < 'a' || w[i] > 'z' {
			return false
		}
	}
	return true
}
