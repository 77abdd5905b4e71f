package search

import (
	"bytes"
	"cmp"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// The index is split into shards of consecutive servers (by name): about
// searchShards of them, of at least searchMinShard servers. A change rebuilds one
// shard; a search looks each query term up once per shard and visits the shards in
// order, so that documents come in the order of one index over all servers (which
// breaks ties). A shard that grows past twice the target size is split.
const (
	searchShards   = 64
	searchMinShard = 32
)

// searchShardTarget is the number of servers per shard for n servers.
func searchShardTarget(n int) int { return max(searchMinShard, (n+searchShards-1)/searchShards) }

// Hit is one result of a search: a server (Tool empty) or one of its tools.
type Hit struct {
	Server      string `json:"server"`
	Tool        string `json:"tool,omitempty"`
	Description string `json:"description,omitempty"`
	// Score is the hit's BM25 relevance (higher is better; comparable within one search).
	Score float64 `json:"score"`
}

// Source is one server and its tools as last indexed; a segment keeps them to
// tell whether anything changed.
type Source struct {
	Server *model.Server
	Tools  []model.ToolInfo
}

type posting struct {
	doc int32   // index into the segment's or shard's documents, | nameFlag
	tf  float32 // weighted term frequency
}

// A posting's document carries nameFlag when the term is in the document's name (a
// tool's or a server's), which the ranking favours (coverage.factor), and verbFlag
// when it is the first word of a tool's name after its server's own (create in
// create_issue and in todoist_create_task): the action that tool names take; and
// serverFlag when the term is in the name of the document's server (github for every
// tool of the github server), which a query naming that product favours.
// docMask takes the flags off. Shards hold far fewer than 2^28 documents.
const (
	nameFlag   int32 = 1 << 30
	verbFlag   int32 = 1 << 29
	serverFlag int32 = 1 << 28
	docMask          = serverFlag - 1
	flagMask         = ^docMask
	flagShift        = 28
)

type searchDoc struct {
	server, tool, description string
	seq                       int32 // position within its server: 0 the server, then its tools
}

// docStat is what scoring needs of a document, kept apart from searchDoc so that
// the scoring loop touches little memory.
type docStat struct {
	length    float32 // weighted length
	factor    float32
	nameWords float32 // words in the document's name
	writes    bool    // the tool's name takes an action that changes something (writeVerbs)
}

// searchSegment is one server's documents. Immutable. A new segment carries its
// documents and postings until it is merged into a shard; from then on the shard
// holds them (documents ndocs from the segment's place in the shard) and the
// segment only what tells whether its server changed, so that postings are not kept
// twice.
type searchSegment struct {
	src   Source
	ndocs int32
	total float64 // sum of the documents' lengths
	// Only until merged into a shard:
	docs  []searchDoc
	stats []docStat
	terms []string
	ends  []int32   // posts[ends[i-1]:ends[i]] are terms[i]'s postings
	posts []posting // doc is an index into docs
}

func (g *searchSegment) name() string { return g.src.Server.Name }

// searchShard is the inverted index of the segments whose server names hash to it.
// Immutable.
type searchShard struct {
	segs     []*searchSegment // ordered by server name
	docs     []searchDoc      // the segments' documents, in order
	stats    []docStat
	postings map[string]span // term → its postings in pdoc and ptf
	pdoc     []int32         // postings: document
	ptf      []float32       // postings: weighted term frequency
	total    float64
	// up is, per document, how far back its server's own document is: 0 for that
	// document itself, and for a tool too far from it to say in a byte (which then
	// goes without its server's score).
	up []uint8
}

// Index is an immutable snapshot of the whole index.
type Index struct {
	shards []*searchShard // ordered: every name in shards[i] is below those in shards[i+1]
	n      int            // documents
	total  float64        // sum of the documents' lengths
	avgLen float32
	// scoring holds, per shard, what scoring needs of each document, computed once
	// per snapshot.
	scoring [][]docScoring
	// impacts, when not nil, holds per shard each posting's BM25 impact under this
	// snapshot's average length (parallel to the shard's postings): searches
	// then only multiply and add. Without it (just after an update, until the
	// background worker computes it) they compute the impact for each posting; the
	// result is the same, bit for bit.
	impacts [][]float32 // parallel to each shard's pdoc
	// terms, computed with impacts, holds each term's postings over all shards, so
	// that a search looks a term up once rather than once per shard, and the most
	// a posting of it adds in each shard, which lets a search pass over a shard none
	// of whose documents can reach its top (see shardBound).
	terms map[string]termEntry
	// termShards holds the terms' shards: termShards[e.first : e.first+e.n] for
	// termEntry e, in shard order.
	termShards []termShard
	// Gen is the caller's version tag of the snapshot (the registry's count of
	// invalidations it reflects); the With* methods copy it to the index they return.
	Gen uint64
}

type docScoring struct {
	norm    float32 // bm25K1 * (1 - bm25B + bm25B*length/avgLen)
	factor  float32
	nameInv float32 // 1/nameWords (0 for no name)
	writes  bool
	// nameWords is the words in the document's name, at most boundNameWords: what
	// coverage.bound knows of nameInv.
	nameWords uint8
}

// boundNameWords is the longest name coverage.bound tells apart from longer ones.
const boundNameWords = 4

// termEntry is a term over the whole index: its document frequency, how many of its
// postings carry serverFlag (see span), and where its shards are in termShards.
type termEntry struct{ df, ns, first, n int32 }

// termShard is a term's postings in one shard, with the largest impact among them
// (maxImpact) and among those of servers' own documents (maxServer), which a tool
// adds part of (serverShare), and the largest nameInv among the documents that
// have it in their name (0 if none).
type termShard struct {
	shard int32
	span
	maxImpact, maxServer, maxNameInv float32
}

// span is a term's postings in a shard: pdoc[off : off+n] and ptf[off : off+n].
//
// ns is how many of them carry serverFlag: a term most of whose documents are the
// tools of servers it names (github, heroku, sentry) is a product's name, unlike one
// that servers' names share with ordinary text (time, memory, tables).
type span struct{ off, n, ns int32 }

var emptyShard = &searchShard{postings: map[string]span{}}

// buildSegment indexes one server and its tools.
func buildSegment(src Source) *searchSegment {
	seg := &searchSegment{src: src}
	tf := map[string]float32{}
	inName := map[string]bool{}
	var serverWords map[string]bool // the words of the server's name (see serverFlag)
	verb := ""                      // the current document's verb (see verbFlag)
	termIdx := map[string]int32{}
	var lists [][]posting
	addTerms := func(w float32, terms []string) float32 {
		for _, term := range terms {
			tf[term] += w
		}
		return w * float32(len(terms))
	}
	add := func(w float32, texts ...string) float32 {
		var n float32
		for _, t := range texts {
			n += addTerms(w, tokenize(t))
		}
		return n
	}
	// A name's words count less the more of them it has (BM25F's length
	// normalisation of the name field, against a fixed typical length so that a
	// document's terms do not depend on the rest of the corpus): list_users says
	// more about "list users" than list_user_policies does.
	// The first sentence of a description says what the tool does; the rest adds
	// details, caveats and other tools' names, which count less.
	addDescription := func(d string) float32 {
		first, rest := firstSentence(d)
		return add(weightDescription, first) + add(weightDescriptionRest, rest)
	}
	var nameWords float32
	addName := func(w float32, name string) float32 {
		terms, words := tokenizeName(name)
		for _, t := range terms {
			inName[t] = true
		}
		nameWords = float32(words)
		w /= 1 - nameB + nameB*nameWords/typicalNameWords
		return addTerms(w, terms)
	}
	finish := func(d searchDoc, st docStat) {
		id := int32(len(seg.docs))
		for term, f := range tf {
			i, ok := termIdx[term]
			if !ok {
				i = int32(len(seg.terms))
				termIdx[term] = i
				seg.terms = append(seg.terms, term)
				lists = append(lists, nil)
			}
			doc := id
			if inName[term] {
				doc |= nameFlag
			}
			if term == verb {
				doc |= verbFlag
			}
			if serverWords[term] {
				doc |= serverFlag
			}
			lists[i] = append(lists[i], posting{doc: doc, tf: f})
			delete(tf, term)
		}
		clear(inName)
		verb = ""
		st.nameWords = nameWords
		seg.total += float64(st.length)
		d.seq = id
		seg.docs = append(seg.docs, d)
		seg.stats = append(seg.stats, st)
	}
	s := src.Server
	ctx, _ := tokenizeName(s.Name)
	serverWords = map[string]bool{}
	for _, w := range ctx {
		serverWords[w] = true
	}
	tags := strings.Join(s.Tags, " ")
	n := addName(weightName, s.Name) + add(weightTags, tags) + add(weightDescription, s.Description)
	finish(searchDoc{server: s.Name, description: s.Description}, docStat{length: n, factor: serverDocFactor})
	ctx = append(ctx, tokenize(tags)...) // once per server, not per tool
	for _, t := range src.Tools {
		verb = nameVerb(t.Name, serverWords)
		writes := writeVerbs[verb]
		n := addName(weightName, t.Name) + addTerms(weightServerCtx, ctx) +
			addDescription(t.Description) + add(weightSchemaProps, schemaProperties(t.InputSchema)...)
		finish(searchDoc{server: s.Name, tool: t.Name, description: t.Description}, docStat{length: n, factor: 1, writes: writes})
	}
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	seg.posts = make([]posting, 0, total)
	seg.ends = make([]int32, len(lists))
	for i, l := range lists {
		seg.posts = append(seg.posts, l...)
		seg.ends[i] = int32(len(seg.posts))
	}
	seg.ndocs = int32(len(seg.docs))
	return seg
}

// nameVerb is the first word of a tool's name that is not a word of its server's name
// (stemmed): the action of verb_object names, create in todoist_create_task.
func nameVerb(name string, serverWords map[string]bool) string {
	words, parts := splitWords(name)
	for i, w := range words {
		if parts[i] > 0 {
			continue
		}
		if w = stem(w); !serverWords[w] {
			return w
		}
	}
	return ""
}

// segRef is a segment of a shard being built: a new one (old < 0, with its
// postings) or the segment old of the shard it is rebuilt from.
type segRef struct {
	seg *searchSegment
	old int
}

// buildShard merges segments (ordered by server name) into one shard: new segments'
// postings and those of old's segments that are kept.
func buildShard(old *searchShard, refs []segRef) *searchShard {
	if len(refs) == 0 {
		return emptyShard
	}
	sh := &searchShard{segs: make([]*searchSegment, len(refs))}
	var oldBase []int32 // old.segs[j]'s first document in old
	var remap []int32   // old document → new one, or -1
	ndocs := 0
	for _, r := range refs {
		ndocs += int(r.seg.ndocs)
		if r.old >= 0 && oldBase == nil {
			oldBase = make([]int32, len(old.segs))
			b := int32(0)
			for j, g := range old.segs {
				oldBase[j] = b
				b += g.ndocs
			}
			remap = make([]int32, len(old.docs))
			for i := range remap {
				remap[i] = -1
			}
		}
	}
	sh.docs = make([]searchDoc, 0, ndocs)
	sh.stats = make([]docStat, 0, ndocs)
	counts := map[string]int32{}
	for i, r := range refs {
		g := r.seg
		base := int32(len(sh.docs))
		if r.old >= 0 {
			ob := oldBase[r.old]
			sh.docs = append(sh.docs, old.docs[ob:ob+g.ndocs]...)
			sh.stats = append(sh.stats, old.stats[ob:ob+g.ndocs]...)
			for d := range g.ndocs {
				remap[ob+d] = base + d
			}
			sh.segs[i] = g
		} else {
			sh.docs = append(sh.docs, g.docs...)
			sh.stats = append(sh.stats, g.stats...)
			start := int32(0)
			for t, term := range g.terms {
				counts[term] += g.ends[t] - start
				start = g.ends[t]
			}
			sh.segs[i] = &searchSegment{src: g.src, ndocs: g.ndocs, total: g.total}
		}
		sh.total += g.total
	}
	if remap != nil {
		for term, sp := range old.postings {
			c := int32(0)
			for _, d := range old.pdoc[sp.off : sp.off+sp.n] {
				if remap[d&docMask] >= 0 {
					c++
				}
			}
			if c > 0 {
				counts[term] += c
			}
		}
	}
	sh.up = make([]uint8, len(sh.docs))
	for i, d := range sh.docs {
		if d.seq <= math.MaxUint8 {
			sh.up[i] = uint8(d.seq)
		}
	}
	nposts := int32(0)
	sh.postings = make(map[string]span, len(counts))
	for term, c := range counts {
		sh.postings[term] = span{off: nposts}
		nposts += c
	}
	sh.pdoc, sh.ptf = make([]int32, nposts), make([]float32, nposts)
	if remap != nil {
		for term, osp := range old.postings {
			sp, ok := sh.postings[term]
			if !ok {
				continue
			}
			for i, d := range old.pdoc[osp.off : osp.off+osp.n] {
				if nd := remap[d&docMask]; nd >= 0 {
					sh.pdoc[sp.off+sp.n], sh.ptf[sp.off+sp.n] = nd|d&flagMask, old.ptf[osp.off+int32(i)]
					sp.n++
					if d&serverFlag != 0 {
						sp.ns++
					}
				}
			}
			sh.postings[term] = sp
		}
	}
	base := int32(0)
	for _, r := range refs {
		g := r.seg
		if r.old < 0 {
			start := int32(0)
			for t, term := range g.terms {
				sp := sh.postings[term]
				for _, p := range g.posts[start:g.ends[t]] {
					sh.pdoc[sp.off+sp.n], sh.ptf[sp.off+sp.n] = (base+p.doc&docMask)|p.doc&flagMask, p.tf
					sp.n++
					if p.doc&serverFlag != 0 {
						sp.ns++
					}
				}
				sh.postings[term] = sp
				start = g.ends[t]
			}
		}
		base += g.ndocs
	}
	return sh
}

// rebuildShard returns the shard for srcs (ordered by server name), reusing old's
// postings of unchanged servers, and old itself when nothing changed.
func rebuildShard(old *searchShard, srcs []Source) *searchShard {
	refs := make([]segRef, len(srcs))
	rebuilt := len(srcs) != len(old.segs) // postings change
	j := 0
	for i, src := range srcs {
		for j < len(old.segs) && old.segs[j].name() < src.Server.Name {
			j++
		}
		var prev *searchSegment
		if j < len(old.segs) && old.segs[j].name() == src.Server.Name {
			prev = old.segs[j]
		}
		switch {
		case prev != nil && identicalSource(prev.src, src):
			refs[i] = segRef{prev, j}
		case prev != nil && sameSource(prev.src, src):
			// Same content under new pointers (a health check replaced an equal
			// list): keep the postings, remember the new source.
			c := *prev
			c.src = src
			refs[i] = segRef{&c, j}
		default:
			refs[i] = segRef{buildSegment(src), -1}
			rebuilt = true
		}
	}
	if rebuilt {
		return buildShard(old, refs)
	}
	segs := make([]*searchSegment, len(refs))
	for i, r := range refs {
		segs[i] = r.seg
	}
	if slices.Equal(segs, old.segs) {
		return old
	}
	// Same servers (same order, so the same documents): only sources were renewed.
	sh := *old
	sh.segs = segs
	return &sh
}

// Build indexes sources (ordered by server name) at once.
func Build(sources []Source) *Index {
	ix, _ := BuildUnless(sources, nil)
	return ix
}

// buildSearchIndexUnless is Build that gives up (ok false) once stop is
// closed.
func BuildUnless(sources []Source, stop <-chan struct{}) (ix *Index, ok bool) {
	empty := &Index{}
	ix, ok = empty.WithSources(sources, stop)
	if !ok {
		return nil, false
	}
	return ix.WithImpacts(), true
}

// WithImpacts returns ix with every posting's impact precomputed.
func (ix *Index) WithImpacts() *Index {
	c := *ix
	c.impacts = make([][]float32, len(ix.shards))
	names := make([][]string, len(ix.shards))
	spans := make([][]termShard, len(ix.shards))
	parallelShards(len(ix.shards), nil, func(k int) {
		sh, sc := ix.shards[k], ix.scoring[k]
		imp := make([]float32, len(sh.pdoc))
		for i, doc := range sh.pdoc {
			d, tf := &sc[doc&docMask], sh.ptf[i]
			imp[i] = d.factor * tf * (bm25K1 + 1) / (tf + d.norm)
		}
		c.impacts[k] = imp
		names[k], spans[k] = shardTerms(k, sh, sc, imp)
	})
	c.terms, c.termShards = termDictionary(names, spans)
	return &c
}

// shardTerms lists shard k's terms, each with its postings and their largest
// impacts (see termShard).
func shardTerms(k int, sh *searchShard, sc []docScoring, imp []float32) ([]string, []termShard) {
	names := make([]string, 0, len(sh.postings))
	spans := make([]termShard, 0, len(sh.postings))
	for term, sp := range sh.postings {
		ts := termShard{shard: int32(k), span: sp}
		for i, doc := range sh.pdoc[sp.off : sp.off+sp.n] {
			x := imp[sp.off+int32(i)]
			ts.maxImpact = max(ts.maxImpact, x)
			if sh.docs[doc&docMask].seq == 0 {
				ts.maxServer = max(ts.maxServer, x)
			}
			if doc&nameFlag != 0 {
				ts.maxNameInv = max(ts.maxNameInv, sc[doc&docMask].nameInv)
			}
		}
		names = append(names, term)
		spans = append(spans, ts)
	}
	return names, spans
}

// termDictionary gathers the shards' terms (shardTerms, in shard order) into one
// dictionary (see Index.terms).
func termDictionary(names [][]string, spans [][]termShard) (map[string]termEntry, []termShard) {
	total := int32(0)
	for _, ns := range names {
		total += int32(len(ns))
	}
	terms := map[string]termEntry{}
	for _, ns := range names {
		for _, term := range ns {
			e := terms[term]
			e.n++
			terms[term] = e
		}
	}
	off := int32(0)
	for term, e := range terms {
		terms[term] = termEntry{first: off}
		off += e.n
	}
	out := make([]termShard, total)
	for k, ns := range names {
		for i, term := range ns {
			ts := spans[k][i]
			e := terms[term]
			out[e.first+e.n] = ts
			e.n++
			e.df += ts.n
			e.ns += ts.ns
			terms[term] = e
		}
	}
	return terms, out
}

// shardFor returns the index of the shard whose range holds name: the last shard
// whose first server is not above name (0 when name is below them all).
// HasImpacts reports whether the per-posting impacts that speed searches up are
// computed (see WithImpacts); searches are exact either way.
func (ix *Index) HasImpacts() bool { return ix.impacts != nil }

// Docs returns the number of documents indexed: one per server plus one per tool.
func (ix *Index) Docs() int { return ix.n }

func (ix *Index) shardFor(name string) int {
	i, _ := slices.BinarySearchFunc(ix.shards, name, func(sh *searchShard, name string) int {
		if strings.Compare(sh.segs[0].name(), name) <= 0 {
			return -1
		}
		return 1
	})
	return max(0, i-1)
}

// WithSources returns the index of sources (every enabled server, ordered by name),
// rebuilding only the shards whose servers changed. ok is false when stop was closed
// first.
func (ix *Index) WithSources(sources []Source, stop <-chan struct{}) (*Index, bool) {
	target := searchShardTarget(len(sources))
	var groups [][]Source   // the new shards' servers
	var olds []*searchShard // the shard each group comes from, or nil
	if len(ix.shards) == 0 {
		for len(sources) > 0 {
			n := min(target, len(sources))
			groups, olds = append(groups, sources[:n:n]), append(olds, emptyShard)
			sources = sources[n:]
		}
	} else {
		groups = make([][]Source, len(ix.shards))
		olds = ix.shards
		k := 0
		for _, src := range sources {
			for k+1 < len(ix.shards) && ix.shards[k+1].segs[0].name() <= src.Server.Name {
				k++
			}
			groups[k] = append(groups[k], src)
		}
	}
	built := make([][]*searchShard, len(groups))
	stopped := parallelShards(len(groups), stop, func(k int) {
		built[k] = splitShard(rebuildShard(olds[k], groups[k]), target)
	})
	if stopped {
		return nil, false
	}
	next := &Index{Gen: ix.Gen}
	for _, shs := range built {
		next.shards = append(next.shards, shs...)
	}
	if slices.Equal(next.shards, ix.shards) {
		return ix, true // nothing changed
	}
	next.finish()
	return next, true
}

// splitShard returns sh as shards of at most twice target servers (none when empty).
func splitShard(sh *searchShard, target int) []*searchShard {
	switch {
	case len(sh.segs) == 0:
		return nil
	case len(sh.segs) <= 2*target:
		return []*searchShard{sh}
	}
	var out []*searchShard
	for j := 0; j < len(sh.segs); {
		n := min(target, len(sh.segs)-j)
		refs := make([]segRef, n)
		for i := range refs {
			refs[i] = segRef{sh.segs[j+i], j + i}
		}
		out = append(out, buildShard(sh, refs))
		j += n
	}
	return out
}

// WithChanges returns the index with the named servers replaced by their sources (a
// nil source: removed or disabled), rebuilding only their shards.
func (ix *Index) WithChanges(changes map[string]*Source) *Index {
	if len(ix.shards) == 0 {
		var srcs []Source
		for _, src := range changes {
			if src != nil {
				srcs = append(srcs, *src)
			}
		}
		slices.SortFunc(srcs, func(a, b Source) int { return strings.Compare(a.Server.Name, b.Server.Name) })
		next, _ := ix.WithSources(srcs, nil)
		return next
	}
	byShard := map[int]map[string]*Source{}
	for name, src := range changes {
		k := ix.shardFor(name)
		if byShard[k] == nil {
			byShard[k] = map[string]*Source{}
		}
		byShard[k][name] = src
	}
	n := 0
	for _, sh := range ix.shards {
		n += len(sh.segs)
	}
	target := searchShardTarget(n)
	rebuilt := map[int][]*searchShard{}
	for k, ch := range byShard {
		old := ix.shards[k]
		srcs := make([]Source, 0, len(old.segs)+len(ch))
		for _, g := range old.segs {
			if _, changed := ch[g.name()]; !changed {
				srcs = append(srcs, g.src)
			}
		}
		for _, src := range ch {
			if src != nil {
				srcs = append(srcs, *src)
			}
		}
		slices.SortFunc(srcs, func(a, b Source) int { return strings.Compare(a.Server.Name, b.Server.Name) })
		if sh := rebuildShard(old, srcs); sh != old {
			rebuilt[k] = splitShard(sh, target)
		}
	}
	if len(rebuilt) == 0 {
		return ix // nothing changed
	}
	next := &Index{Gen: ix.Gen}
	for k, sh := range ix.shards {
		if shs, ok := rebuilt[k]; ok {
			next.shards = append(next.shards, shs...)
		} else {
			next.shards = append(next.shards, sh)
		}
	}
	next.finish()
	return next
}

// finish sums the shards' statistics and computes each document's length
// normalisation under the new average length.
func (ix *Index) finish() {
	ix.n, ix.total = 0, 0
	for _, sh := range ix.shards {
		ix.n += len(sh.docs)
		ix.total += sh.total
	}
	ix.avgLen = 0
	if ix.n > 0 {
		ix.avgLen = float32(ix.total / float64(ix.n))
	}
	avgLen := ix.avgLen
	flat := make([]docScoring, ix.n)
	ix.scoring = make([][]docScoring, len(ix.shards))
	for k, sh := range ix.shards {
		sc := flat[:len(sh.docs):len(sh.docs)]
		flat = flat[len(sh.docs):]
		for i, d := range sh.stats {
			sc[i] = docScoring{norm: bm25K1 * (1 - bm25B + bm25B*d.length/avgLen), factor: d.factor, writes: d.writes}
			if d.nameWords > 0 {
				sc[i].nameInv = 1 / d.nameWords
				sc[i].nameWords = uint8(min(d.nameWords, boundNameWords))
			}
		}
		ix.scoring[k] = sc
	}
}

// parallelShards calls fn for k from 0 to n-1 on GOMAXPROCS goroutines and reports
// whether stop was closed before all were done. A panic in fn is re-raised here.
func parallelShards(n int, stop <-chan struct{}, fn func(k int)) (stopped bool) {
	var (
		next     atomic.Int32
		wg       sync.WaitGroup
		panicked atomic.Pointer[any]
		halted   atomic.Bool
	)
	workers := min(runtime.GOMAXPROCS(0), n)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					panicked.Store(&r)
					halted.Store(true)
				}
			}()
			for {
				k := int(next.Add(1)) - 1
				if k >= n || halted.Load() {
					return
				}
				if stop != nil {
					select {
					case <-stop:
						halted.Store(true)
						return
					default:
					}
				}
				fn(k)
			}
		}()
	}
	wg.Wait()
	if p := panicked.Load(); p != nil {
		panic(*p)
	}
	return halted.Load()
}

// identicalSource reports whether a and b are the very same records.
func identicalSource(a, b Source) bool {
	return a.Server == b.Server && len(a.Tools) == len(b.Tools) &&
		(len(a.Tools) == 0 || &a.Tools[0] == &b.Tools[0])
}

// sameSource reports whether a and b index the same: the same server record and tool
// lists of equal content.
func sameSource(a, b Source) bool {
	return a.Server == b.Server && SameTools(a.Tools, b.Tools)
}

// sameTools reports whether two tool lists have equal content (for the index).
func SameTools(x, y []model.ToolInfo) bool {
	if len(x) != len(y) {
		return false
	}
	if len(x) == 0 || &x[0] == &y[0] {
		return true
	}
	for j := range x {
		if x[j].Name != y[j].Name || x[j].Description != y[j].Description ||
			!bytes.Equal(x[j].InputSchema, y[j].InputSchema) {
			return false
		}
	}
	return true
}

// Searching.

type scoredDoc struct {
	score float32
	shard int32
	doc   int32 // in the shard
}

// termBound is the most a term's posting adds to a document's score in one shard,
// before the query word's weight, and to a server's document, and the largest
// nameInv of a document naming it (see termShard).
type termBound struct{ impact, server, nameInv float32 }

type scoreBuf struct {
	lists   []span      // [term*len(shards) + shard]
	bounds  []termBound // [term*len(shards) + shard], with Index.terms only
	weights []float32
	masks   [][8]uint64 // per query term: its bits in a document, by the posting's flags (see flagged)
	groups  []uint32    // per query term: its group's bit (1 << group), 0 for a term of weight 0
	product []bool      // per query term: it names a product (see productBit)
	scores  []float32
	matched []uint64 // per document: groups matched (see nameShift, verbShift)
	touched []int32
	servers []int32 // touched documents read after the loop over touched (see up)
	heap    []scoredDoc
	order   []shardOrder // the shards to visit
}

// shardOrder is a shard and its bound (see shardBound).
type shardOrder struct {
	bound float32
	shard int32
}

// coverage weighs a hit by the share of the query it answers: each query word (group)
// counts in full when the word itself matched and in part when only an expansion did
// (see normalize). A hit that shares one
// incidental word with a long query ("back" in navigate_back for "get my money
// back") then loses to one that answers most of it.
type coverage struct {
	primary, expansion [maxGroups]float32 // per group
	total, invTotal    float32
	product            bool // the query names a product (see productBit)
	asks               bool // the query is a question that changes nothing (asksToRead)
	// expanded is, per set of groups (a bit each), what answering them by expansions
	// only is worth (see credit): a table, so that scoring a document only looks up.
	expanded [1 << maxGroups]float32
	// most is, by the number of groups a document matches, the number it matches in
	// its name, whether its name takes the query's verb and the words of its name
	// (docScoring.nameWords), the most its factor can be (see maxFactor).
	most [maxGroups + 1][maxGroups + 1][2][boundNameWords + 1]float32
	// mostAll is the largest of most: the most any document's factor can be.
	mostAll float32
}

// normalize turns the groups' best weights into their shares of coverage: each query
// word found in the index counts one, an expansion alone its weight relative to the
// word's (all of it when the word itself is not in the index). Counting words rather
// than their idf keeps one rare word from outweighing the rest of the query: it
// already weighs in the BM25 score.
func (c *coverage) normalize() {
	c.total = 0
	for g := range maxGroups {
		p, e := c.primary[g], c.expansion[g]
		switch {
		case p > 0:
			c.primary[g], c.expansion[g] = 1, min(1, e/p)
		case e > 0:
			c.expansion[g] = 1
		default:
			continue
		}
		c.total++
	}
	if c.total > 0 {
		c.invTotal = 1 / c.total
	}
	for set := 1; set < len(c.expanded); set++ {
		g := bits.TrailingZeros32(uint32(set))
		c.expanded[set] = c.expanded[set&(set-1)] + c.expansion[g]
	}
	// A document matches at most c.total groups (those of weight 0 match nothing).
	for n := range min(int(c.total), maxGroups) + 1 {
		for named := range n + 1 {
			for verb := range 2 {
				for words := 1; words <= boundNameWords; words++ {
					// A name of more words than boundNameWords names less of itself.
					precision := min(1, float32(float32(named)*float32(1/float32(words))))
					c.most[n][named][verb][words] = c.maxFactor(n, named, verb, precision)
				}
				c.most[n][named][verb][0] = c.maxFactor(n, 0, verb, 0)
				for _, f := range c.most[n][named][verb] {
					c.mostAll = max(c.mostAll, f)
				}
			}
		}
	}
}

// maxFactor is the most factor can be, before the product's, for a document that
// matches n of the query's groups, named of them in its name, whose name takes the
// query's verb if verb is 1, and whose name's precision (see factor) is at most
// precision: scale with each group credited in full (credit counts at most one per
// group).
func (c *coverage) maxFactor(n, named, verb int, precision float32) float32 {
	if c.total == 0 {
		return 1
	}
	if named == 0 {
		precision = 0
	}
	return c.scale(float32(float32(n)*c.invTotal), precision, float32(float32(named)*c.invTotal), float32(verb))
}

// bound is the most a document's factor (with askWriteFactor) can be for its
// matched bits m and the words of its name (docScoring.nameWords): an upper bound
// that takes two popcounts and a look-up, checked before the factor itself.
func (c *coverage) bound(m uint64, nameWords uint8) float32 {
	groups := uint32(m|m>>maxGroups) & groupMask
	named := uint32(m>>nameShift|m>>(nameShift+maxGroups)) & groupMask
	verb := 0
	if m>>verbShift&verbBits != 0 {
		verb = 1
	}
	f := c.most[bits.OnesCount32(groups)][bits.OnesCount32(named)][verb][nameWords]
	if c.product && m&productBit == 0 {
		f = float32(f * offProductFactor)
	}
	return f
}

// A document's matched bits (scoreBuf.matched): which query words (groups) it
// answers with the word itself, with an expansion only, and the same two in its name.
// Above them, at verbShift, the query's verb (its first word, group 0) answered by
// the verb of the document's name (verbFlag), by the word itself or an expansion.
const (
	nameShift = 2 * maxGroups
	verbShift = 4 * maxGroups
	groupMask = 1<<maxGroups - 1
	matchMask = 1<<nameShift - 1
	verbBits  = 1 | 1<<maxGroups
	// productBit: the document's server is named by a product word of the query.
	productBit = 1 << (4*maxGroups + 2*maxGroups)
)

// factor is the multiplier of a document's BM25 score for its matched groups m: the
// share of the query it answers (coverage), and how much of its name the query
// names (nameInv is 1 / the name's words): list_users is the answer to "list iam
// users" before list_user_policies, whose description says as much.
func (c *coverage) factor(m uint64, nameInv float32) float32 {
	if c.total == 0 {
		return 1
	}
	share := float32(c.credit(uint32(m&matchMask)) * c.invTotal)
	var precision, recall float32
	if named := c.credit(uint32(m>>nameShift) & matchMask); named > 0 && nameInv > 0 {
		// The F1 of the name against the query: how much of the name the query
		// names, and how much of the query the name answers.
		precision, recall = min(1, float32(named*nameInv)), float32(named*c.invTotal)
	}
	// The query's first word is the action it asks for ("list running docker
	// containers"): a tool whose name takes that action (list_containers) is the
	// answer before one that only mentions it (run_container).
	f := c.scale(share, precision, recall, c.credit(uint32(m>>verbShift)&verbBits))
	if c.product && m&productBit == 0 {
		f = float32(f * offProductFactor)
	}
	return f
}

// scale is factor but for the product: the coverage of share, lifted by the F1 of
// the name's precision and recall (none when either is 0) and by the credit of the
// query's verb. Each step rounds to float32 explicitly (no fused multiply-add) and
// none decreases as an argument grows, so that scale at arguments no smaller than
// a document's is at least the document's factor to the last bit: maxFactor's
// bounds need no margin, and a bound equal to a kept hit's score is a tie.
func (c *coverage) scale(share, precision, recall, verb float32) float32 {
	f := float32(coverageFloor + float32((1-coverageFloor)*share))
	if precision > 0 && recall > 0 {
		// 2PR/(P+R) written so that every operation is monotone in P and R.
		f1 := float32(2 / float32(float32(1/precision)+float32(1/recall)))
		f = float32(f * float32(1+float32(float32(nameBoost*share)*f1)))
	}
	if c.total > 1 {
		f = float32(f * float32(1+float32(verbBoost*verb)))
	}
	return f
}

// credit is what the groups of m (primary bits, then expansion bits) are worth: one
// for each query word, and an expansion's share for a word answered only by one.
func (c *coverage) credit(m uint32) float32 {
	p, e := m&groupMask, m>>maxGroups&groupMask
	return float32(bits.OnesCount32(p)) + c.expanded[e&^p]
}

// flagged is a term's bits in a document, indexed by its posting's flags
// (doc>>flagShift): the group's bit, with its name bit under nameFlag, its verb bit
// (if the term stands for the query's verb) under verbFlag, and productBit under
// serverFlag if the term names a product.
func flagged(bit uint64, product bool) (out [8]uint64) {
	match, verb := bit&matchMask, bit&^matchMask
	for f := range out {
		out[f] = match
		if int32(f)<<flagShift&nameFlag != 0 {
			out[f] |= match << nameShift
		}
		if int32(f)<<flagShift&verbFlag != 0 {
			out[f] |= verb
		}
		if product && int32(f)<<flagShift&serverFlag != 0 {
			out[f] |= productBit
		}
	}
	return out
}

var scorePool = sync.Pool{New: func() any { return new(scoreBuf) }}

// better orders hits: higher score first, ties to the earlier document (shards
// are in name order, and documents in a shard).
func better(a, b scoredDoc) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	if a.shard != b.shard {
		return a.shard < b.shard
	}
	return a.doc < b.doc
}

func (ix *Index) Search(query string, limit int) []Hit {
	top := ix.searchScored(query, limit)
	out := make([]Hit, len(top))
	for i, sd := range top {
		d := ix.shards[sd.shard].docs[sd.doc]
		out[i] = Hit{Server: d.server, Tool: d.tool, Description: d.description,
			Score: math.Round(float64(sd.score)*1000) / 1000}
	}
	return out
}

// docFreq returns the number of documents that have term.
func (ix *Index) docFreq(term string) int {
	if ix.terms != nil {
		return int(ix.terms[term].df)
	}
	n := 0
	for _, sh := range ix.shards {
		n += int(sh.postings[term].n)
	}
	return n
}

// searchScored returns the best limit documents for query, best first, with their
// exact scores.
func (ix *Index) searchScored(query string, limit int) []scoredDoc {
	terms := queryTermsKnown(query, ix.docFreq)
	if len(terms) == 0 || ix.n == 0 || limit <= 0 {
		return nil
	}
	buf := scorePool.Get().(*scoreBuf)
	defer scorePool.Put(buf)
	var cov coverage
	ix.weigh(terms, buf, &cov)
	cov.asks = asksToRead(query)
	lists, weights, masks := buf.lists, buf.weights, buf.masks
	nshards := len(ix.shards)

	// With the term dictionary, shards are visited best bound first (see
	// shardBound), so that the kept hits are good early and the rest of the shards
	// are passed over; the order of hits (better) does not depend on it.
	order := buf.order[:0]
	for k, sh := range ix.shards {
		if len(sh.docs) > 0 {
			b := float32(math.MaxFloat32)
			if ix.terms != nil {
				b = shardBound(buf, &cov, k, nshards)
			}
			order = append(order, shardOrder{bound: b, shard: int32(k)})
		}
	}
	if ix.terms != nil {
		slices.SortFunc(order, func(a, b shardOrder) int {
			return cmp.Or(cmp.Compare(b.bound, a.bound), cmp.Compare(a.shard, b.shard))
		})
	}
	buf.order = order
	h := buf.heap[:0]
	for _, o := range order {
		k, sh := int(o.shard), ix.shards[o.shard]
		if len(h) == limit && !better(scoredDoc{score: o.bound, shard: o.shard}, h[0]) {
			// No document of the shard can beat the worst kept hit; nor can those
			// of the shards after it, if its bound is below that hit's score.
			if o.bound < h[0].score {
				break
			}
			continue
		}
		if cap(buf.scores) < len(sh.docs) {
			buf.scores = make([]float32, len(sh.docs))
			buf.matched = make([]uint64, len(sh.docs))
		}
		scores := buf.scores[:len(sh.docs)]
		matched := buf.matched[:len(sh.docs)]
		sc := ix.scoring[k]
		touched := buf.touched[:0]
		var imp []float32
		if ix.impacts != nil {
			imp = ix.impacts[k]
		}
		for t := range terms {
			sp := lists[t*len(ix.shards)+k]
			w := weights[t]
			if sp.n == 0 || w == 0 {
				continue
			}
			fbits := &masks[t]
			docs := sh.pdoc[sp.off : sp.off+sp.n]
			if imp != nil {
				imps := imp[sp.off : sp.off+sp.n]
				for i, doc := range docs {
					bit := fbits[uint32(doc)>>flagShift]
					doc &= docMask
					s := float32(w * imps[i])
					if scores[doc] == 0 {
						// First touch: matched holds a stale value.
						touched = append(touched, doc)
						matched[doc] = bit
					} else {
						matched[doc] |= bit
					}
					scores[doc] += s
				}
				continue
			}
			tfs := sh.ptf[sp.off : sp.off+sp.n]
			for i, doc := range docs {
				bit := fbits[uint32(doc)>>flagShift]
				doc &= docMask
				d, tf := &sc[doc], tfs[i]
				// The term's BM25 impact in the document (everything but idf and the
				// query word's weight).
				impact := d.factor * tf * (bm25K1 + 1) / (tf + d.norm)
				s := float32(w * impact)
				if scores[doc] == 0 {
					touched = append(touched, doc)
					matched[doc] = bit
				} else {
					matched[doc] |= bit
				}
				scores[doc] += s
			}
		}
		// What the query finds in a server (its description: "task management",
		// "reactions") is found in part in its tools that it touched: cluster
		// smoothing, as a passage is scored with its document. A server's tools
		// follow it.
		// A server's document is cleared after the loop, once its tools have read it.
		servers := buf.servers[:0]
		for _, id := range touched {
			s, m := scores[id], matched[id]
			if up := int32(sh.up[id]); up != 0 {
				scores[id] = 0
				if ss := scores[id-up]; ss != 0 {
					s += float32(serverShare * ss)
					m |= matched[id-up] & matchMask
				}
			} else {
				servers = append(servers, id)
			}
			if len(h) == limit && (float32(s*cov.mostAll) < h[0].score ||
				!better(scoredDoc{score: float32(s * cov.bound(m, sc[id].nameWords)), shard: int32(k), doc: id}, h[0])) {
				// Even the most its factor can be leaves it behind the worst kept
				// hit (see coverage.scale): the factor is not worth computing.
				continue
			}
			s = float32(s * cov.factor(m, sc[id].nameInv))
			if cov.asks && sc[id].writes {
				s = float32(s * askWriteFactor)
			}
			if d := (scoredDoc{score: s, shard: int32(k), doc: id}); len(h) < limit {
				h = append(h, d)
				siftUp(h, len(h)-1)
			} else if better(d, h[0]) {
				h[0] = d
				siftDown(h, 0)
			}
		}
		for _, id := range servers {
			scores[id] = 0
		}
		buf.touched, buf.servers = touched, servers
	}
	buf.heap = h
	out := slices.Clone(h)
	slices.SortFunc(out, func(a, b scoredDoc) int {
		switch {
		case a == b:
			return 0
		case better(a, b):
			return -1
		}
		return 1
	})
	return out
}

// shardBound is at least any final score a document of shard k can have: the sum
// of each query term's largest impact in the shard, weighted, with serverShare of
// the same for the shard's servers' own documents (a tool's server smoothing), times
// the most the factor can be for a document matching every group that has a term in
// the shard (coverage.maxFactor; both grow with the groups matched, so no subset of
// them does better), lowered by offProductFactor when no product word of the query
// is in the name of any of the shard's servers. The sums are a document's in the
// same order, each term no smaller, and float32 rounding never decreases as its
// operands grow: the bound holds to the last bit, without a margin. A shard whose
// bound is at most the worst hit kept so far cannot add a hit, and is not scored.
func shardBound(buf *scoreBuf, cov *coverage, k, nshards int) float32 {
	var doc, server, nameInv float32
	var groups, named uint32
	product := false
	for t, w := range buf.weights {
		b := buf.bounds[t*nshards+k]
		if b.impact == 0 {
			continue
		}
		doc += float32(w * b.impact)
		server += float32(w * b.server)
		groups |= buf.groups[t]
		if b.nameInv > 0 {
			named |= buf.groups[t]
			nameInv = max(nameInv, b.nameInv)
		}
		product = product || buf.product[t] && buf.lists[t*nshards+k].ns > 0
	}
	// A document's name's precision is at most its named groups times the largest
	// nameInv of a document naming one; its name takes the query's verb only if
	// the verb is in a name.
	nn := bits.OnesCount32(named)
	f := cov.maxFactor(bits.OnesCount32(groups), nn, int(named&1), min(1, float32(float32(nn)*nameInv)))
	if cov.product && !product {
		f *= offProductFactor
	}
	return float32(float32(doc+float32(serverShare*server)) * f)
}

// weigh fills buf's lists, weights, masks and (with Index.terms) bounds for the
// query's terms, and cov with the query's coverage. Global statistics: N and the
// average length are kept per snapshot; document frequencies come from the term
// dictionary or are summed over the shards.
func (ix *Index) weigh(terms []queryTerm, buf *scoreBuf, cov *coverage) {
	n := float64(ix.n)
	lists := buf.lists[:0]
	weights := buf.weights[:0]
	masks := buf.masks[:0]
	groups, products := buf.groups[:0], buf.product[:0]
	nshards := len(ix.shards)
	bounds := buf.bounds[:0]
	for _, qt := range terms {
		df, ns := 0, 0
		if ix.terms != nil {
			e := ix.terms[qt.term]
			df, ns = int(e.df), int(e.ns)
			t := len(lists)
			lists = slices.Grow(lists, nshards)[:t+nshards]
			bounds = slices.Grow(bounds, nshards)[:t+nshards]
			clear(lists[t:])
			clear(bounds[t:])
			for _, ts := range ix.termShards[e.first : e.first+e.n] {
				lists[t+int(ts.shard)] = ts.span
				bounds[t+int(ts.shard)] = termBound{ts.maxImpact, ts.maxServer, ts.maxNameInv}
			}
		} else {
			for _, sh := range ix.shards {
				sp := sh.postings[qt.term]
				lists = append(lists, sp)
				df += int(sp.n)
				ns += int(sp.ns)
			}
		}
		// A query word most of whose documents belong to servers it names is a
		// product's name ("whoami on github"): that server's tools come first.
		product := qt.primary && ns > 0 && float64(ns) >= productShare*float64(df)
		cov.product = cov.product || product
		var w float32
		if df > 0 && (qt.primary || df <= minExpansionCut || float64(df) <= maxExpansionShare*n) {
			idf := float32(math.Log(1 + (n-float64(df)+0.5)/(float64(df)+0.5)))
			w = qt.weight * idf
		}
		weights = append(weights, w)
		bit := uint64(1) << qt.group
		if qt.primary {
			cov.primary[qt.group] = max(cov.primary[qt.group], w)
		} else {
			cov.expansion[qt.group] = max(cov.expansion[qt.group], w)
			bit <<= maxGroups
		}
		if qt.group == 0 {
			bit |= bit << verbShift
		}
		masks = append(masks, flagged(bit, product))
		var g uint32
		if w > 0 {
			g = 1 << qt.group
		}
		groups, products = append(groups, g), append(products, product)
	}
	cov.normalize()
	buf.lists, buf.weights, buf.bounds, buf.masks = lists, weights, bounds, masks
	buf.groups, buf.product = groups, products
}

// worse is the heap's order: the worst kept hit on top.
func worse(a, b scoredDoc) bool { return better(b, a) }

func siftUp(h []scoredDoc, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !worse(h[i], h[p]) {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func siftDown(h []scoredDoc, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		w := l
		if r := l + 1; r < len(h) && worse(h[r], h[l]) {
			w = r
		}
		if !worse(h[w], h[i]) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// firstSentence splits a description after its first sentence: at the first ". ",
// "! ", "? " or line break.
func firstSentence(d string) (first, rest string) {
	for i := 0; i+1 < len(d); i++ {
		switch d[i] {
		case '.', '!', '?':
			if d[i+1] == ' ' || d[i+1] == '\n' {
				return d[:i+1], d[i+1:]
			}
		case '\n':
			return d[:i], d[i:]
		}
	}
	return d, ""
}
