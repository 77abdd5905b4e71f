package store

import (
	"errors"
	"path/filepath"
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

func nameAt(t *testing.T, st Store, path string) string {
	t.Helper()
	var name string
	err := st.View(func(tx Tx) (err error) { name, err = tx.NameAtPath(path); return })
	if errors.Is(err, model.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func TestOpenBoltSharesHandleAcrossOverlappingConfigs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	first, err := OpenBolt(path, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// A second open of the same file while the first is held must not wait on the lock.
	second, err := OpenBolt(path, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("second open of a shared database: %v", err)
	}
	if first.db != second.db {
		t.Fatal("overlapping opens must share one bbolt handle")
	}
	first.Close()
	if err := second.View(func(tx Tx) error { _, err := tx.List(); return err }); err != nil {
		t.Fatalf("the handle closed while still referenced: %v", err)
	}
	second.Close()
	if err := second.View(func(tx Tx) error { return nil }); err == nil {
		t.Fatal("the handle stayed open after the last reference was released")
	}
}

// A file written before the path index existed gets it when opened.
func TestBoltPathIndexBuiltForOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	st, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx Tx) error {
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
	if err := st.Close(); err != nil {
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

	st, err = OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for path, want := range map[string]string{"a": "a", "bee": "b", "b": "", "sea": "", "c": ""} {
		if got := nameAt(t, st, path); got != want {
			t.Errorf("NameAtPath(%q) = %q, want %q", path, got, want)
		}
	}
	err = st.Update(func(tx Tx) error {
		return tx.Put(normalized(t, &model.Server{Name: "d", Path: "bee", Upstream: "http://h/mcp"}))
	})
	if !errors.Is(err, model.ErrPathConflict) {
		t.Fatalf("taking b's path after the rebuild: %v", err)
	}
	var n int
	st.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketPaths).Stats().KeyN; return nil })
	if n != 2 {
		t.Fatalf("path index has %d keys, want 2", n)
	}
}
