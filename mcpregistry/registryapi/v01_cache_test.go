package registryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/v01"
)

// v01Body GETs target from h and returns the status and the body's bytes.
func v01Body(t *testing.T, h http.Handler, target, host string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if host != "" {
		req.Host = host
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// TestV01CacheIdenticalBytes: every list page the cached renderer writes is byte for
// byte what encoding/json writes for the same page (the renderer before the cache),
// under each handler setting that shapes an entry, for request-derived origins too,
// with tombstones merged in, and on a second (cache-hit) request as on the first.
func TestV01CacheIdenticalBytes(t *testing.T) {
	queries := []string{
		"", "?limit=1", "?limit=3", "?limit=100", "?search=postgres", "?search=A", "?version=latest",
		"?version=1.0.1", "?include_deleted=true", "?include_deleted=true&limit=2",
		"?updated_since=2000-01-01T00:00:00Z", "?cursor=bm90LWEtY3Vyc29y", // "not-a-cursor": no namespace
		"?limit=abc", "?cursor=!!", "?updated_since=yesterday",
	}
	for _, tc := range []struct {
		name string
		h    *RegistryAPI
		host string
	}{
		{"public_url", &RegistryAPI{Namespace: "com.example", PublicURL: "https://mcp.example.com", GatewayPrefix: "/servers"}, ""},
		{"auth header", &RegistryAPI{Namespace: "com.example", AuthHeaderRequired: true}, "gw.example:8443"},
		{"host to escape", &RegistryAPI{}, "a&b<c>.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := v01Fixture(t, tc.h)
			ctx := context.Background()
			if err := tc.h.app.Delete(ctx, "a2", model.AnyRevision); err != nil {
				t.Fatal(err)
			}
			if _, err := tc.h.app.Put(ctx, &model.Server{Name: "b-escape", Upstream: "http://127.0.0.1:4000/mcp", Description: "quote \" and \\ and <tag> &amp; \u2028 " + strings.Repeat("ü", 120), Enabled: true}, 0); err != nil {
				t.Fatal(err)
			}
			// Add the pages a cursor walk visits.
			qs := append([]string(nil), queries...)
			code, first := v01Body(t, h, "/v0.1/servers?limit=2&include_deleted=true", tc.host)
			for code == http.StatusOK {
				var page v01.ServerList
				if err := json.Unmarshal(first, &page); err != nil {
					t.Fatal(err)
				}
				if page.Metadata.NextCursor == "" {
					break
				}
				q := "?limit=2&include_deleted=true&cursor=" + page.Metadata.NextCursor
				qs = append(qs, q)
				code, first = v01Body(t, h, "/v0.1/servers"+q, tc.host)
			}
			if len(qs) < len(queries)+3 {
				t.Fatalf("the cursor walk visited %d pages", len(qs)-len(queries))
			}
			for _, q := range qs {
				tc.h.v01.off = true
				wantCode, want := v01Body(t, h, "/v0.1/servers"+q, tc.host)
				tc.h.v01.off = false
				for round := range 2 { // a miss renders, a hit reuses
					code, got := v01Body(t, h, "/v0.1/servers"+q, tc.host)
					if code != wantCode || !bytes.Equal(got, want) {
						t.Fatalf("GET %s (round %d): cached %d\n%s\nencoding/json %d\n%s", q, round, code, got, wantCode, want)
					}
				}
			}
			if tbl := tc.h.v01.table.Load(); tbl == nil || tbl.entries[0].Load() == nil {
				t.Error("nothing was cached")
			}
		})
	}
}

// TestV01CacheUpdateVisible: a change of a server (a new revision) and a change of the
// request's origin are in the very next page; so are a disabled and a deleted server's
// absence, and a change of the handler's settings.
func TestV01CacheUpdateVisible(t *testing.T) {
	api := &RegistryAPI{Namespace: "com.example"}
	h := v01Fixture(t, api)
	ctx := context.Background()
	page := func(host string) v01.ServerList {
		t.Helper()
		code, body := v01Body(t, h, "/v0.1/servers?limit=100", host)
		if code != http.StatusOK {
			t.Fatalf("HTTP %d: %s", code, body)
		}
		var p v01.ServerList
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	entry := func(p v01.ServerList, name string) *v01.ServerResponse {
		for i := range p.Servers {
			if p.Servers[i].Server.Name == "com.example/"+name {
				return &p.Servers[i]
			}
		}
		return nil
	}
	p := page("one.example")
	a1 := entry(p, "a1")
	if a1 == nil || a1.Server.Description != "Server number 1" || a1.Server.Remotes[0].URL != "http://one.example/a1/mcp" {
		t.Fatalf("a1 = %+v", a1)
	}
	version := a1.Server.Version

	cur := api.app.Server("a1")
	upd := *cur
	upd.Description = "Updated description"
	upd.Transport = model.TransportSSE
	upd.Upstream = "http://127.0.0.1:3001/sse"
	if _, err := api.app.Put(ctx, &upd, cur.Revision); err != nil {
		t.Fatal(err)
	}
	p = page("two.example")
	a1 = entry(p, "a1")
	if a1 == nil || a1.Server.Description != "Updated description" || a1.Server.Version == version ||
		a1.Server.Remotes[0].URL != "http://two.example/a1/sse" || a1.Server.Remotes[0].Type != string(model.TransportSSE) {
		t.Fatalf("after the update, a1 = %+v", a1)
	}
	if e := entry(p, "a2"); e == nil || e.Server.Remotes[0].URL != "http://two.example/a2/mcp" {
		t.Fatalf("a2 = %+v", e)
	}

	if _, err := api.app.SetEnabled(ctx, "a2", false, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	if err := api.app.Delete(ctx, "a6", model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	p = page("two.example")
	if entry(p, "a2") != nil || entry(p, "a6") != nil {
		t.Fatalf("disabled or deleted server listed: %+v", p.Servers)
	}

	api.AuthHeaderRequired = true
	p = page("two.example")
	if e := entry(p, "a3"); e == nil || len(e.Server.Remotes[0].Headers) != 1 {
		t.Fatalf("after auth_header_required, a3 = %+v", e)
	}
	api.GatewayPrefix = "/gw"
	if e := entry(page("two.example"), "a3"); e == nil || e.Server.Remotes[0].URL != "http://two.example/gw/legacy/sse" {
		t.Fatalf("after gateway_prefix, a3 = %+v", e)
	}
}

// TestV01CacheBounded: the cache holds at most one entry per server of the registry,
// and carries entries over to the next snapshot of the index by name.
func TestV01CacheBounded(t *testing.T) {
	api := &RegistryAPI{Namespace: "com.example"}
	h := v01Fixture(t, api)
	ctx := context.Background()
	get := func() {
		t.Helper()
		if code, body := v01Body(t, h, "/v0.1/servers?limit=100", ""); code != http.StatusOK {
			t.Fatalf("HTTP %d: %s", code, body)
		}
	}
	get()
	a1 := api.v01.table.Load().entries[0].Load()
	if a1 == nil || a1.srv.Name != "a1" {
		t.Fatalf("first entry %+v", a1)
	}
	for i := range 40 {
		name := fmt.Sprintf("tmp%d", i)
		if _, err := api.app.Put(ctx, &model.Server{Name: name, Upstream: "http://127.0.0.1:4000/mcp", Enabled: true}, 0); err != nil {
			t.Fatal(err)
		}
		get()
		if err := api.app.Delete(ctx, name, model.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	get()
	tbl := api.v01.table.Load()
	servers := api.app.ListServers()
	if len(tbl.entries) != len(servers) || &tbl.servers[0] != &servers[0] {
		t.Fatalf("table of %d entries for %d servers (same snapshot: %v)", len(tbl.entries), len(servers), &tbl.servers[0] == &servers[0])
	}
	if e := tbl.entries[0].Load(); e != a1 {
		t.Errorf("a1's entry was not carried over: %p, want %p", e, a1)
	}
}

func TestV01ComparePub(t *testing.T) {
	for _, prefix := range []string{"com.example/", "a/", "z/"} {
		for _, name := range []string{"", "a", "a1", "b", "zz"} {
			for _, s := range []string{"", "c", "com", "com.example", "com.example/", "com.example/a", "com.example/a0", "com.example/a1", "com.example/b", "com.f", "z/zz", "z/zzz", "\xff"} {
				if got, want := v01ComparePub(prefix, name, s), strings.Compare(prefix+name, s); got != want {
					t.Errorf("v01ComparePub(%q, %q, %q) = %d, want %d", prefix, name, s, got, want)
				}
			}
		}
	}
}

// TestV01ListPageAllocs: a cached list page costs a handful of allocations (the query,
// the cursor, the headers), not a few per entry as encoding/json does.
func TestV01ListPageAllocs(t *testing.T) {
	api := &RegistryAPI{Namespace: "com.example", PublicURL: "https://mcp.example.com"}
	h := v01Fixture(t, api)
	req := httptest.NewRequest(http.MethodGet, "/v0.1/servers?limit=30&cursor=Y29tLmV4YW1wbGUvYTA", nil) // after com.example/a0
	w := &v01DiscardWriter{h: http.Header{}}
	serve := func() { clear(w.h); h.ServeHTTP(w, req) }
	serve()
	if w.code != http.StatusOK || w.n < 1000 {
		t.Fatalf("HTTP %d, %d bytes", w.code, w.n)
	}
	cached := testing.AllocsPerRun(200, serve)
	api.v01.off = true
	uncached := testing.AllocsPerRun(200, serve)
	t.Logf("allocations per page of 8 servers: %.0f cached, %.0f with encoding/json", cached, uncached)
	if cached > 20 {
		t.Errorf("%.0f allocations per cached page, want at most 20", cached)
	}
}

type v01DiscardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *v01DiscardWriter) Header() http.Header         { return w.h }
func (w *v01DiscardWriter) WriteHeader(code int)        { w.code = code }
func (w *v01DiscardWriter) Write(p []byte) (int, error) { w.n = len(p); return len(p), nil }
