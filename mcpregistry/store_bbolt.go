package mcpregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	bucketServers = []byte("servers")
	// bucketStatus holds each server's last known health and discovered tools (JSON
	// ServerHealth keyed by server name), apart from the records so that the health
	// loop's writes never race with edits of a server.
	bucketStatus = []byte("status")
	// bucketCredentials holds each server's sealed backend credential (AES-256-GCM,
	// see credentials.go) keyed by server name.
	bucketCredentials = []byte("credentials")
	// bucketTombstones holds a Tombstone (JSON, keyed by name) for each deleted server.
	bucketTombstones = []byte("tombstones")
)

// boltPool shares one open database per file between overlapping configs: the new
// config is provisioned while the old one still runs, and bbolt's exclusive file lock
// would otherwise make the second open wait forever.
var boltPool = caddy.NewUsagePool()

type boltStore struct {
	db *bolt.DB
}

type boltCloser struct{ db *bolt.DB }

func (c boltCloser) Destruct() error { return c.db.Close() }

// openBolt opens (or shares) the bbolt database at path. Release it with closeBolt.
func openBolt(path string, timeout time.Duration) (*boltStore, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("registry database path %q: %v", path, err)
	}
	val, _, err := boltPool.LoadOrNew(abs, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, fmt.Errorf("making folder for registry database: %v", err)
		}
		db, err := bolt.Open(abs, 0o600, &bolt.Options{Timeout: timeout})
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("registry database %s is locked by another process (another Caddy instance?); use 'caddy reload' to change a running instance's config", abs)
		}
		if err != nil {
			return nil, fmt.Errorf("opening registry database %s: %v", abs, err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketServers, bucketStatus, bucketCredentials, bucketTombstones} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			db.Close()
			return nil, fmt.Errorf("initialising registry database %s: %v", abs, err)
		}
		return boltCloser{db}, nil
	})
	if err != nil {
		return nil, err
	}
	return &boltStore{db: val.(boltCloser).db}, nil
}

func closeBolt(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	_, err = boltPool.Delete(abs)
	return err
}

func (s *boltStore) View(fn func(StoreTx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (s *boltStore) Update(fn func(StoreTx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// SizeBytes returns the size of the database in bytes.
func (s *boltStore) SizeBytes() (n int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Get(name string) (*Server, error) {
	raw := t.tx.Bucket(bucketServers).Get([]byte(name))
	if raw == nil {
		return nil, ErrNotFound
	}
	return decodeServer(raw)
}

func (t boltTx) List() ([]*Server, error) {
	b := t.tx.Bucket(bucketServers)
	var out []*Server
	err := b.ForEach(func(k, v []byte) error {
		s, err := decodeServer(v)
		if err != nil {
			return fmt.Errorf("record %q: %v", k, err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func (t boltTx) Put(s *Server) error { return t.PutIfRevision(s, AnyRevision) }

func (t boltTx) PutIfRevision(s *Server, expected uint64) error {
	if s.Name == "" {
		return errors.New("server without a name")
	}
	prev, err := t.Get(s.Name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	var cur uint64
	if prev != nil {
		cur = prev.Revision
	}
	if expected != AnyRevision && expected != cur {
		return &RevisionMismatchError{Name: s.Name, Expected: expected, Current: cur}
	}
	var tombRev uint64
	if prev == nil {
		tomb, err := t.GetTombstone(s.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if tomb != nil {
			tombRev = tomb.Revision
		}
	}
	stamp(s, prev, tombRev, time.Now().UTC())
	return t.Restore(s)
}

func (t boltTx) Restore(s *Server) error {
	if s.Name == "" {
		return errors.New("server without a name")
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketTombstones).Delete([]byte(s.Name)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketServers).Put([]byte(s.Name), raw)
}

func (t boltTx) Delete(name string) error {
	prev, err := t.Get(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.removeRecord(name); err != nil {
		return err
	}
	return t.RestoreTombstone(&Tombstone{Name: name, Revision: prev.Revision + 1, DeletedAt: time.Now().UTC()})
}

func (t boltTx) removeRecord(name string) error {
	if err := t.tx.Bucket(bucketStatus).Delete([]byte(name)); err != nil {
		return err
	}
	if err := t.DeleteCredential(name); err != nil {
		return err
	}
	return t.tx.Bucket(bucketServers).Delete([]byte(name))
}

func (t boltTx) Purge(name string) error {
	if err := t.removeRecord(name); err != nil {
		return err
	}
	return t.tx.Bucket(bucketTombstones).Delete([]byte(name))
}

func (t boltTx) GetTombstone(name string) (*Tombstone, error) {
	raw := t.tx.Bucket(bucketTombstones).Get([]byte(name))
	if raw == nil {
		return nil, ErrNotFound
	}
	return decodeTombstone(raw)
}

func (t boltTx) ListTombstones() ([]*Tombstone, error) {
	var out []*Tombstone
	err := t.tx.Bucket(bucketTombstones).ForEach(func(k, v []byte) error {
		ts, err := decodeTombstone(v)
		if err != nil {
			return fmt.Errorf("tombstone %q: %v", k, err)
		}
		out = append(out, ts)
		return nil
	})
	return out, err
}

func (t boltTx) RestoreTombstone(ts *Tombstone) error {
	if ts.Name == "" {
		return errors.New("tombstone without a server name")
	}
	raw, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketTombstones).Put([]byte(ts.Name), raw)
}

func decodeTombstone(raw []byte) (*Tombstone, error) {
	ts := new(Tombstone)
	if err := json.Unmarshal(raw, ts); err != nil {
		return nil, fmt.Errorf("decoding tombstone: %v", err)
	}
	return ts, nil
}

func (t boltTx) GetStatus(name string) (*ServerHealth, error) {
	raw := t.tx.Bucket(bucketStatus).Get([]byte(name))
	if raw == nil {
		return nil, ErrNotFound
	}
	return decodeStatus(raw)
}

func (t boltTx) ListStatus() ([]*ServerHealth, error) {
	var out []*ServerHealth
	err := t.tx.Bucket(bucketStatus).ForEach(func(k, v []byte) error {
		h, err := decodeStatus(v)
		if err != nil {
			return fmt.Errorf("status %q: %v", k, err)
		}
		out = append(out, h)
		return nil
	})
	return out, err
}

func (t boltTx) PutStatus(h *ServerHealth) error {
	if h.Server == "" {
		return errors.New("status without a server name")
	}
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketStatus).Put([]byte(h.Server), raw)
}

func decodeStatus(raw []byte) (*ServerHealth, error) {
	h := new(ServerHealth)
	if err := json.Unmarshal(raw, h); err != nil {
		return nil, fmt.Errorf("decoding health record: %v", err)
	}
	return h, nil
}

func decodeServer(raw []byte) (*Server, error) {
	s := new(Server)
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("decoding server record: %v", err)
	}
	return s, nil
}

func (t boltTx) GetCredential(name string) ([]byte, error) {
	raw := t.tx.Bucket(bucketCredentials).Get([]byte(name))
	if raw == nil {
		return nil, ErrNotFound
	}
	return append([]byte(nil), raw...), nil // bbolt's slice is only valid in the tx
}

func (t boltTx) ListCredentials() ([]string, error) {
	var out []string
	err := t.tx.Bucket(bucketCredentials).ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}

func (t boltTx) PutCredential(name string, sealed []byte) error {
	if name == "" {
		return errors.New("credential without a server name")
	}
	return t.tx.Bucket(bucketCredentials).Put([]byte(name), sealed)
}

func (t boltTx) DeleteCredential(name string) error {
	return t.tx.Bucket(bucketCredentials).Delete([]byte(name))
}
