package model

import (
	"errors"
	"fmt"
	"math"
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
