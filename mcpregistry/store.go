package mcpregistry

import (
	"errors"
	"time"
)

// ErrNotFound is returned for a server name the store does not hold.
var ErrNotFound = errors.New("server not found")

// Store persists server records. Implementations keep their own types to themselves:
// callers see only Server values. Every Update is one atomic transaction: when fn returns
// an error nothing it wrote is kept.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(StoreTx) error) error
	// Update runs fn in a read-write transaction.
	Update(fn func(StoreTx) error) error
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
	// Delete removes the named server, its recorded health and its credential; deleting a missing name
	// is not an error.
	Delete(name string) error

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

// stamp sets the bookkeeping fields of s for a write over prev (nil when new).
func stamp(s, prev *Server, now time.Time) {
	if prev == nil {
		s.Revision = 1
		s.CreatedAt = now
	} else {
		s.Revision = prev.Revision + 1
		s.CreatedAt = prev.CreatedAt
	}
	s.UpdatedAt = now
}
