package search

// Spelling correction of query words: developers type fast ("kuberentes deplyoments",
// "opne prs", "tiket"), and a misspelt word matches nothing. A query word that neither
// the index, the WordNet table nor the abbreviation and synonym tables know is
// replaced by the first word one edit away that the index knows, trying the commonest
// slips first: two letters swapped, then one letter too many, one missing, one wrong
// (Damerau's edits). Short words have many neighbours and are often names or jargon
// (jane, todo, saas), so the looser edits need longer words: a swap minSwapLen
// letters, a letter too many or missing minIndelLen, a wrong one minSubstLen; and the
// word corrected to must be in at least minSpellDocs documents, not a rarity.
const (
	minSwapLen   = 4
	minIndelLen  = 5
	minSubstLen  = 6
	minSpellDocs = 2
)

// correctSpelling returns w or the correction of it; docs reports how many
// documents of the index have a (stemmed) term.
func correctSpelling(w string, docs func(string) int) string {
	if docs == nil || len(w) < minSwapLen || hasDigit(w) || !isASCIILower(w) ||
		docs(stem(w)) > 0 || abbreviations[w] != "" || synonyms[w] != nil || stopWords[w] ||
		queryStopWords[w] {
		return w
	}
	if _, ok := concepts().lookup(w); ok {
		return w // a real word the catalog does not use
	}
	b := []byte(w)
	try := func(c []byte) bool { return docs(stem(string(c))) >= minSpellDocs }
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
	if len(b) < minIndelLen {
		return w
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
	if len(b) < minSubstLen {
		return w
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
