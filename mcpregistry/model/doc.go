// Package model holds the registry's plain value types and their validation: a Server
// record (transport, backend auth, forwarded identity, source and origin) with
// Normalize and FieldError; what health checks learn about a server (ServerHealth and its
// tool, prompt and resource lists); the Tombstone a deleted server leaves; and the errors
// that writes report (ErrNotFound, ErrPathConflict, RevisionMismatchError). It knows
// nothing of Caddy, storage or HTTP, so every other registry package can share it.
package model
