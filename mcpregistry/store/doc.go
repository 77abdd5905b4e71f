// Package store persists the registry. Store is the contract every backend meets: atomic
// transactions (View, Update, and Batch for concurrent writers sharing one commit) over
// server records with revisions and path uniqueness, their tombstones, recorded health
// and sealed credentials, plus Collections, keyed records of other kinds held in
// namespaces of the same transactions. Bolt is the embedded bbolt backend, shared across
// overlapping Caddy configs; WriteBackup and RestoreBackup move a whole store as one JSON
// document. The storetest package holds the behaviour tests every backend must pass.
package store
