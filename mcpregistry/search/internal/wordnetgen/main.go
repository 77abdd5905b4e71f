// Command wordnetgen turns Princeton WordNet 3.0 (Debian's wordnet-base, files under
// /usr/share/wordnet) into the compact concept table that package search embeds
// (wordnet.txt.gz). Run it from mcpregistry/search:
//
//	apt-get install -y wordnet-base
//	go generate ./mcpregistry/search
//
// which runs `go run ./internal/wordnetgen -dict /usr/share/wordnet -out wordnet.txt.gz`.
//
// The table keeps what a query needs to reach tools that say the same thing in other
// words, and nothing rare:
//
//   - keys are lemmas that occur in WordNet's sense-tagged corpus (tagsense_cnt > 0, the
//     frequency cut that keeps everyday words and drops the long tail), single words
//     of three letters or more or two-word collocations, plus the phrasal verbs made
//     of two such words ("pay back", "log in");
//   - for each key, the synsets of its most frequent senses (at most sensesPerPOS per
//     part of speech): the other words of the synset and the derivationally related
//     forms of the key (refund → repayment, vulnerable → vulnerability), then the
//     first word of each direct hypernym of its first noun and verb sense;
//   - targets are single common words (themselves tagged lemmas), at most maxSynonyms
//     and maxHypernyms per key;
//   - irregular inflections (ran → run, children → child) of keys, so that a query word
//     finds its lemma.
//
// Format (text, one record per line, sorted, gzip-compressed):
//
//	key<TAB>syn,syn,…<TAB>hyp,hyp,…     key may be "pay_back"
//	=inflected<TAB>lemma
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	sensesPerPOS = 2
	maxSynonyms  = 8
	maxHypernyms = 2
)

var (
	singleWord = regexp.MustCompile(`^[a-z]{3,}$`)
	twoWords   = regexp.MustCompile(`^[a-z]{2,}_[a-z]{2,}$`)
)

type pointer struct {
	symbol         string
	offset         string
	pos            byte
	source, target int // 0: between whole synsets; else 1-based word numbers
}

type synset struct {
	words    []string
	pointers []pointer
}

type lemma struct {
	senses []string // synset offsets, most frequent first
	tagged int      // senses seen in the tagged corpus
}

type wordnet struct {
	index map[byte]map[string]lemma   // pos → lemma → senses
	data  map[byte]map[string]*synset // pos → offset → synset
	exc   map[string]string           // inflected → lemma
	files map[byte]string             // pos → file suffix
}

func main() {
	dict := flag.String("dict", "/usr/share/wordnet", "WordNet 3.0 database directory")
	out := flag.String("out", "wordnet.txt.gz", "output file")
	flag.Parse()
	wn, err := load(*dict)
	if err != nil {
		log.Fatal(err)
	}
	lines := wn.table()
	if err := write(*out, lines); err != nil {
		log.Fatal(err)
	}
	fi, _ := os.Stat(*out)
	log.Printf("%d records, %d bytes", len(lines), fi.Size())
}

func load(dir string) (*wordnet, error) {
	wn := &wordnet{index: map[byte]map[string]lemma{}, data: map[byte]map[string]*synset{}, exc: map[string]string{},
		files: map[byte]string{'n': "noun", 'v': "verb", 'a': "adj", 'r': "adv"}}
	for pos, name := range wn.files {
		idx, err := readIndex(filepath.Join(dir, "index."+name))
		if err != nil {
			return nil, err
		}
		wn.index[pos] = idx
		data, err := readData(filepath.Join(dir, "data."+name))
		if err != nil {
			return nil, err
		}
		wn.data[pos] = data
		if err := readExceptions(filepath.Join(dir, name+".exc"), wn.exc); err != nil {
			return nil, err
		}
	}
	return wn, nil
}

// readIndex parses index.<pos>: lemma pos synset_cnt p_cnt [ptr…] sense_cnt
// tagsense_cnt offset….
func readIndex(path string) (map[string]lemma, error) {
	out := map[string]lemma{}
	err := eachLine(path, func(line string) error {
		f := strings.Fields(line)
		if len(f) < 6 {
			return fmt.Errorf("short index line %q", line)
		}
		nsyn, err1 := strconv.Atoi(f[2])
		nptr, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || len(f) < 6+nptr+nsyn {
			return fmt.Errorf("bad index line %q", line)
		}
		tagged, err := strconv.Atoi(f[5+nptr])
		if err != nil {
			return fmt.Errorf("bad index line %q", line)
		}
		out[f[0]] = lemma{senses: f[6+nptr : 6+nptr+nsyn], tagged: tagged}
		return nil
	})
	return out, err
}

// readData parses data.<pos>: offset lex_filenum ss_type w_cnt(hex) [word lex_id]…
// p_cnt [symbol offset pos source/target(hex)]… … | gloss.
func readData(path string) (map[string]*synset, error) {
	out := map[string]*synset{}
	err := eachLine(path, func(line string) error {
		if i := strings.Index(line, " | "); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			return fmt.Errorf("short data line %q", line)
		}
		nw, err := strconv.ParseInt(f[3], 16, 32)
		if err != nil || len(f) < 5+2*int(nw) {
			return fmt.Errorf("bad data line %q", line)
		}
		s := &synset{}
		for i := range int(nw) {
			w := strings.ToLower(f[4+2*i])
			if j := strings.IndexByte(w, '('); j >= 0 { // adjective markers: (a), (p), (ip)
				w = w[:j]
			}
			s.words = append(s.words, w)
		}
		k := 4 + 2*int(nw)
		np, err := strconv.Atoi(f[k])
		if err != nil || len(f) < k+1+4*np {
			return fmt.Errorf("bad pointer count in %q", line)
		}
		for i := range np {
			p := f[k+1+4*i : k+5+4*i]
			st, err := strconv.ParseUint(p[3], 16, 16)
			if err != nil || len(p[2]) != 1 {
				return fmt.Errorf("bad pointer in %q", line)
			}
			pos := p[2][0]
			if pos == 's' {
				pos = 'a'
			}
			s.pointers = append(s.pointers, pointer{symbol: p[0], offset: p[1], pos: pos,
				source: int(st >> 8), target: int(st & 0xff)})
		}
		out[f[0]] = s
		return nil
	})
	return out, err
}

func readExceptions(path string, into map[string]string) error {
	return eachLine(path, func(line string) error {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if _, dup := into[f[0]]; !dup {
				into[f[0]] = f[1]
			}
		}
		return nil
	})
}

func eachLine(path string, fn func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == ' ' { // the licence header
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return sc.Err()
}

// common reports whether w is a lemma of the tagged corpus in some part of speech.
func (wn *wordnet) common(w string) bool {
	for _, idx := range wn.index {
		if l, ok := idx[w]; ok && l.tagged > 0 {
			return true
		}
	}
	return false
}

// partsOfSpeech returns the parts of speech of key, the most used first (by the
// number of its senses seen in the tagged corpus): "take" is a verb before a noun.
func (wn *wordnet) partsOfSpeech(key string) []byte {
	var out []byte
	for _, pos := range []byte{'v', 'n', 'a', 'r'} {
		if _, ok := wn.index[pos][key]; ok {
			out = append(out, pos)
		}
	}
	slices.SortStableFunc(out, func(a, b byte) int { return wn.index[b][key].tagged - wn.index[a][key].tagged })
	return out
}

func (wn *wordnet) synset(pos byte, off string) *synset { return wn.data[pos][off] }

// table builds the output records.
func (wn *wordnet) table() []string {
	keys := map[string]bool{}
	for pos, idx := range wn.index {
		for w, l := range idx {
			switch {
			case singleWord.MatchString(w):
				keys[w] = keys[w] || l.tagged > 0
			case twoWords.MatchString(w):
				// Phrasal verbs of common words (pay back, log in, look up) are rarely
				// tagged but say what a query means better than their words.
				a, b, _ := strings.Cut(w, "_")
				keys[w] = keys[w] || l.tagged > 0 || pos == 'v' && wn.common(a) && wn.common(b)
			}
		}
	}
	var lines []string
	for key, ok := range keys {
		if !ok {
			continue
		}
		var syns, hyps []string
		seen := map[string]bool{key: true}
		add := func(list *[]string, w string, limit int) {
			if len(*list) < limit && !seen[w] && singleWord.MatchString(w) && wn.common(w) {
				seen[w] = true
				*list = append(*list, w)
			}
		}
		for _, pos := range wn.partsOfSpeech(key) {
			l := wn.index[pos][key]
			n := min(len(l.senses), max(1, min(l.tagged, sensesPerPOS)))
			for i, off := range l.senses[:n] {
				s := wn.synset(pos, off)
				if s == nil {
					continue
				}
				self := slices.Index(s.words, key) + 1
				for _, w := range s.words {
					add(&syns, w, maxSynonyms)
				}
				for _, p := range s.pointers {
					if p.symbol == "+" && p.source == self {
						if t := wn.synset(p.pos, p.offset); t != nil && p.target >= 1 && p.target <= len(t.words) {
							add(&syns, t.words[p.target-1], maxSynonyms)
						}
					}
				}
				if i == 0 && (pos == 'n' || pos == 'v') {
					for _, p := range s.pointers {
						if p.symbol == "@" {
							if t := wn.synset(p.pos, p.offset); t != nil {
								add(&hyps, t.words[0], maxHypernyms)
							}
						}
					}
				}
			}
		}
		if len(syns)+len(hyps) > 0 {
			lines = append(lines, key+"\t"+strings.Join(syns, ",")+"\t"+strings.Join(hyps, ","))
		}
	}
	for infl, base := range wn.exc {
		if keys[base] && singleWord.MatchString(infl) {
			lines = append(lines, "="+infl+"\t"+base)
		}
	}
	slices.Sort(lines)
	return lines
}

func write(path string, lines []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := zw.Write([]byte(l + "\n")); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
