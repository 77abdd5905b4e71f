package mcpregistry

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func TestCollectionStoreIsAtomicAndNarrow(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "r.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := NewCollectionStore(st)
	boom := errors.New("boom")
	err = cs.Update(func(tx Collections) error {
		if _, ok := tx.(store.Tx); ok {
			t.Error("the transaction exposes the server records")
		}
		c, err := tx.Collection("test.ns")
		if err != nil {
			return err
		}
		if err := c.Put("k", []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v", err)
	}
	err = cs.View(func(tx Collections) error {
		c, _ := tx.Collection("test.ns")
		_, err := c.Get("k")
		return err
	})
	if !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("a failed Update kept its write: %v", err)
	}
	if err := cs.Batch(func(tx Collections) error {
		c, _ := tx.Collection("test.ns")
		return c.Put("k", []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := new(App).CollectionStore(); err == nil {
		t.Error("an unprovisioned App handed out its store")
	}
}
