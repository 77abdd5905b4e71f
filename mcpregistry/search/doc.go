// Package search ranks servers and tools for a free-text query. Index is an immutable,
// sharded BM25 index over Sources (a server with its tools): Build makes one,
// WithChanges and WithSources derive the next snapshot by rebuilding only the shards
// whose servers changed, and Search returns ranked Hits. Tokenizing, stemming,
// synonyms and stop words live here too; keeping the index current as the registry
// changes is the registry app's job.
package search
