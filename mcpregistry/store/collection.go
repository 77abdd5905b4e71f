package store

import (
	"encoding/json"
	"fmt"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Collection is one namespace of keyed records inside a transaction: the way the store
// holds kinds of records other than servers (OAuth clients, authorization codes,
// refresh-token families, users, signing keys, …) without a new file format or a new
// method on Tx for each kind. Values are opaque bytes, typically JSON (see GetJSON and
// PutJSON). A Collection is valid only inside the transaction that returned it; writes
// on one from View fail.
type Collection interface {
	// Get returns the value stored under key, or an error matching model.ErrNotFound.
	// The slice is valid only until the transaction ends.
	Get(key string) ([]byte, error)
	// Put stores value under key, replacing what was there.
	Put(key string, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(key string) error
	// ForEach calls fn for every record in key order and stops at the first error,
	// which it returns. fn must not write to the collection.
	ForEach(fn func(key string, value []byte) error) error
}

// maxNamespace bounds a collection's name.
const maxNamespace = 64

// ValidNamespace returns an error unless ns can name a Collection: 1-64 characters of
// a-z, 0-9, '_', '-' and '.'.
func ValidNamespace(ns string) error {
	if ns == "" || len(ns) > maxNamespace {
		return fmt.Errorf("collection name %q must be 1-%d characters", ns, maxNamespace)
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("collection name %q may hold only a-z, 0-9, '_', '-', '.'", ns)
		}
	}
	return nil
}

// notFoundError is the Collection.Get error for a missing key; it matches
// model.ErrNotFound so callers test one error whatever the kind of record.
type notFoundError struct{ ns, key string }

func (e notFoundError) Error() string   { return fmt.Sprintf("no record %q in %s", e.key, e.ns) }
func (e notFoundError) Is(t error) bool { return t == model.ErrNotFound }

// GetJSON decodes the JSON record stored under key in c into a new T.
func GetJSON[T any](c Collection, key string) (*T, error) {
	raw, err := c.Get(key)
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("decoding record %q: %v", key, err)
	}
	return v, nil
}

// PutJSON stores v as JSON under key in c.
func PutJSON(c Collection, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding record %q: %v", key, err)
	}
	return c.Put(key, raw)
}
