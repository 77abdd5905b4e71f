// Package search ranks servers and tools for a free-text query. Index is an immutable,
// sharded BM25 index over Sources (a server with its tools): Build makes one,
// WithChanges and WithSources derive the next snapshot by rebuilding only the shards
// whose servers changed, and Search returns ranked Hits. Tokenizing, stemming,
// stop words and query expansion (a table of the field's abbreviations, and WordNet
// concepts, wordnet.go) live here too, as do the exhaustive vector search over
// embeddings (Vectors) and reciprocal rank fusion (Fuse) of optional semantic
// ranking; keeping the index and the embeddings current as the registry changes is
// the registry app's job.
package search
