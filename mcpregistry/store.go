package mcpregistry

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrNotFound is returned for a server name the store does not hold.
var ErrNotFound = errors.New("server not found")

// ErrPathConflict is matched (errors.Is) when a write would route two servers at one
// path. The store is the authority: a transaction that ends with two servers at one
// path fails with it (and writes nothing), so concurrent writers cannot both win a path.
var ErrPathConflict = errors.New("path already in use")

// ErrRevisionMismatch is matched (errors.Is) by every *RevisionMismatchError: a
// conditional write found a different revision than the caller expected.
var ErrRevisionMismatch = errors.New("revision mismatch")

// AnyRevision as the expected revision of a conditional write means "whatever is
// stored, or nothing": the write is unconditional.
const AnyRevision uint64 = math.MaxUint64

// RevisionMismatchError is returned by StoreTx.PutIfRevision (and the App's writes)
// when the stored revision is not the expected one. Current is 0 when the server does
// not exist (it may have a tombstone).
type RevisionMismatchError struct {
	Name     string
	Expected uint64
	Current  uint64
}

func (e *RevisionMismatchError) Error() string {
	if e.Expected == 0 {
		return fmt.Sprintf("server %q already exists (revision %d)", e.Name, e.Current)
	}
	if e.Current == 0 {
		return fmt.Sprintf("server %q does not exist (expected revision %d)", e.Name, e.Expected)
	}
	return fmt.Sprintf("server %q is at revision %d, not %d", e.Name, e.Current, e.Expected)
}

// Is makes errors.Is(err, ErrRevisionMismatch) true.
func (e *RevisionMismatchError) Is(target error) bool { return target == ErrRevisionMismatch }

// Tombstone records a deleted server so that readers (the v0.1 API's include_deleted,
// sync clients using updated_since) learn of the deletion, and so that revisions stay
// monotonic when the name is registered again.
type Tombstone struct {
	Name string `json:"name"`
	// Revision is the deleted record's revision plus one.
	Revision  uint64    `json:"revision"`
	DeletedAt time.Time `json:"deleted_at"`
}

// Store persists server records. Implementations keep their own types to themselves:
// callers see only Server values. Every Update is one atomic transaction: when fn returns
// an error nothing it wrote is kept. A transaction whose writes leave two servers at one
// path fails with an error matching ErrPathConflict (checked when fn returns, so a
// transaction may move paths around as long as it ends consistent).
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(StoreTx) error) error
	// Update runs fn in a read-write transaction.
	Update(fn func(StoreTx) error) error
	// Batch is Update for many concurrent writers: calls that arrive while a commit is
	// in flight are run together in the next transaction, so they share one commit
	// (one fsync). Each fn is still atomic on its own: an error (or a path conflict)
	// of one fn discards only its writes, and the fn alone gets the error. fn may run
	// more than once (again when another fn of its batch fails), so it must be
	// idempotent and have no effects outside the transaction except on its own
	// variables, which it must reset on every run; what it saw in its last run is
	// what was committed.
	Batch(fn func(StoreTx) error) error
}

// StoreTx is the view of the store inside one transaction.
type StoreTx interface {
	// Get returns the named server or ErrNotFound.
	Get(name string) (*Server, error)
	// List returns every server, ordered by name.
	List() ([]*Server, error)
	// Put writes s; it sets Revision to the stored revision plus one and maintains
	// CreatedAt and UpdatedAt (now is the transaction's clock).
	Put(s *Server) error
	// PutIfRevision is Put when the stored revision equals expected: 0 means the server
	// must not exist (a tombstone does not count), AnyRevision means no condition.
	// Otherwise it returns a *RevisionMismatchError carrying the current revision.
	PutIfRevision(s *Server, expected uint64) error
	// NameAtPath returns the name of the server at path segment path, or ErrNotFound.
	// It is an index lookup (no record is decoded).
	NameAtPath(path string) (string, error)
	// Delete removes the named server, its recorded health and its credential and leaves
	// a Tombstone (revision + 1); deleting a missing name is not an error.
	Delete(name string) error

	// GetTombstone returns the tombstone of a deleted server or ErrNotFound. A server
	// registered again loses its tombstone; its revision continues from it.
	GetTombstone(name string) (*Tombstone, error)
	// ListTombstones returns every tombstone, ordered by name. List never includes them.
	ListTombstones() ([]*Tombstone, error)

	// Restore writes s exactly as given (revision and timestamps kept) and removes any
	// tombstone of its name. It is for import; s must be normalised.
	Restore(s *Server) error
	// RestoreTombstone writes t as given; it is for import.
	RestoreTombstone(t *Tombstone) error
	// DeleteTombstone removes the named server's tombstone (and nothing else); a
	// missing one is not an error. The name's revisions then start again from 1.
	DeleteTombstone(name string) error
	// Purge removes everything held under name (record, health, credential, tombstone)
	// without leaving a tombstone. It is for import's replace mode.
	Purge(name string) error

	// GetStatus returns the last recorded health of the named server or ErrNotFound.
	// Health is kept apart from the server record: writing one never touches the other.
	GetStatus(name string) (*ServerHealth, error)
	// ListStatus returns every recorded health, ordered by server name.
	ListStatus() ([]*ServerHealth, error)
	// PutStatus records h under h.Server. It never modifies the server record.
	PutStatus(h *ServerHealth) error

	// GetCredential returns the sealed (encrypted) backend credential of the named
	// server or ErrNotFound. The store never sees plaintext.
	GetCredential(name string) ([]byte, error)
	// ListCredentials returns the names of servers that have a stored credential.
	ListCredentials() ([]string, error)
	// PutCredential stores the sealed credential of the named server.
	PutCredential(name string, sealed []byte) error
	// DeleteCredential removes the named server's credential; a missing one is not an error.
	DeleteCredential(name string) error
}

// SizeReporter is implemented by stores that can tell how large they are on disk.
type SizeReporter interface {
	SizeBytes() (int64, error)
}

// stamp sets the bookkeeping fields of s for a write over prev (nil when new);
// tombRev is the revision of the name's tombstone (0 if none), from which a re-created
// server continues.
func stamp(s, prev *Server, tombRev uint64, now time.Time) {
	if prev == nil {
		s.Revision = tombRev + 1
		s.CreatedAt = now
	} else {
		s.Revision = prev.Revision + 1
		s.CreatedAt = prev.CreatedAt
	}
	s.UpdatedAt = now
}
