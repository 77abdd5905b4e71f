package store

import (
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Store persists the registry: server records with their health, sealed credentials and
// tombstones, and Collections of records of other kinds. Implementations keep their own
// types to themselves: callers see only model values and bytes. Every Update is one atomic transaction: when fn returns
// an error nothing it wrote is kept. A transaction whose writes leave two servers at one
// path fails with an error matching ErrPathConflict (checked when fn returns, so a
// transaction may move paths around as long as it ends consistent).
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction.
	Update(fn func(Tx) error) error
	// Batch is Update for many concurrent writers: calls that arrive while a commit is
	// in flight are run together in the next transaction, so they share one commit
	// (one fsync). Each fn is still atomic on its own: an error (or a path conflict)
	// of one fn discards only its writes, and the fn alone gets the error. fn may run
	// more than once (again when another fn of its batch fails), so it must be
	// idempotent and have no effects outside the transaction except on its own
	// variables, which it must reset on every run; what it saw in its last run is
	// what was committed.
	Batch(fn func(Tx) error) error
	// Close releases this handle. Handles opened on the same backend by overlapping
	// configs share it; the backend closes with the last handle.
	Close() error
}

// Tx is the view of the store inside one transaction.
type Tx interface {
	// Get returns the named server or ErrNotFound.
	Get(name string) (*model.Server, error)
	// List returns every server, ordered by name.
	List() ([]*model.Server, error)
	// Put writes s; it sets Revision to the stored revision plus one and maintains
	// CreatedAt and UpdatedAt (now is the transaction's clock).
	Put(s *model.Server) error
	// PutIfRevision is Put when the stored revision equals expected: 0 means the server
	// must not exist (a tombstone does not count), AnyRevision means no condition.
	// Otherwise it returns a *RevisionMismatchError carrying the current revision.
	PutIfRevision(s *model.Server, expected uint64) error
	// NameAtPath returns the name of the server at path segment path, or ErrNotFound.
	// It is an index lookup (no record is decoded).
	NameAtPath(path string) (string, error)
	// Delete removes the named server, its recorded health and its credential and leaves
	// a Tombstone (revision + 1); deleting a missing name is not an error.
	Delete(name string) error

	// GetTombstone returns the tombstone of a deleted server or ErrNotFound. A server
	// registered again loses its tombstone; its revision continues from it.
	GetTombstone(name string) (*model.Tombstone, error)
	// ListTombstones returns every tombstone, ordered by name. List never includes them.
	ListTombstones() ([]*model.Tombstone, error)

	// Restore writes s exactly as given (revision and timestamps kept) and removes any
	// tombstone of its name. It is for import; s must be normalised.
	Restore(s *model.Server) error
	// RestoreTombstone writes t as given; it is for import.
	RestoreTombstone(t *model.Tombstone) error
	// DeleteTombstone removes the named server's tombstone (and nothing else); a
	// missing one is not an error. The name's revisions then start again from 1.
	DeleteTombstone(name string) error
	// Purge removes everything held under name (record, health, credential, tombstone)
	// without leaving a tombstone. It is for import's replace mode.
	Purge(name string) error

	// GetStatus returns the last recorded health of the named server or ErrNotFound.
	// Health is kept apart from the server record: writing one never touches the other.
	GetStatus(name string) (*model.ServerHealth, error)
	// ListStatus returns every recorded health, ordered by server name.
	ListStatus() ([]*model.ServerHealth, error)
	// PutStatus records h under h.Server. It never modifies the server record.
	PutStatus(h *model.ServerHealth) error

	// GetCredential returns the sealed (encrypted) backend credential of the named
	// server or ErrNotFound. The store never sees plaintext.
	GetCredential(name string) ([]byte, error)
	// ListCredentials returns the names of servers that have a stored credential.
	ListCredentials() ([]string, error)
	// PutCredential stores the sealed credential of the named server.
	PutCredential(name string, sealed []byte) error
	// DeleteCredential removes the named server's credential; a missing one is not an error.
	DeleteCredential(name string) error

	// Collection returns the namespace ns of records of another kind than servers;
	// ns must pass ValidNamespace. Collections are independent of servers: deleting or
	// purging a server leaves them alone.
	Collection(ns string) (Collection, error)
	// Collections returns the names of the collections that hold a record, sorted.
	Collections() ([]string, error)
}

// SizeReporter is implemented by stores that can tell how large they are on disk.
type SizeReporter interface {
	SizeBytes() (int64, error)
}

// stamp sets the bookkeeping fields of s for a write over prev (nil when new);
// tombRev is the revision of the name's tombstone (0 if none), from which a re-created
// server continues.
func stamp(s, prev *model.Server, tombRev uint64, now time.Time) {
	if prev == nil {
		s.Revision = tombRev + 1
		s.CreatedAt = now
	} else {
		s.Revision = prev.Revision + 1
		s.CreatedAt = prev.CreatedAt
	}
	s.UpdatedAt = now
}
