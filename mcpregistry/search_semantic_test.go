package mcpregistry

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymcp/caddymcp/mcpregistry/embeddings"
	"github.com/caddymcp/caddymcp/mcpregistry/embeddings/embeddingstest"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/search"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// semanticConfig is a registry of three servers whose search uses the provider at srv.
func semanticConfig(t *testing.T, db string, srv *embeddingstest.Server, timeout time.Duration) map[string]any {
	t.Helper()
	return map[string]any{
		"storage":                map[string]any{"path": db},
		"health":                 map[string]any{"disabled": true},
		"disable_builtin_server": true,
		"servers": []map[string]any{
			{"name": "objects", "upstream": "http://127.0.0.1:9/objects/mcp", "description": "Blob store"},
			{"name": "tracker", "upstream": "http://127.0.0.1:9/tracker/mcp", "description": "Issue tracker"},
			{"name": "browser", "upstream": "http://127.0.0.1:9/browser/mcp", "description": "Headless browser"},
		},
		"search": map[string]any{"embeddings": map[string]any{
			"url": srv.Endpoint(), "model": "bow-128", "api_key": "{env.CADDYMCP_TEST_EMBEDDINGS_KEY}",
			"timeout": int64(timeout), "batch_size": 2,
		}},
	}
}

var semanticTools = map[string][]model.ToolInfo{
	"objects": {{Name: "put_object", Description: "Store a blob in object storage"},
		{Name: "get_object", Description: "Read a blob from object storage"}},
	"tracker": {{Name: "create_issue", Description: "Open an issue"}, {Name: "list_issues", Description: "List issues"}},
	"browser": {{Name: "navigate_back", Description: "Go back to the previous page"}},
}

// setTools records tools for a server as a health check would.
func setTools(app *App, server string, tools []model.ToolInfo) {
	prev, _ := app.Health(server)
	app.health.byServer.Store(server, &model.ServerHealth{Server: server, Status: model.HealthHealthy, Tools: tools})
	app.searchToolsRecorded(server, prev.Tools, tools)
}

// waitVectors waits until the app has n document vectors.
func waitVectors(t *testing.T, app *App, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if vs := app.semantic.vectors.Load(); vs != nil && vs.Len() == n {
			return
		}
		if time.Now().After(deadline) {
			got := -1
			if vs := app.semantic.vectors.Load(); vs != nil {
				got = vs.Len()
			}
			t.Fatalf("vectors for %d documents, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func top(hits []search.Hit) string {
	if len(hits) == 0 {
		return ""
	}
	return hits[0].Server + "/" + hits[0].Tool
}

// TestSemanticSearch runs the registry against a real embeddings provider on the
// loopback: a paraphrase with no word in common with a tool finds it; tools are
// embedded once per change of their text, and not again after a reload; an outage,
// a slow provider and bad answers leave searches lexical, never failing.
func TestSemanticSearch(t *testing.T) {
	t.Setenv("CADDYMCP_TEST_EMBEDDINGS_KEY", "sk-semantic-test")
	srv := embeddingstest.New(128)
	defer srv.Close()
	// The provider knows words the ranker does not: a quib is storage, to zorble is to
	// store.
	srv.Concept = map[string]string{"quib": "storage", "zorble": "store"}
	srv.Delay = 3 * time.Second
	srv.Oversize = embeddings.DefaultMaxResponseBytes + 1
	defer func(d time.Duration) { providerRetry = d }(providerRetry)
	providerRetry = 200 * time.Millisecond
	db := filepath.Join(t.TempDir(), "registry.db")
	loadConfig(t, semanticConfig(t, db, srv, 300*time.Millisecond))
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	for name, tools := range semanticTools {
		setTools(app, name, tools)
	}
	const docs = 3 + 5
	waitVectors(t, app, docs)
	if got := srv.Texts.Load(); got != docs {
		t.Fatalf("%d texts embedded for %d documents", got, docs)
	}
	for _, a := range srv.Auth() {
		if a != "Bearer sk-semantic-test" {
			t.Fatalf("Authorization %q: the api_key placeholder was not resolved", a)
		}
	}

	const paraphrase = "zorble into a quib"
	if hits := app.search.index.Load().Search(paraphrase, 10); len(hits) != 0 {
		t.Fatalf("the lexical ranking alone finds %v: the test proves nothing", hits)
	}
	if got := top(app.Search(paraphrase, 5)); got != "objects/put_object" {
		t.Fatalf("paraphrase: top hit %q, want objects/put_object", got)
	}
	if got := srv.Texts.Load(); got != docs+1 {
		t.Fatalf("one search embedded %d texts", got-docs)
	}
	// Lexical and semantic hits are fused: the lexical best stays in.
	if hits := app.Search("create issue", 3); top(hits) != "tracker/create_issue" {
		t.Fatalf("create issue: %v", hits)
	}

	// One new tool: one text embedded, nothing else.
	before := srv.Texts.Load()
	setTools(app, "browser", append(semanticTools["browser"], model.ToolInfo{Name: "screenshot", Description: "Capture the page"}))
	waitVectors(t, app, docs+1)
	if got := srv.Texts.Load() - before; got != 1 {
		t.Fatalf("adding a tool embedded %d texts, want 1: %q", got, srv.Inputs()[before:])
	}
	// A reload with the same store embeds nothing again (the vectors are stored).
	before = srv.Texts.Load()
	loadConfig(t, semanticConfig(t, db, srv, 300*time.Millisecond))
	app = runningApp(t)
	for name, tools := range semanticTools {
		setTools(app, name, tools)
	}
	waitVectors(t, app, docs)
	if got := srv.Texts.Load() - before; got != 0 {
		t.Fatalf("a reload embedded %d texts again: %q", got, srv.Inputs()[before:])
	}
	if got := top(app.Search(paraphrase, 5)); got != "objects/put_object" {
		t.Fatalf("after reload: top hit %q", got)
	}

	// Outage: lexical results, no error; searches stop asking until the retry time.
	st := app.semantic
	srv.SetMode(embeddingstest.Down)
	requests := srv.Requests.Load()
	if hits := app.Search("create issue tracker", 3); top(hits) != "tracker/create_issue" {
		t.Fatalf("during an outage: %v", hits)
	}
	logged := st.loggedAt.Load()
	if logged == 0 || st.downUntil.Load() <= time.Now().UnixNano() {
		t.Fatal("the outage was not noted")
	}
	if hits := app.Search("list issues please", 3); top(hits) != "tracker/list_issues" {
		t.Fatalf("during an outage: %v", hits)
	}
	if got := srv.Requests.Load() - requests; got != 1 {
		t.Fatalf("%d requests to a provider known to be down, want 1", got)
	}
	time.Sleep(providerRetry)
	// Asked again after the retry time; the second failure within a minute logs
	// nothing new.
	srv.SetMode(embeddingstest.NotJSON)
	app.Search("open a ticket", 3)
	if st.loggedAt.Load() != logged {
		t.Fatal("a second failure within a minute was logged again")
	}
	time.Sleep(providerRetry)
	srv.SetMode(embeddingstest.OK)
	if got := top(app.Search("zorble to the quib", 5)); got != "objects/put_object" {
		t.Fatalf("after the outage: top hit %q", got)
	}

	// A slow provider: the search answers lexically within the timeout.
	srv.SetMode(embeddingstest.Slow)
	start := time.Now()
	if hits := app.Search("navigate back", 3); top(hits) != "browser/navigate_back" {
		t.Fatalf("slow provider: %v", hits)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a slow provider held the search %v", d)
	}

	// Bad answers while embedding a new tool: no vector is stored from them, and the
	// tool is embedded once the provider answers well.
	time.Sleep(providerRetry)
	for _, mode := range []embeddingstest.Mode{embeddingstest.WrongDims, embeddingstest.Miscounted, embeddingstest.Oversized} {
		srv.SetMode(mode)
		setTools(app, "tracker", append(semanticTools["tracker"], model.ToolInfo{Name: fmt.Sprintf("close_issue_%d", mode), Description: "Close an issue"}))
		time.Sleep(semanticTick + providerRetry)
		if vs := st.vectors.Load(); vs.Len() != docs {
			t.Fatalf("mode %d: vectors for %d documents", mode, vs.Len())
		}
		if hits := app.Search("close issue", 3); len(hits) == 0 {
			t.Fatalf("mode %d: no hits", mode)
		}
	}
	srv.SetMode(embeddingstest.OK)
	waitVectors(t, app, docs+1)

	// A disabled server's hits go at once, before its vectors do.
	if _, err := app.SetEnabled(context.Background(), "objects", false, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	for _, h := range app.Search(paraphrase, 10) {
		if h.Server == "objects" {
			t.Fatalf("a disabled server found: %+v", h)
		}
	}
}

func TestSearchCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`mcp_registry {
		search {
			embeddings http://localhost:11434/v1/embeddings {
				model nomic-embed-text
				api_key {env.EMBED_KEY}
				timeout 1500ms
				batch_size 64
			}
		}
	}`)
	a := new(App)
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	e := a.SearchConfig.Embeddings
	if e.URL != "http://localhost:11434/v1/embeddings" || e.Model != "nomic-embed-text" || e.APIKey != "{env.EMBED_KEY}" ||
		time.Duration(e.Timeout) != 1500*time.Millisecond || e.BatchSize != 64 {
		t.Fatalf("%+v", e)
	}
	for _, bad := range []string{
		`{ search { embeddings } }`,
		`{ search { embeddings http://x/v1/embeddings } }`,
		`{ search { embeddings http://x/v1/embeddings { model m; batch_size 0 } } }`,
		`{ search { embeddings http://x/v1/embeddings { model m; timeout -1s } } }`,
		`{ search { embeddings http://x/v1/embeddings { model m; dims 3 } } }`,
		`{ search { embeddings http://x/v1/embeddings { model m; model n } } }`,
		`{ search { vectors } }`,
		`{ search { embeddings http://x { model m } } search }`,
	} {
		if err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_registry " + strings.ReplaceAll(bad, ";", "\n"))); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	for _, bad := range []*EmbeddingsConfig{
		{URL: "ftp://x/v1/embeddings", Model: "m"},
		{URL: "http:///v1/embeddings", Model: "m"},
		{URL: "http://x/v1/embeddings"},
		{URL: "http://x/v1/embeddings", Model: "m", BatchSize: 10000},
	} {
		a := &App{SearchConfig: &SearchConfig{Embeddings: bad}}
		if err := a.provisionEmbeddings(); err == nil {
			t.Errorf("provisioned %+v", bad)
		}
	}
}

// TestSemanticDocsBounded: a server registered with an enormous tool description
// costs the provider one bounded text, not the whole description.
func TestSemanticDocsBounded(t *testing.T) {
	st := &semanticState{model: "m"}
	huge := strings.Repeat("exfiltrate ", 100000)
	docs := st.semanticDocs([]search.Source{{
		Server: &model.Server{Name: "evil", Description: huge},
		Tools:  []model.ToolInfo{{Name: "t", Description: huge}, {Name: "u", Description: "short"}},
	}})
	if len(docs) != 3 {
		t.Fatalf("%d documents", len(docs))
	}
	for _, d := range docs {
		if len(d.text) > embedTextBytes {
			t.Errorf("%s/%s: %d bytes embedded, want at most %d", d.Server, d.Tool, len(d.text), embedTextBytes)
		}
	}
	if docs[1].key == docs[2].key || docs[1].key != st.vectorKey(docs[1].text) {
		t.Error("vector keys do not follow the texts")
	}
	other := &semanticState{model: "other"}
	if other.vectorKey(docs[2].text) == docs[2].key {
		t.Error("another model shares the vector key")
	}
}

// TestPruneVectors: stored vectors of texts no longer indexed go at the second check
// that finds them unused, not the first (a restart before tools are rediscovered).
func TestPruneVectors(t *testing.T) {
	bolt, err := store.OpenBolt(filepath.Join(t.TempDir(), "r.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	db := NewCollectionStore(bolt)
	put := func(keys ...string) {
		if err := db.Update(func(c Collections) error {
			col, err := c.Collection(vectorsCollection)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := col.Put(k, encodeVector([]float32{1, 0})); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	stored := func() (keys []string) {
		db.View(func(c Collections) error {
			col, _ := c.Collection(vectorsCollection)
			return col.ForEach(func(k string, _ []byte) error { keys = append(keys, k); return nil })
		})
		return keys
	}
	put("a", "b", "c")
	a := &App{semantic: &semanticState{}}
	keep := map[string][]float32{"a": {1, 0}}
	a.pruneVectors(db, keep)
	if got := stored(); len(got) != 3 {
		t.Fatalf("first check deleted: %v", got)
	}
	keep["b"] = []float32{1, 0} // b is back
	a.pruneVectors(db, keep)
	if got := strings.Join(stored(), ","); got != "a,b" {
		t.Fatalf("after the second check: %s, want a,b", got)
	}
}
