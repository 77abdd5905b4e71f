package mcpregistry

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func normalized(t *testing.T, s *model.Server) *model.Server {
	t.Helper()
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	return s
}

func nameAt(t *testing.T, store Store, path string) string {
	t.Helper()
	var name string
	err := store.View(func(tx StoreTx) (err error) { name, err = tx.NameAtPath(path); return })
	if errors.Is(err, model.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// A file written before the path index existed gets it when opened.
func TestBoltPathIndexBuiltForOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	store, err := openBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = store.Update(func(tx StoreTx) error {
		for _, s := range []*model.Server{
			{Name: "a", Upstream: "http://h/mcp"},
			{Name: "b", Path: "bee", Upstream: "http://h/mcp"},
			{Name: "c", Path: "sea", Upstream: "http://h/mcp"},
		} {
			if err := tx.Put(normalized(t, s)); err != nil {
				return err
			}
		}
		return tx.Delete("c")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := closeBolt(path); err != nil {
		t.Fatal(err)
	}
	// The old layout: no paths bucket.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketPaths) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	store, err = openBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBolt(path) })
	for path, want := range map[string]string{"a": "a", "bee": "b", "b": "", "sea": "", "c": ""} {
		if got := nameAt(t, store, path); got != want {
			t.Errorf("NameAtPath(%q) = %q, want %q", path, got, want)
		}
	}
	err = store.Update(func(tx StoreTx) error {
		return tx.Put(normalized(t, &model.Server{Name: "d", Path: "bee", Upstream: "http://h/mcp"}))
	})
	if !errors.Is(err, model.ErrPathConflict) {
		t.Fatalf("taking b's path after the rebuild: %v", err)
	}
	var n int
	store.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketPaths).Stats().KeyN; return nil })
	if n != 2 {
		t.Fatalf("path index has %d keys, want 2", n)
	}
}

func TestBoltPathIndexFollowsWrites(t *testing.T) {
	store, _ := openTestStore(t)
	put := func(s *model.Server) error {
		return store.Update(func(tx StoreTx) error { return tx.Put(normalized(t, s)) })
	}
	if err := put(&model.Server{Name: "a", Upstream: "http://h/mcp"}); err != nil {
		t.Fatal(err)
	}
	if err := put(&model.Server{Name: "b", Path: "a", Upstream: "http://h/mcp"}); !errors.Is(err, model.ErrPathConflict) {
		t.Fatalf("second server at a path: %v", err)
	}
	if nameAt(t, store, "a") != "a" {
		t.Fatal("a failed write changed the path index")
	}
	store.View(func(tx StoreTx) error {
		if _, err := tx.Get("b"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("the conflicting record was kept: %v", err)
		}
		return nil
	})
	// Moving frees the old path.
	if err := put(&model.Server{Name: "a", Path: "a2", Upstream: "http://h/mcp"}); err != nil {
		t.Fatal(err)
	}
	if nameAt(t, store, "a") != "" || nameAt(t, store, "a2") != "a" {
		t.Fatal("path index not moved")
	}
	if err := put(&model.Server{Name: "b", Path: "a", Upstream: "http://h/mcp"}); err != nil {
		t.Fatalf("taking a freed path: %v", err)
	}
	// Swapping two paths inside one transaction is fine: only the end state counts.
	err := store.Update(func(tx StoreTx) error {
		if err := tx.Put(normalized(t, &model.Server{Name: "a", Path: "a", Upstream: "http://h/mcp"})); err != nil {
			return err
		}
		return tx.Put(normalized(t, &model.Server{Name: "b", Path: "a2", Upstream: "http://h/mcp"}))
	})
	if err != nil || nameAt(t, store, "a") != "a" || nameAt(t, store, "a2") != "b" {
		t.Fatalf("swap: %v", err)
	}
	// Restore (import) is checked too.
	err = store.Update(func(tx StoreTx) error {
		return tx.Restore(normalized(t, &model.Server{Name: "c", Path: "a2", Upstream: "http://h/mcp", Revision: 7}))
	})
	if !errors.Is(err, model.ErrPathConflict) {
		t.Fatalf("restore at a used path: %v", err)
	}
	// Delete and Purge free the path.
	if err := store.Update(func(tx StoreTx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	if err := store.Update(func(tx StoreTx) error { return tx.Purge("b") }); err != nil {
		t.Fatal(err)
	}
	if nameAt(t, store, "a") != "" || nameAt(t, store, "a2") != "" {
		t.Fatal("delete or purge left a path behind")
	}
}

// Two writers race for one path from different names: exactly one wins each round,
// through the batching path (they may share one transaction).
func TestBoltBatchPathConflict(t *testing.T) {
	store, _ := openTestStore(t)
	const writers = 8
	for round := range 20 {
		path := fmt.Sprintf("p%d", round)
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := store.Batch(func(tx StoreTx) error {
					return tx.Put(&model.Server{Name: fmt.Sprintf("r%d-w%d", round, w), Path: path, Upstream: "http://h/mcp"})
				})
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, model.ErrPathConflict):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != writers-1 {
			t.Fatalf("round %d: %d wins, %d conflicts", round, wins.Load(), conflicts.Load())
		}
		var n int
		store.View(func(tx StoreTx) error {
			all, err := tx.List()
			for _, s := range all {
				if s.Path == path {
					n++
				}
			}
			return err
		})
		if n != 1 {
			t.Fatalf("round %d: %d servers stored at %s", round, n, path)
		}
	}
}

// A failing fn in a batch discards only its own writes; the others commit, and each
// fn's variables reflect its committed run.
func TestBoltBatchIsolatesFailures(t *testing.T) {
	store, _ := openTestStore(t)
	boom := errors.New("boom")
	const calls = 64
	var wg sync.WaitGroup
	errs := make([]error, calls)
	revs := make([]uint64, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = store.Batch(func(tx StoreTx) error {
				revs[i] = 0
				s := &model.Server{Name: fmt.Sprintf("s%d", i), Path: fmt.Sprintf("s%d", i), Upstream: "http://h/mcp"}
				if err := tx.Put(s); err != nil {
					return err
				}
				if i%5 == 0 {
					return boom
				}
				revs[i] = s.Revision
				return nil
			})
		}()
	}
	wg.Wait()
	store.View(func(tx StoreTx) error {
		for i := range calls {
			_, err := tx.Get(fmt.Sprintf("s%d", i))
			if i%5 == 0 {
				if !errors.Is(errs[i], boom) || !errors.Is(err, model.ErrNotFound) {
					t.Errorf("call %d: err %v, stored %v", i, errs[i], err)
				}
				continue
			}
			if errs[i] != nil || err != nil || revs[i] != 1 {
				t.Errorf("call %d: err %v, stored %v, revision %d", i, errs[i], err, revs[i])
			}
		}
		return nil
	})
}

func TestBoltBatchPanicReachesCaller(t *testing.T) {
	store, _ := openTestStore(t)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no panic")
		}
		// The store still works.
		if err := store.Batch(func(tx StoreTx) error { return tx.Put(&model.Server{Name: "ok", Path: "ok", Upstream: "http://h/mcp"}) }); err != nil {
			t.Fatal(err)
		}
	}()
	store.Batch(func(StoreTx) error { panic("boom") })
}
