package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func normalized(t *testing.T, s *model.Server) *model.Server {
	t.Helper()
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	return s
}

func nameAt(t *testing.T, st store.Store, path string) string {
	t.Helper()
	var name string
	err := st.View(func(tx store.Tx) (err error) { name, err = tx.NameAtPath(path); return })
	if errors.Is(err, model.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func testPathIndexFollowsWrites(t *testing.T, open Opener) {
	st := open(t)
	put := func(s *model.Server) error {
		return st.Update(func(tx store.Tx) error { return tx.Put(normalized(t, s)) })
	}
	if err := put(&model.Server{Name: "a", Upstream: "http://h/mcp"}); err != nil {
		t.Fatal(err)
	}
	if err := put(&model.Server{Name: "b", Path: "a", Upstream: "http://h/mcp"}); !errors.Is(err, model.ErrPathConflict) {
		t.Fatalf("second server at a path: %v", err)
	}
	if nameAt(t, st, "a") != "a" {
		t.Fatal("a failed write changed the path index")
	}
	st.View(func(tx store.Tx) error {
		if _, err := tx.Get("b"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("the conflicting record was kept: %v", err)
		}
		return nil
	})
	// Moving frees the old path.
	if err := put(&model.Server{Name: "a", Path: "a2", Upstream: "http://h/mcp"}); err != nil {
		t.Fatal(err)
	}
	if nameAt(t, st, "a") != "" || nameAt(t, st, "a2") != "a" {
		t.Fatal("path index not moved")
	}
	if err := put(&model.Server{Name: "b", Path: "a", Upstream: "http://h/mcp"}); err != nil {
		t.Fatalf("taking a freed path: %v", err)
	}
	// Swapping two paths inside one transaction is fine: only the end state counts.
	err := st.Update(func(tx store.Tx) error {
		if err := tx.Put(normalized(t, &model.Server{Name: "a", Path: "a", Upstream: "http://h/mcp"})); err != nil {
			return err
		}
		return tx.Put(normalized(t, &model.Server{Name: "b", Path: "a2", Upstream: "http://h/mcp"}))
	})
	if err != nil || nameAt(t, st, "a") != "a" || nameAt(t, st, "a2") != "b" {
		t.Fatalf("swap: %v", err)
	}
	// Restore (import) is checked too.
	err = st.Update(func(tx store.Tx) error {
		return tx.Restore(normalized(t, &model.Server{Name: "c", Path: "a2", Upstream: "http://h/mcp", Revision: 7}))
	})
	if !errors.Is(err, model.ErrPathConflict) {
		t.Fatalf("restore at a used path: %v", err)
	}
	// Delete and Purge free the path.
	if err := st.Update(func(tx store.Tx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(tx store.Tx) error { return tx.Purge("b") }); err != nil {
		t.Fatal(err)
	}
	if nameAt(t, st, "a") != "" || nameAt(t, st, "a2") != "" {
		t.Fatal("delete or purge left a path behind")
	}
}

// Two writers race for one path from different names: exactly one wins each round,
// through the batching path (they may share one transaction).
func testBatchPathConflict(t *testing.T, open Opener) {
	st := open(t)
	const writers = 8
	for round := range 20 {
		path := fmt.Sprintf("p%d", round)
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := st.Batch(func(tx store.Tx) error {
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
		st.View(func(tx store.Tx) error {
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
func testBatchIsolatesFailures(t *testing.T, open Opener) {
	st := open(t)
	boom := errors.New("boom")
	const calls = 64
	var wg sync.WaitGroup
	errs := make([]error, calls)
	revs := make([]uint64, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.Batch(func(tx store.Tx) error {
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
	st.View(func(tx store.Tx) error {
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

func testBatchPanicReachesCaller(t *testing.T, open Opener) {
	st := open(t)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no panic")
		}
		// The store still works.
		if err := st.Batch(func(tx store.Tx) error {
			return tx.Put(&model.Server{Name: "ok", Path: "ok", Upstream: "http://h/mcp"})
		}); err != nil {
			t.Fatal(err)
		}
	}()
	st.Batch(func(store.Tx) error { panic("boom") })
}
