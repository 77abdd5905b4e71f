package mcpregistry

import (
	"errors"

	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// CollectionStore is the registry's store as modules that keep records of their own
// kinds see it (the OAuth authorization server's clients, codes, users, …): atomic
// transactions over namespaced Collections, nothing of the server records and nothing
// of the backend behind it. Records kept this way share the registry's file (or
// cluster), its backups and its restores.
type CollectionStore struct{ st store.Store }

// NewCollectionStore exposes the Collections of st. The App hands out its own with
// App.CollectionStore; this is for tests and tools holding a store.Store.
func NewCollectionStore(st store.Store) *CollectionStore { return &CollectionStore{st: st} }

// Collections is the view of the Collections inside one transaction.
type Collections interface {
	// Collection returns namespace ns (see store.ValidNamespace), valid until the
	// transaction ends.
	Collection(ns string) (store.Collection, error)
}

// collectionsTx narrows a store.Tx to its Collections, so a caller cannot reach the
// server records through a type assertion.
type collectionsTx struct{ tx store.Tx }

func (c collectionsTx) Collection(ns string) (store.Collection, error) { return c.tx.Collection(ns) }

// View runs fn in a read-only transaction.
func (c *CollectionStore) View(fn func(Collections) error) error {
	return c.st.View(func(tx store.Tx) error { return fn(collectionsTx{tx}) })
}

// Update runs fn in one atomic read-write transaction: when fn returns an error,
// nothing it wrote is kept.
func (c *CollectionStore) Update(fn func(Collections) error) error {
	return c.st.Update(func(tx store.Tx) error { return fn(collectionsTx{tx}) })
}

// Batch is Update for many concurrent writers sharing one commit; fn may run more
// than once and must reset its own variables on every run (see store.Store.Batch).
func (c *CollectionStore) Batch(fn func(Collections) error) error {
	return c.st.Batch(func(tx store.Tx) error { return fn(collectionsTx{tx}) })
}

// CollectionStore returns the registry's store for records of other kinds than
// servers. It is valid for the life of this config (until Cleanup).
func (a *App) CollectionStore() (*CollectionStore, error) {
	if a.store == nil {
		return nil, errors.New("mcp_registry is not provisioned")
	}
	return NewCollectionStore(a.store), nil
}
