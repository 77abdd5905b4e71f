package mcpregistry

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func openTestStore(t *testing.T) (*boltStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.db")
	s, err := openBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBolt(path) })
	return s, path
}

func TestBoltStoreRevisions(t *testing.T) {
	store, _ := openTestStore(t)
	s := &model.Server{Name: "a", Upstream: "http://127.0.0.1:1/mcp"}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := store.Update(func(tx StoreTx) error { return tx.Put(s) }); err != nil {
		t.Fatal(err)
	}
	if s.Revision != 1 || s.CreatedAt.IsZero() || !s.CreatedAt.Equal(s.UpdatedAt) {
		t.Fatalf("first write: %+v", s)
	}
	created := s.CreatedAt
	time.Sleep(time.Millisecond)
	s2 := *s
	s2.Description = "changed"
	if err := store.Update(func(tx StoreTx) error { return tx.Put(&s2) }); err != nil {
		t.Fatal(err)
	}
	if s2.Revision != 2 || !s2.CreatedAt.Equal(created) || !s2.UpdatedAt.After(created) {
		t.Fatalf("second write: %+v", s2)
	}
	var got *model.Server
	store.View(func(tx StoreTx) (err error) { got, err = tx.Get("a"); return })
	if got.Description != "changed" || got.Revision != 2 {
		t.Fatalf("read back %+v", got)
	}
}

func TestBoltStoreUpdateIsAtomic(t *testing.T) {
	store, _ := openTestStore(t)
	boom := errors.New("boom")
	err := store.Update(func(tx StoreTx) error {
		if err := tx.Put(&model.Server{Name: "x", Path: "x", Upstream: "http://h/mcp"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	store.View(func(tx StoreTx) error {
		if _, err := tx.Get("x"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("a failed transaction left a record behind: %v", err)
		}
		return nil
	})
}

func TestOpenBoltSharesHandleAcrossOverlappingConfigs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	first, err := openBolt(path, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// A second open of the same file while the first is held must not wait on the lock.
	second, err := openBolt(path, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("second open of a shared database: %v", err)
	}
	if first.db != second.db {
		t.Fatal("overlapping opens must share one bbolt handle")
	}
	closeBolt(path)
	if err := second.View(func(tx StoreTx) error { _, err := tx.List(); return err }); err != nil {
		t.Fatalf("the handle closed while still referenced: %v", err)
	}
	closeBolt(path)
	if err := second.View(func(tx StoreTx) error { return nil }); err == nil {
		t.Fatal("the handle stayed open after the last reference was released")
	}
}

func TestReconcile(t *testing.T) {
	store, _ := openTestStore(t)
	mk := func(name, upstream string, src model.Source) *model.Server {
		s := &model.Server{Name: name, Upstream: upstream, Enabled: true, Source: src}
		if err := s.Normalize(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// A runtime registration survives reconciliation; config records follow the config.
	store.Update(func(tx StoreTx) error { return tx.Put(mk("runtime", "http://r/mcp", model.SourceAPI)) })
	all, err := reconcile(store, []*model.Server{mk("a", "http://a/mcp", model.SourceConfig), mk("b", "http://b/mcp", model.SourceConfig)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("want 3 servers, got %d", len(all))
	}
	revA := findServer(all, "a").Revision

	all, err = reconcile(store, []*model.Server{mk("a", "http://a/mcp", model.SourceConfig)})
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
	all, _ = reconcile(store, []*model.Server{mk("a", "http://a2/mcp", model.SourceConfig)})
	if s := findServer(all, "a"); s.Revision != revA+1 || s.Upstream != "http://a2/mcp" {
		t.Errorf("a changed config server: %+v", s)
	}

	// Two servers on one path: the whole reconciliation is refused and nothing changes.
	clash := mk("c", "http://c/mcp", model.SourceConfig)
	clash.Path = "runtime"
	if _, err := reconcile(store, []*model.Server{clash}); err == nil {
		t.Fatal("a path clash with a stored server must fail")
	}
	store.View(func(tx StoreTx) error {
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

func TestBoltStoreTombstonesAndConditionalWrites(t *testing.T) {
	store, _ := openTestStore(t)
	put := func(s *model.Server, expected uint64) error {
		return store.Update(func(tx StoreTx) error { return tx.PutIfRevision(s, expected) })
	}
	s := &model.Server{Name: "a", Upstream: "http://127.0.0.1:1/mcp"}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := put(s, 0); err != nil || s.Revision != 1 {
		t.Fatalf("create: %v %d", err, s.Revision)
	}
	var mm *model.RevisionMismatchError
	if err := put(&model.Server{Name: "a", Path: "a", Upstream: "http://h/mcp"}, 0); !errors.As(err, &mm) || mm.Current != 1 || !errors.Is(err, model.ErrRevisionMismatch) {
		t.Fatalf("create over existing: %v", err)
	}
	s2 := *s
	if err := put(&s2, 1); err != nil || s2.Revision != 2 {
		t.Fatalf("update: %v %d", err, s2.Revision)
	}
	if err := put(s, 1); !errors.As(err, &mm) || mm.Current != 2 || mm.Expected != 1 {
		t.Fatalf("stale update: %v", err)
	}
	if err := store.Update(func(tx StoreTx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	store.View(func(tx StoreTx) error {
		if _, err := tx.Get("a"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("deleted server still readable: %v", err)
		}
		if l, _ := tx.List(); len(l) != 0 {
			t.Errorf("List includes a deleted server: %v", l)
		}
		ts, err := tx.ListTombstones()
		if err != nil || len(ts) != 1 || ts[0].Name != "a" || ts[0].Revision != 3 || ts[0].DeletedAt.IsZero() {
			t.Errorf("tombstones: %v %+v", err, ts)
		}
		return nil
	})
	// A stale update of a deleted server fails; re-creating continues the revisions.
	if err := put(&s2, 2); !errors.As(err, &mm) || mm.Current != 0 {
		t.Fatalf("update of deleted: %v", err)
	}
	s3 := &model.Server{Name: "a", Path: "a", Upstream: "http://h/mcp"}
	if err := put(s3, 0); err != nil || s3.Revision != 4 {
		t.Fatalf("re-create: %v %d", err, s3.Revision)
	}
	store.View(func(tx StoreTx) error {
		if _, err := tx.GetTombstone("a"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("tombstone kept after re-create: %v", err)
		}
		return nil
	})
	// Deleting a missing name is no error and leaves no tombstone.
	if err := store.Update(func(tx StoreTx) error { return tx.Delete("ghost") }); err != nil {
		t.Fatal(err)
	}
	store.View(func(tx StoreTx) error {
		if _, err := tx.GetTombstone("ghost"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("tombstone for a name that never existed: %v", err)
		}
		return nil
	})
	if n, err := store.SizeBytes(); err != nil || n <= 0 {
		t.Fatalf("size %d %v", n, err)
	}
}
