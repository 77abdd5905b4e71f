package mcpregistry

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func TestReconcile(t *testing.T) {
	st := openTestStore(t)
	mk := func(name, upstream string, src model.Source) *model.Server {
		s := &model.Server{Name: name, Upstream: upstream, Enabled: true, Source: src}
		if err := s.Normalize(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// A runtime registration survives reconciliation; config records follow the config.
	st.Update(func(tx store.Tx) error { return tx.Put(mk("runtime", "http://r/mcp", model.SourceAPI)) })
	all, err := reconcile(st, []*model.Server{mk("a", "http://a/mcp", model.SourceConfig), mk("b", "http://b/mcp", model.SourceConfig)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("want 3 servers, got %d", len(all))
	}
	revA := findServer(all, "a").Revision

	all, err = reconcile(st, []*model.Server{mk("a", "http://a/mcp", model.SourceConfig)})
	if err != nil {
		t.Fatal(err)
	}
	if findServer(all, "b") != nil {
		t.Error("a config server removed from the config must leave the store")
	}
	if findServer(all, "runtime") == nil {
		t.Error("a runtime registration must survive a config change")
	}
	if got := findServer(all, "a").Revision; got != revA {
		t.Errorf("an unchanged config server was rewritten: revision %d -> %d", revA, got)
	}
	all, _ = reconcile(st, []*model.Server{mk("a", "http://a2/mcp", model.SourceConfig)})
	if s := findServer(all, "a"); s.Revision != revA+1 || s.Upstream != "http://a2/mcp" {
		t.Errorf("a changed config server: %+v", s)
	}

	// Two servers on one path: the whole reconciliation is refused and nothing changes.
	clash := mk("c", "http://c/mcp", model.SourceConfig)
	clash.Path = "runtime"
	if _, err := reconcile(st, []*model.Server{clash}); err == nil {
		t.Fatal("a path clash with a stored server must fail")
	}
	st.View(func(tx store.Tx) error {
		if s, _ := tx.Get("a"); s == nil {
			t.Error("the failed reconciliation deleted server a")
		}
		return nil
	})
}

func findServer(all []*model.Server, name string) *model.Server {
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func openTestStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "registry.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
