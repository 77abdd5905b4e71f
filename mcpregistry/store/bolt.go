package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

var (
	bucketServers = []byte("servers")
	// bucketStatus holds each server's last known health and discovered tools (JSON
	// ServerHealth keyed by server name), apart from the records so that the health
	// loop's writes never race with edits of a server.
	bucketStatus = []byte("status")
	// bucketCredentials holds each server's sealed backend credential (AES-256-GCM,
	// sealed by the registry app's keyring) keyed by server name.
	bucketCredentials = []byte("credentials")
	// bucketTombstones holds a Tombstone (JSON, keyed by name) for each deleted server.
	bucketTombstones = []byte("tombstones")
	// bucketPaths indexes the servers by path: one key "<path>/<name>" (empty value)
	// per server, so that the path-uniqueness check of a write is a seek instead of
	// a scan of every record. Keys carry the name (a path segment never contains
	// '/') so that a transaction may briefly hold two servers at one path (swapping
	// paths); runWrite refuses to let it end like that (ErrPathConflict).
	bucketPaths = []byte("paths")
	// bucketCollections holds one nested bucket per Collection namespace.
	bucketCollections = []byte("collections")
)

// boltPool shares one open database per file between overlapping configs: the new
// config is provisioned while the old one still runs, and bbolt's exclusive file lock
// would otherwise make the second open wait forever.
var boltPool = caddy.NewUsagePool()

type Bolt struct {
	db    *bolt.DB
	batch *batcher
	path  string // absolute: the key of boltPool
}

type boltCloser struct {
	db    *bolt.DB
	batch *batcher // shared by every boltStore of the file: one commit queue per file
}

func (c boltCloser) Destruct() error { return c.db.Close() }

// OpenBolt opens (or shares) the bbolt database at path. Release it with Close.
func OpenBolt(path string, timeout time.Duration) (*Bolt, error) {
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
			for _, b := range [][]byte{bucketServers, bucketStatus, bucketCredentials, bucketTombstones, bucketCollections} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			// A file from before the path index gets it here, in the transaction
			// that creates the bucket: a crash leaves no bucket or a complete one.
			if tx.Bucket(bucketPaths) == nil {
				return buildPathIndex(tx)
			}
			return nil
		}); err != nil {
			db.Close()
			return nil, fmt.Errorf("initialising registry database %s: %v", abs, err)
		}
		return boltCloser{db: db, batch: new(batcher)}, nil
	})
	if err != nil {
		return nil, err
	}
	c := val.(boltCloser)
	return &Bolt{db: c.db, batch: c.batch, path: abs}, nil
}

// buildPathIndex creates bucketPaths and fills it from the server records.
func buildPathIndex(tx *bolt.Tx) error {
	paths, err := tx.CreateBucket(bucketPaths)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketServers).ForEach(func(k, v []byte) error {
		p, err := decodePath(string(k), v)
		if err != nil {
			return fmt.Errorf("record %q: %v", k, err)
		}
		return paths.Put(pathKey(p, string(k)), nil)
	})
}

// decodePath returns the path of the encoded server record raw of the named server.
func decodePath(name string, raw []byte) (string, error) {
	var r struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", fmt.Errorf("decoding server record: %v", err)
	}
	if r.Path == "" {
		return name, nil // Normalize's default
	}
	return r.Path, nil
}

func pathKey(path, name string) []byte { return []byte(path + "/" + name) }

// Close releases this handle on the shared database; the file closes with the last one.
func (s *Bolt) Close() error {
	_, err := boltPool.Delete(s.path)
	return err
}

func (s *Bolt) View(fn func(Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx: tx}) })
}

func (s *Bolt) Update(fn func(Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return runWrite(tx, fn) })
}

// runWrite runs fn in the read-write transaction tx and then checks that it left no
// path with two servers.
func runWrite(tx *bolt.Tx, fn func(Tx) error) error {
	t := boltTx{tx: tx, touched: map[string]string{}}
	if err := fn(t); err != nil {
		return err
	}
	return t.checkPaths()
}

// SizeBytes returns the size of the database in bytes.
func (s *Bolt) SizeBytes() (n int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}

type boltTx struct {
	tx *bolt.Tx
	// touched: path → name of the server last written there in this fn (write
	// transactions only), checked by checkPaths when fn returns.
	touched map[string]string
}

func (t boltTx) Get(name string) (*model.Server, error) {
	raw := t.tx.Bucket(bucketServers).Get([]byte(name))
	if raw == nil {
		return nil, model.ErrNotFound
	}
	return decodeServer(raw)
}

func (t boltTx) List() ([]*model.Server, error) {
	b := t.tx.Bucket(bucketServers)
	var out []*model.Server
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

func (t boltTx) Put(s *model.Server) error { return t.PutIfRevision(s, model.AnyRevision) }

func (t boltTx) PutIfRevision(s *model.Server, expected uint64) error {
	if s.Name == "" {
		return errors.New("server without a name")
	}
	prev, err := t.Get(s.Name)
	if err != nil && !errors.Is(err, model.ErrNotFound) {
		return err
	}
	var cur uint64
	if prev != nil {
		cur = prev.Revision
	}
	if expected != model.AnyRevision && expected != cur {
		return &model.RevisionMismatchError{Name: s.Name, Expected: expected, Current: cur}
	}
	var tombRev uint64
	if prev == nil {
		tomb, err := t.GetTombstone(s.Name)
		if err != nil && !errors.Is(err, model.ErrNotFound) {
			return err
		}
		if tomb != nil {
			tombRev = tomb.Revision
		}
	}
	stamp(s, prev, tombRev, time.Now().UTC())
	prevPath := ""
	if prev != nil {
		prevPath = prev.Path
	}
	return t.write(s, prevPath)
}

func (t boltTx) Restore(s *model.Server) error {
	if s.Name == "" {
		return errors.New("server without a name")
	}
	prevPath, err := t.storedPath(s.Name)
	if err != nil {
		return err
	}
	return t.write(s, prevPath)
}

// storedPath returns the path of the stored record of name, "" when there is none.
func (t boltTx) storedPath(name string) (string, error) {
	raw := t.tx.Bucket(bucketServers).Get([]byte(name))
	if raw == nil {
		return "", nil
	}
	return decodePath(name, raw)
}

// write stores s (whose stored record, if any, is at prevPath), drops its tombstone and
// moves its entry in the path index.
func (t boltTx) write(s *model.Server, prevPath string) error {
	if t.touched == nil {
		return bolterrors.ErrTxNotWritable
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	path := s.Path
	if path == "" {
		path = s.Name
	}
	if err := t.tx.Bucket(bucketTombstones).Delete([]byte(s.Name)); err != nil {
		return err
	}
	paths := t.tx.Bucket(bucketPaths)
	if prevPath != "" && prevPath != path {
		if err := paths.Delete(pathKey(prevPath, s.Name)); err != nil {
			return err
		}
	}
	if err := paths.Put(pathKey(path, s.Name), nil); err != nil {
		return err
	}
	t.touched[path] = s.Name
	return t.tx.Bucket(bucketServers).Put([]byte(s.Name), raw)
}

// NameAtPath returns the (first) server at path, or ErrNotFound.
func (t boltTx) NameAtPath(path string) (string, error) {
	names := t.namesAtPath(path, 1)
	if len(names) == 0 {
		return "", model.ErrNotFound
	}
	return names[0], nil
}

// namesAtPath returns up to limit names of the servers at path, in name order.
func (t boltTx) namesAtPath(path string, limit int) []string {
	prefix := []byte(path + "/")
	var out []string
	c := t.tx.Bucket(bucketPaths).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
		out = append(out, string(k[len(prefix):]))
	}
	return out
}

// checkPaths fails when a path written in this fn now holds more than one server.
func (t boltTx) checkPaths() error {
	for path, name := range t.touched {
		names := t.namesAtPath(path, 2)
		if len(names) < 2 {
			continue
		}
		other := names[0]
		if other == name {
			other = names[1]
		}
		return fmt.Errorf("%w: path %q is used by server %q", model.ErrPathConflict, path, other)
	}
	return nil
}

func (t boltTx) Delete(name string) error {
	prev, err := t.Get(name)
	if errors.Is(err, model.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.removeRecord(name); err != nil {
		return err
	}
	return t.RestoreTombstone(&model.Tombstone{Name: name, Revision: prev.Revision + 1, DeletedAt: time.Now().UTC()})
}

func (t boltTx) removeRecord(name string) error {
	path, err := t.storedPath(name)
	if err != nil {
		return err
	}
	if path != "" {
		if err := t.tx.Bucket(bucketPaths).Delete(pathKey(path, name)); err != nil {
			return err
		}
	}
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

func (t boltTx) GetTombstone(name string) (*model.Tombstone, error) {
	raw := t.tx.Bucket(bucketTombstones).Get([]byte(name))
	if raw == nil {
		return nil, model.ErrNotFound
	}
	return decodeTombstone(raw)
}

func (t boltTx) ListTombstones() ([]*model.Tombstone, error) {
	var out []*model.Tombstone
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

func (t boltTx) RestoreTombstone(ts *model.Tombstone) error {
	if ts.Name == "" {
		return errors.New("tombstone without a server name")
	}
	raw, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketTombstones).Put([]byte(ts.Name), raw)
}

func (t boltTx) DeleteTombstone(name string) error {
	return t.tx.Bucket(bucketTombstones).Delete([]byte(name))
}

func decodeTombstone(raw []byte) (*model.Tombstone, error) {
	ts := new(model.Tombstone)
	if err := json.Unmarshal(raw, ts); err != nil {
		return nil, fmt.Errorf("decoding tombstone: %v", err)
	}
	return ts, nil
}

func (t boltTx) GetStatus(name string) (*model.ServerHealth, error) {
	raw := t.tx.Bucket(bucketStatus).Get([]byte(name))
	if raw == nil {
		return nil, model.ErrNotFound
	}
	return decodeStatus(raw)
}

func (t boltTx) ListStatus() ([]*model.ServerHealth, error) {
	var out []*model.ServerHealth
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

func (t boltTx) PutStatus(h *model.ServerHealth) error {
	if h.Server == "" {
		return errors.New("status without a server name")
	}
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketStatus).Put([]byte(h.Server), raw)
}

func decodeStatus(raw []byte) (*model.ServerHealth, error) {
	h := new(model.ServerHealth)
	if err := json.Unmarshal(raw, h); err != nil {
		return nil, fmt.Errorf("decoding health record: %v", err)
	}
	return h, nil
}

func decodeServer(raw []byte) (*model.Server, error) {
	s := new(model.Server)
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("decoding server record: %v", err)
	}
	return s, nil
}

func (t boltTx) GetCredential(name string) ([]byte, error) {
	raw := t.tx.Bucket(bucketCredentials).Get([]byte(name))
	if raw == nil {
		return nil, model.ErrNotFound
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

// Group commit. bbolt commits one read-write transaction at a time, each with an
// fsync; Batch lets the writers that queue up behind a commit share the next one.
// Unlike bolt.DB.Batch it adds no delay: a lone writer commits at once, and batches
// form only from writers that would have waited anyway.

// maxBatch bounds the calls of one transaction.
const maxBatch = 256

type batcher struct {
	mu      sync.Mutex
	queue   []*batchCall
	leading bool // a goroutine is running batches (only it takes from queue)
}

type batchCall struct {
	fn   func(Tx) error
	done chan error // result, errBatchLead or errBatchSolo; buffered
}

var (
	// errBatchLead tells a waiting caller to run the next batch (its call is in it).
	errBatchLead = errors.New("mcpregistry: lead the next batch")
	// errBatchSolo tells a caller whose fn failed in a batch to run it on its own.
	errBatchSolo = errors.New("mcpregistry: run alone")
)

func (s *Bolt) Batch(fn func(Tx) error) error {
	b := s.batch
	c := &batchCall{fn: fn, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()
	if lead {
		s.runBatches()
	}
	for {
		switch err := <-c.done; err {
		case errBatchLead:
			s.runBatches()
		case errBatchSolo:
			return s.Update(fn)
		default:
			return err
		}
	}
}

// runBatches commits the queued calls as one batch, then hands the lead to the first
// caller that queued meanwhile (or gives it up), so that no caller waits for more
// than its own batch after it is done.
func (s *Bolt) runBatches() {
	b := s.batch
	b.mu.Lock()
	n := min(len(b.queue), maxBatch)
	calls := slices.Clone(b.queue[:n])
	b.queue = slices.Delete(b.queue, 0, n)
	b.mu.Unlock()

	s.commitBatch(calls)

	b.mu.Lock()
	if len(b.queue) == 0 {
		b.leading = false
		b.mu.Unlock()
		return
	}
	next := b.queue[0]
	b.mu.Unlock()
	next.done <- errBatchLead
}

// commitBatch runs calls in one transaction. A call whose fn fails is taken out (its
// caller reruns it alone) and the rest run again in a fresh transaction.
func (s *Bolt) commitBatch(calls []*batchCall) {
	for len(calls) > 0 {
		failed := -1
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, c := range calls {
				if err := runWriteSafely(tx, c.fn); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			calls[failed].done <- errBatchSolo
			calls = slices.Delete(calls, failed, failed+1)
			continue
		}
		for _, c := range calls {
			c.done <- err
		}
		return
	}
}

// runWriteSafely is runWrite with a panic turned into an error (the caller's solo
// rerun then panics in the caller's goroutine).
func runWriteSafely(tx *bolt.Tx, fn func(Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in a registry transaction: %v", r)
		}
	}()
	return runWrite(tx, fn)
}

func (t boltTx) Collection(ns string) (Collection, error) {
	if err := ValidNamespace(ns); err != nil {
		return nil, err
	}
	return boltCollection{tx: t.tx, ns: ns}, nil
}

func (t boltTx) Collections() ([]string, error) {
	var names []string
	parent := t.tx.Bucket(bucketCollections)
	err := parent.ForEach(func(k, v []byte) error {
		if v == nil {
			if b := parent.Bucket(k); b != nil {
				if first, _ := b.Cursor().First(); first != nil {
					names = append(names, string(k))
				}
			}
		}
		return nil
	})
	return names, err
}

// boltCollection is one nested bucket of bucketCollections, created by its first Put.
type boltCollection struct {
	tx *bolt.Tx
	ns string
}

func (c boltCollection) bucket() *bolt.Bucket {
	return c.tx.Bucket(bucketCollections).Bucket([]byte(c.ns))
}

func (c boltCollection) Get(key string) ([]byte, error) {
	b := c.bucket()
	if b == nil {
		return nil, notFoundError{c.ns, key}
	}
	v := b.Get([]byte(key))
	if v == nil {
		return nil, notFoundError{c.ns, key}
	}
	return v, nil
}

func (c boltCollection) Put(key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("%s: empty key", c.ns)
	}
	b, err := c.tx.Bucket(bucketCollections).CreateBucketIfNotExists([]byte(c.ns))
	if err != nil {
		return fmt.Errorf("%s: %w", c.ns, err)
	}
	if value == nil {
		value = []byte{}
	}
	return b.Put([]byte(key), value)
}

func (c boltCollection) Delete(key string) error {
	b := c.bucket()
	if b == nil {
		return nil
	}
	return b.Delete([]byte(key))
}

func (c boltCollection) ForEach(fn func(key string, value []byte) error) error {
	b := c.bucket()
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}
