package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func testRevisions(t *testing.T, open Opener) {
	st := open(t)
	s := &model.Server{Name: "a", Upstream: "http://127.0.0.1:1/mcp"}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(tx store.Tx) error { return tx.Put(s) }); err != nil {
		t.Fatal(err)
	}
	if s.Revision != 1 || s.CreatedAt.IsZero() || !s.CreatedAt.Equal(s.UpdatedAt) {
		t.Fatalf("first write: %+v", s)
	}
	created := s.CreatedAt
	time.Sleep(time.Millisecond)
	s2 := *s
	s2.Description = "changed"
	if err := st.Update(func(tx store.Tx) error { return tx.Put(&s2) }); err != nil {
		t.Fatal(err)
	}
	if s2.Revision != 2 || !s2.CreatedAt.Equal(created) || !s2.UpdatedAt.After(created) {
		t.Fatalf("second write: %+v", s2)
	}
	var got *model.Server
	st.View(func(tx store.Tx) (err error) { got, err = tx.Get("a"); return })
	if got.Description != "changed" || got.Revision != 2 {
		t.Fatalf("read back %+v", got)
	}
}

func testUpdateIsAtomic(t *testing.T, open Opener) {
	st := open(t)
	boom := errors.New("boom")
	err := st.Update(func(tx store.Tx) error {
		if err := tx.Put(&model.Server{Name: "x", Path: "x", Upstream: "http://h/mcp"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	st.View(func(tx store.Tx) error {
		if _, err := tx.Get("x"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("a failed transaction left a record behind: %v", err)
		}
		return nil
	})
}

func testTombstonesAndConditionalWrites(t *testing.T, open Opener) {
	st := open(t)
	put := func(s *model.Server, expected uint64) error {
		return st.Update(func(tx store.Tx) error { return tx.PutIfRevision(s, expected) })
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
	if err := st.Update(func(tx store.Tx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	st.View(func(tx store.Tx) error {
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
	st.View(func(tx store.Tx) error {
		if _, err := tx.GetTombstone("a"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("tombstone kept after re-create: %v", err)
		}
		return nil
	})
	// Deleting a missing name is no error and leaves no tombstone.
	if err := st.Update(func(tx store.Tx) error { return tx.Delete("ghost") }); err != nil {
		t.Fatal(err)
	}
	st.View(func(tx store.Tx) error {
		if _, err := tx.GetTombstone("ghost"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("tombstone for a name that never existed: %v", err)
		}
		return nil
	})
	if sr, ok := st.(store.SizeReporter); !ok {
		return
	} else if n, err := sr.SizeBytes(); err != nil || n <= 0 {
		t.Fatalf("size %d %v", n, err)
	}
}
