package registryapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	caddy "github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/v01"
)
import "github.com/caddymcp/caddymcp/mcpregistry"

// sourceRegistry is a second, real registry in the test process: an mcp_registry App
// provisioned in its own Caddy context (never started: Caddy runs one config at a time,
// and that one is the target's) whose v0.1 API is served over HTTP. Every answer is
// validated against the official server.json schema, and the queries are recorded.
type sourceRegistry struct {
	app     *mcpregistry.App
	url     string
	mu      sync.Mutex
	queries []url.Values
}

func (s *sourceRegistry) lastQueries() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.queries
	s.queries = nil
	return out
}

func newSourceRegistry(t *testing.T) *sourceRegistry {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"apps": map[string]any{"mcp_registry": map[string]any{
		"storage":                map[string]any{"path": filepath.Join(t.TempDir(), "source.db")},
		"health":                 map[string]any{"disabled": true},
		"disable_builtin_server": true,
	}}})
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, err := caddy.ProvisionContext(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := ctx.App("mcp_registry")
	if err != nil {
		t.Fatal(err)
	}
	src := &sourceRegistry{app: mod.(*mcpregistry.App)}
	t.Cleanup(func() { src.app.Cleanup() })
	h := &RegistryAPI{Namespace: "com.source", GatewayPrefix: "/gw"}
	h.Prefix = apiCleanPrefix(h.Prefix)
	h.GatewayPrefix = apiCleanPrefix(h.GatewayPrefix)
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	h.app = src.app
	schema := loadServerSchema(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src.mu.Lock()
		src.queries = append(src.queries, r.URL.Query())
		src.mu.Unlock()
		rec := httptest.NewRecorder()
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusNotFound)
			return nil
		})
		if err := h.ServeHTTP(rec, r, next); err != nil {
			t.Errorf("source ServeHTTP: %v", err)
		}
		if rec.Code == http.StatusOK && strings.HasPrefix(r.URL.Path, "/v0.1/servers") {
			var list struct {
				Servers []map[string]any `json:"servers"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
				t.Errorf("source answer is not a list: %v", err)
			}
			for _, e := range list.Servers {
				if err := schema.Validate(e["server"]); err != nil {
					t.Errorf("source entry %v does not validate: %v", e["server"], err)
				}
				off, _ := e["_meta"].(map[string]any)[v01.OfficialMetaKey].(map[string]any)
				if st := off["status"]; st != "active" && st != "deleted" || off["updatedAt"] == nil || off["isLatest"] != true {
					t.Errorf("source entry meta: %v", off)
				}
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(ts.Close)
	src.url = ts.URL
	return src
}

func (s *sourceRegistry) put(t *testing.T, srv *model.Server) {
	t.Helper()
	srv.Enabled = true
	if _, err := s.app.Put(context.Background(), srv, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
}

// Two real registries: sync creates, updates and deletes imported records in the
// target (routable at once), never touches records that did not come from the source,
// and uses updated_since after the first, full sync.
func TestSyncBetweenRegistries(t *testing.T) {
	src := newSourceRegistry(t)
	src.put(t, &model.Server{Name: "s1", Upstream: "http://127.0.0.1:6001/mcp", Description: "one"})
	src.put(t, &model.Server{Name: "s2", Upstream: "http://127.0.0.1:6002/sse", Transport: model.TransportSSE, Description: "two"})
	src.put(t, &model.Server{Name: "s3", Upstream: "http://127.0.0.1:6003/mcp", Description: "three"})

	loadConfig(t, map[string]any{
		"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "target.db")},
		"runtime_upstreams": loopbackUpstreams,
		"health":            map[string]any{"disabled": true},
	})
	t.Cleanup(func() { caddy.Stop() })
	target := runningApp(t)
	ctx := context.Background()
	// Registered directly at the target under the name s3 would be imported as.
	if _, err := target.Put(ctx, &model.Server{Name: "src-s3", Upstream: "http://127.0.0.1:7003/mcp", Enabled: true}, 0); err != nil {
		t.Fatal(err)
	}
	// An earlier import from the source under another prefix: not this sync's record.
	if _, err := target.Put(ctx, &model.Server{Name: "old-s1", Upstream: "http://127.0.0.1:7001/mcp", Enabled: true,
		Origin: src.url + "#com.source/s1"}, 0); err != nil {
		t.Fatal(err)
	}
	// An import from the source that the source no longer lists (its tombstone purged).
	if _, err := target.Put(ctx, &model.Server{Name: "src-ghost", Upstream: "http://127.0.0.1:7002/mcp", Enabled: true,
		Origin: src.url + "#com.source/ghost"}, 0); err != nil {
		t.Fatal(err)
	}

	opts := mcpregistry.SyncOptions{From: src.url + "/v0.1/servers/", NamePrefix: "src-"}
	res, err := target.SyncFrom(ctx, opts)
	if err != nil || res.Created != 2 || res.Skipped != 1 || res.Deleted != 1 || res.From != src.url {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	if !strings.Contains(res.Skips[0].Reason, "not imported") || res.Skips[0].Name != "com.source/s3" {
		t.Errorf("skip of s3: %+v", res.Skips)
	}
	q := src.lastQueries()
	if len(q) != 1 || q[0].Get("updated_since") != "" || q[0].Get("include_deleted") != "true" ||
		q[0].Get("version") != "latest" || q[0].Get("limit") != "100" {
		t.Errorf("first sync queries: %v", q)
	}
	s1 := target.Lookup("src-s1")
	if s1 == nil || s1.Upstream != src.url+"/gw/s1/mcp" || s1.Transport != model.TransportStreamableHTTP || !s1.Enabled ||
		s1.Origin != src.url+"#com.source/s1" || s1.Description != "one" {
		t.Fatalf("src-s1: %+v", s1)
	}
	if s2 := target.Lookup("src-s2"); s2 == nil || s2.Upstream != src.url+"/gw/s2/sse" || s2.Transport != model.TransportSSE {
		t.Fatalf("src-s2: %+v", s2)
	}
	if s := target.Server("src-s3"); s == nil || s.Upstream != "http://127.0.0.1:7003/mcp" || s.Origin != "" {
		t.Errorf("the target's own src-s3 was changed: %+v", s)
	}
	if target.Server("src-ghost") != nil || target.Server("old-s1") == nil {
		t.Errorf("full sync sweep: src-ghost %v (want gone), old-s1 %v (want kept)", target.Server("src-ghost"), target.Server("old-s1"))
	}

	// At the source: s1 deleted, s2 changed, s3 deleted. The next sync asks for changes
	// only, and applies them.
	if err := src.app.Delete(ctx, "s1", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	if err := src.app.Delete(ctx, "s3", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	src.put(t, &model.Server{Name: "s2", Upstream: "http://127.0.0.1:6002/sse", Transport: model.TransportSSE, Description: "two, changed"})
	res, err = target.SyncFrom(ctx, opts)
	if err != nil || res.Deleted != 1 || res.Updated != 1 || res.Skipped != 1 {
		t.Fatalf("second sync: %+v %v", res, err)
	}
	q = src.lastQueries()
	if len(q) != 1 || q[0].Get("updated_since") == "" {
		t.Errorf("second sync queries: %v", q)
	}
	if target.Lookup("src-s1") != nil || target.Server("src-s1") != nil {
		t.Error("src-s1 deleted at the source is still routed at the target")
	}
	if s := target.Server("src-s2"); s == nil || s.Description != "two, changed" {
		t.Errorf("src-s2: %+v", s)
	}
	if s := target.Server("src-s3"); s == nil || s.Upstream != "http://127.0.0.1:7003/mcp" {
		t.Errorf("the target's own src-s3 was deleted by the sync: %+v", s)
	}
	if target.Server("old-s1") == nil {
		t.Error("old-s1 (another prefix) was deleted")
	}

	// Nothing changed: nothing written. Then the source re-creates s1: imported again.
	before := target.Server("src-s2").Revision
	if res, err := target.SyncFrom(ctx, opts); err != nil || res.Created+res.Updated+res.Deleted != 0 {
		t.Fatalf("idle sync: %+v %v", res, err)
	}
	if target.Server("src-s2").Revision != before {
		t.Error("an idle sync rewrote src-s2")
	}
	src.put(t, &model.Server{Name: "s1", Upstream: "http://127.0.0.1:6001/mcp", Description: "one again"})
	if res, err := target.SyncFrom(ctx, opts); err != nil || res.Created != 1 {
		t.Fatalf("re-created s1: %+v %v", res, err)
	}
	if s := target.Lookup("src-s1"); s == nil || s.Description != "one again" {
		t.Errorf("src-s1 again: %+v", s)
	}
}

// The periodic sync configured in the app: a full sync when the config starts, then
// every interval.
func TestSyncConfigured(t *testing.T) {
	src := newSourceRegistry(t)
	src.put(t, &model.Server{Name: "p1", Upstream: "http://127.0.0.1:6201/mcp"})
	loadConfig(t, map[string]any{
		"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "target.db")},
		"runtime_upstreams": loopbackUpstreams,
		"health":            map[string]any{"disabled": true},
		"sync":              []map[string]any{{"from": src.url, "interval": "1s", "name_prefix": "p-"}},
	})
	t.Cleanup(func() { caddy.Stop() })
	target := runningApp(t)
	if got := target.Sync[0]; got.From != src.url || time.Duration(got.Interval) != time.Second {
		t.Errorf("provisioned sync config: %+v", got)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("p-p1", func() bool { return target.Lookup("p-p1") != nil })
	src.put(t, &model.Server{Name: "p2", Upstream: "http://127.0.0.1:6202/mcp"})
	if err := src.app.Delete(context.Background(), "p1", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	waitFor("p-p2 and p-p1 gone", func() bool { return target.Lookup("p-p2") != nil && target.Lookup("p-p1") == nil })

	// Defaults and errors of the config.
	for _, tc := range []struct {
		sync []map[string]any
		want string
	}{
		{[]map[string]any{{"from": "ftp://x"}}, "http or https"},
		{[]map[string]any{{"from": src.url, "name_prefix": "Bad"}}, "name_prefix"},
		{[]map[string]any{{"from": src.url, "interval": "10ms"}}, "interval"},
		{[]map[string]any{{"from": src.url}, {"from": src.url + "/v0.1"}}, "twice"},
	} {
		cfg, _ := json.Marshal(map[string]any{"admin": noAdmin, "apps": map[string]any{"mcp_registry": map[string]any{
			"storage": map[string]any{"path": filepath.Join(t.TempDir(), "bad.db")}, "sync": tc.sync}}})
		if err := caddy.Load(cfg, true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sync %v: want an error mentioning %q, got %v", tc.sync, tc.want, err)
		}
	}
}
