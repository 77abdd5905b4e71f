package mcpregistry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/embeddings"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/search"
)

// SearchConfig configures the registry's search (search_tools and /api/search).
type SearchConfig struct {
	// Embeddings adds semantic ranking: servers and tools are embedded by an
	// OpenAI-compatible embeddings provider, and a search's results are the lexical
	// ranking fused with the nearest documents to the query's embedding (reciprocal
	// rank fusion). Without it, search is lexical only.
	Embeddings *EmbeddingsConfig `json:"embeddings,omitempty"`
}

// EmbeddingsConfig is an OpenAI-compatible /v1/embeddings endpoint (OpenAI, Azure
// OpenAI, Ollama, vLLM, LiteLLM, llama.cpp, …).
//
// Each server and tool is embedded once per change of its text (name, description,
// its server's name and description): vectors are stored in the registry's store
// under a hash of the model and the text, so a restart or a reload recomputes
// nothing, and a search costs one request, for the query. When the provider fails
// or is slow, searches are lexical (one log line a minute says so) until it answers
// again; a caller never sees an error from it.
type EmbeddingsConfig struct {
	// URL is the endpoint, e.g. http://localhost:11434/v1/embeddings (Ollama) or
	// https://api.openai.com/v1/embeddings. Required.
	URL string `json:"url"`
	// Model is the embeddings model the provider runs, e.g. nomic-embed-text or
	// text-embedding-3-small. Required. Changing it recomputes every vector.
	Model string `json:"model"`
	// APIKey is sent as a bearer token when set, normally a placeholder such as
	// {env.OPENAI_API_KEY} or {file./run/secrets/embeddings_key}. Never logged.
	APIKey string `json:"api_key,omitempty"`
	// Timeout bounds the request for a query's embedding; past it the search is
	// lexical. Default 2s. Requests embedding tools (in the background) get 15 times
	// as long.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// BatchSize is the number of texts per request when embedding tools. Default 32,
	// at most 512.
	BatchSize int `json:"batch_size,omitempty"`
}

const (
	defaultEmbeddingsTimeout = 2 * time.Second
	defaultEmbeddingsBatch   = 32
	maxEmbeddingsBatch       = 512
	// embedTextBytes bounds the text embedded for one document: names and the start
	// of the descriptions say what a tool is for.
	embedTextBytes = 2048
	// semanticDepth is how many hits of each ranking are fused.
	semanticDepth = 50
	// vectorsCollection holds the vectors in the registry's store, keyed by the hash
	// of model and text (see vectorKey).
	vectorsCollection = "search.vectors"
	// providerLogEvery bounds the log lines about a failing provider.
	providerLogEvery = time.Minute
	semanticTick     = time.Second
	queryVectorCache = 512
)

// vectorPruneEvery is how often stored vectors of texts no longer indexed are looked
// for (a variable for tests).
var vectorPruneEvery = 10 * time.Minute

// providerRetry is how long searches stay lexical after the provider failed (a
// variable for tests).
var providerRetry = 15 * time.Second

// provisionEmbeddings resolves the embeddings settings and sets their defaults.
func (a *App) provisionEmbeddings() error {
	if a.SearchConfig == nil || a.SearchConfig.Embeddings == nil {
		return nil
	}
	e := a.SearchConfig.Embeddings
	repl := caddy.NewReplacer()
	endpoint := repl.ReplaceKnown(e.URL, "")
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("mcp_registry: search embeddings url %q must be an http(s) URL", e.URL)
	}
	model := repl.ReplaceKnown(e.Model, "")
	if strings.TrimSpace(model) == "" {
		return errors.New("mcp_registry: search embeddings needs a model")
	}
	if e.Timeout == 0 {
		e.Timeout = caddy.Duration(defaultEmbeddingsTimeout)
	}
	if e.Timeout < 0 {
		return fmt.Errorf("mcp_registry: search embeddings timeout %v must be positive", time.Duration(e.Timeout))
	}
	if e.BatchSize == 0 {
		e.BatchSize = defaultEmbeddingsBatch
	}
	if e.BatchSize < 1 || e.BatchSize > maxEmbeddingsBatch {
		return fmt.Errorf("mcp_registry: search embeddings batch_size %d must be 1-%d", e.BatchSize, maxEmbeddingsBatch)
	}
	a.semantic = &semanticState{
		embedder:   &embeddings.Client{URL: endpoint, Model: model, APIKey: repl.ReplaceAll(e.APIKey, "")},
		model:      model,
		timeout:    time.Duration(e.Timeout),
		batch:      e.BatchSize,
		retryAfter: providerRetry,
		queries:    map[string][]float32{},
	}
	return nil
}

// semanticState is the App's embeddings of its servers and tools and what keeps them
// current: a background worker (startSemantic) embeds what changed, and searches
// read the immutable snapshot.
type semanticState struct {
	embedder   embeddings.Embedder
	model      string
	timeout    time.Duration
	batch      int
	retryAfter time.Duration

	vectors   atomic.Pointer[search.Vectors]
	downUntil atomic.Int64 // unix nanoseconds: searches stay lexical until then
	loggedAt  atomic.Int64 // unix nanoseconds of the last log line about the provider
	dims      atomic.Int64 // the model's dimension: of the first vector seen
	embedded  atomic.Int64 // texts sent to the provider for documents (for tests and metrics)

	// Owned by the worker:
	db        *CollectionStore     // the registry's store, taken when the worker starts
	known     map[string][]float32 // vector key → vector, of the current documents
	lastIndex *search.Index        // the search snapshot the vectors were last made for
	complete  bool                 // every current document has its vector
	stale     map[string]bool      // stored vectors not indexed at the last prune check
	prunedAt  time.Time
	pruneDue  bool // the documents changed since the last prune check

	qmu     sync.Mutex
	queries map[string][]float32 // recent query vectors (SearchVisible asks again for more)
}

// semanticDoc is one document to embed.
type semanticDoc struct {
	search.VectorDoc
	text, key string
}

// vectorKey names a text's vector in the store: the same text under the same model
// is embedded once.
func (st *semanticState) vectorKey(text string) string {
	h := sha256.Sum256([]byte(st.model + "\x00" + text))
	return hex.EncodeToString(h[:])
}

// semanticDocs returns the documents of sources: each server and each tool, with the
// text that is embedded.
func (st *semanticState) semanticDocs(sources []search.Source) []semanticDoc {
	var out []semanticDoc
	add := func(server, tool, desc, text string) {
		if len(text) > embedTextBytes {
			text = strings.ToValidUTF8(text[:embedTextBytes], "")
		}
		out = append(out, semanticDoc{VectorDoc: search.VectorDoc{Server: server, Tool: tool, Description: desc},
			text: text, key: st.vectorKey(text)})
	}
	for _, src := range sources {
		s := src.Server
		serverText := s.Name + ": " + s.Description
		if len(s.Tags) > 0 {
			serverText += " (" + strings.Join(s.Tags, ", ") + ")"
		}
		add(s.Name, "", s.Description, serverText)
		for _, t := range src.Tools {
			add(s.Name, t.Name, t.Description, toolText(s, t))
		}
	}
	return out
}

// toolText is what is embedded for a tool: its name in words, its description and its
// server's, which often says the domain the tool's own text leaves out.
func toolText(s *model.Server, t model.ToolInfo) string {
	name := strings.NewReplacer("_", " ", "-", " ", ".", " ").Replace(t.Name)
	return name + ": " + t.Description + "\n(" + s.Name + ": " + s.Description + ")"
}

// providerDown records a failure: searches stay lexical for a while, and one log line
// a minute says why.
func (a *App) providerDown(st *semanticState, during string, err error) {
	now := time.Now()
	st.downUntil.Store(now.Add(st.retryAfter).UnixNano())
	last := st.loggedAt.Load()
	if now.Sub(time.Unix(0, last)) >= providerLogEvery && st.loggedAt.CompareAndSwap(last, now.UnixNano()) {
		if a.logger != nil {
			a.logger.Warn("embeddings provider unavailable: search is lexical until it answers",
				zap.String("during", during), zap.Error(err), zap.Duration("retry_after", st.retryAfter))
		}
	}
}

// checkDims fails unless every vector has the dimension of the first ever seen (a
// provider that answers another one changed its model under the same name, or is
// broken: either way, its vectors cannot be compared with the stored ones).
func (st *semanticState) checkDims(vs [][]float32) error {
	for _, v := range vs {
		if len(v) == 0 {
			return errors.New("an empty vector")
		}
		want := st.dims.Load()
		if want == 0 && st.dims.CompareAndSwap(0, int64(len(v))) {
			want = int64(len(v))
		}
		if int64(len(v)) != want {
			return fmt.Errorf("a vector of %d dimensions; the model's have %d", len(v), want)
		}
	}
	return nil
}

// queryVector returns the embedding of query, or nil when semantic ranking is off, has
// no documents yet, or the provider fails (then the search is lexical).
func (a *App) queryVector(ctx context.Context, query string) []float32 {
	st := a.semantic
	if st == nil {
		return nil
	}
	if vs := st.vectors.Load(); vs == nil || vs.Len() == 0 {
		return nil
	}
	st.qmu.Lock()
	v, ok := st.queries[query]
	st.qmu.Unlock()
	if ok {
		return v
	}
	if time.Now().UnixNano() < st.downUntil.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, st.timeout)
	defer cancel()
	vs, err := st.embedder.Embed(ctx, []string{query})
	if err == nil && len(vs) != 1 {
		err = fmt.Errorf("%d vectors for one query", len(vs))
	}
	if err == nil {
		err = st.checkDims(vs)
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
			return nil // the caller went away: not the provider's fault
		}
		a.providerDown(st, "query", err)
		return nil
	}
	st.qmu.Lock()
	if len(st.queries) >= queryVectorCache {
		clear(st.queries)
	}
	st.queries[query] = vs[0]
	st.qmu.Unlock()
	return vs[0]
}

// updateVectors embeds the documents of the current search index that have no vector
// yet (reading the store first), keeps the store to the current documents, and
// publishes the new snapshot. It runs on the worker only.
func (a *App) updateVectors(ctx context.Context) {
	st := a.semantic
	ix := st.lastIndex
	if cur := a.search.index.Load(); cur != nil {
		ix = cur
	}
	if ix == st.lastIndex && st.complete {
		return
	}
	if time.Now().UnixNano() < st.downUntil.Load() {
		return
	}
	docs := st.semanticDocs(a.searchSources())
	next := make(map[string][]float32, len(docs))
	var missing []int // indexes into docs
	for i, d := range docs {
		if v := st.known[d.key]; v != nil {
			next[d.key] = v
		} else if _, dup := next[d.key]; !dup {
			missing = append(missing, i)
			next[d.key] = nil
		}
	}
	db := st.db
	if len(missing) > 0 {
		// Vectors computed before (another config, a restart).
		_ = db.View(func(c Collections) error {
			col, err := c.Collection(vectorsCollection)
			if err != nil {
				return err
			}
			for _, i := range missing {
				if raw, err := col.Get(docs[i].key); err == nil {
					if v := decodeVector(raw); v != nil && st.checkDims([][]float32{v}) == nil {
						next[docs[i].key] = v
					}
				}
			}
			return nil
		})
	}
	var todo []int
	for _, i := range missing {
		if next[docs[i].key] == nil {
			todo = append(todo, i)
		}
	}
	complete := true
	for len(todo) > 0 && ctx.Err() == nil {
		n := min(st.batch, len(todo))
		batch := todo[:n]
		todo = todo[n:]
		texts := make([]string, len(batch))
		for k, i := range batch {
			texts[k] = docs[i].text
		}
		bctx, cancel := context.WithTimeout(ctx, 15*st.timeout)
		vs, err := st.embedder.Embed(bctx, texts)
		cancel()
		st.embedded.Add(int64(len(texts)))
		if err == nil {
			err = st.checkDims(vs)
		}
		if err != nil {
			if ctx.Err() == nil {
				a.providerDown(st, "embedding tools", err)
			}
			complete = false
			break
		}
		err = db.Update(func(c Collections) error {
			col, err := c.Collection(vectorsCollection)
			if err != nil {
				return err
			}
			for k, i := range batch {
				if err := col.Put(docs[i].key, encodeVector(vs[k])); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && a.logger != nil {
			a.logger.Warn("storing tool embeddings", zap.Error(err))
		}
		for k, i := range batch {
			next[docs[i].key] = vs[k]
		}
	}
	// Publish what there is.
	vdocs := make([]search.VectorDoc, 0, len(docs))
	for _, d := range docs {
		v := next[d.key]
		if v == nil {
			complete = false
			continue
		}
		d.Vector = v
		vdocs = append(vdocs, d.VectorDoc)
	}
	st.vectors.Store(search.NewVectors(vdocs, int(st.dims.Load())))
	changed := len(next) != len(st.known)
	for k := range next {
		if _, ok := st.known[k]; !ok {
			changed = true
			break
		}
	}
	st.known, st.lastIndex, st.complete = next, ix, complete
	if changed {
		st.pruneDue = true
	}
	if complete && st.pruneDue && time.Since(st.prunedAt) >= vectorPruneEvery {
		a.pruneVectors(db, next)
		st.prunedAt, st.pruneDue = time.Now(), len(st.stale) > 0
	}
}

// pruneVectors deletes the stored vectors of texts that were not indexed at this
// check nor at the one before (vectorPruneEvery earlier): a server whose tools are
// not rediscovered yet after a restart, or that is disabled for a moment, keeps them.
func (a *App) pruneVectors(db *CollectionStore, keep map[string][]float32) {
	st := a.semantic
	stale := map[string]bool{}
	err := db.Update(func(c Collections) error {
		col, err := c.Collection(vectorsCollection)
		if err != nil {
			return err
		}
		clear(stale)
		var expired []string
		if err := col.ForEach(func(k string, _ []byte) error {
			if _, ok := keep[k]; !ok {
				if st.stale[k] {
					expired = append(expired, k)
				} else {
					stale[k] = true
				}
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range expired {
			if err := col.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		st.stale = stale
	}
	if err != nil && a.logger != nil {
		a.logger.Warn("pruning stale tool embeddings", zap.Error(err))
	}
}

// encodeVector stores a vector as little-endian float32s.
func encodeVector(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// decodeVector reads encodeVector's bytes; nil when they cannot be a vector.
func decodeVector(raw []byte) []float32 {
	if len(raw) == 0 || len(raw)%4 != 0 || len(raw)/4 > embeddings.MaxDimensions {
		return nil
	}
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if math.IsNaN(float64(v[i])) || math.IsInf(float64(v[i]), 0) {
			return nil
		}
	}
	return v
}

// startSemantic keeps the embeddings current until the App's context ends.
func (a *App) startSemantic() {
	if a.semantic == nil || a.ctx.Context == nil {
		return
	}
	db, err := a.CollectionStore()
	if err != nil {
		return
	}
	a.semantic.db = db
	ctx := a.ctx
	logger := a.logger
	if logger == nil {
		logger = zap.NewNop()
	}
	step := func() {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("updating search embeddings panicked", zap.Any("panic", r), zap.Stack("stack"))
			}
		}()
		a.updateVectors(ctx)
	}
	go func() {
		tick := time.NewTicker(semanticTick)
		defer tick.Stop()
		for {
			step()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// semanticHits returns the documents nearest to qv, or nil. The vectors can trail a
// write by a moment: hits of servers since disabled or removed, and of tools since
// gone, are left out, so that a search that follows a write sees it.
func (a *App) semanticHits(qv []float32, depth int) []search.Hit {
	if qv == nil || a.semantic == nil {
		return nil
	}
	hits := a.semantic.vectors.Load().Nearest(qv, depth)
	out := hits[:0]
	for _, h := range hits {
		s := a.Server(h.Server)
		if s == nil || !s.Enabled {
			continue
		}
		if h.Tool != "" && !slices.ContainsFunc(a.ToolsOf(s), func(t model.ToolInfo) bool { return t.Name == h.Tool }) {
			continue
		}
		out = append(out, h)
	}
	return out
}
