// Package storetest is the behaviour suite every store.Store backend must pass: revisions
// and conditional writes, tombstones, the path index, batching, health, Collections and
// backups. A backend's test calls Run with a function that opens an empty store.
package storetest

import (
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// Opener opens a new, empty store for one test; it registers the store's release with
// t.Cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the suite against the stores that open returns.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Revisions", testRevisions},
		{"UpdateIsAtomic", testUpdateIsAtomic},
		{"TombstonesAndConditionalWrites", testTombstonesAndConditionalWrites},
		{"PathIndexFollowsWrites", testPathIndexFollowsWrites},
		{"BatchPathConflict", testBatchPathConflict},
		{"BatchIsolatesFailures", testBatchIsolatesFailures},
		{"BatchPanicReachesCaller", testBatchPanicReachesCaller},
		{"StatusApartFromRecord", testStatusBucket},
		{"Collections", testCollections},
		{"CollectionsInBatch", testCollectionsInBatch},
		{"BackupRoundTrip", testExportImportRoundTrip},
		{"RestoreReplaceAndMerge", testImportReplaceAndMerge},
		{"RestoreFailsWhole", testImportFailsWhole},
		{"BackupCarriesCollections", testBackupCarriesCollections},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}
