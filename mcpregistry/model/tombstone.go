package model

import "time"

// Tombstone records a deleted server so that readers (the v0.1 API's include_deleted,
// sync clients using updated_since) learn of the deletion, and so that revisions stay
// monotonic when the name is registered again.
type Tombstone struct {
	Name string `json:"name"`
	// Revision is the deleted record's revision plus one.
	Revision  uint64    `json:"revision"`
	DeletedAt time.Time `json:"deleted_at"`
}
