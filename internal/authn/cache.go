package authn

import (
	"sync"
	"time"

	"github.com/caddymcp/caddymcp/internal/principal"
)

// tokenCache remembers validated tokens by the SHA-256 of the token (the raw token is
// never stored) until the token's exp, bounded in count with LRU eviction. It is sharded
// to keep lock contention off the hot path.
type tokenCache struct {
	shards []cacheShard
	mask   uint32
}

type cacheKey = [32]byte

type cacheEntry struct {
	key        cacheKey
	p          *principal.Caller
	exp        time.Time
	src        *keySource
	gen        uint64 // src.gen at validation time: a change of key material invalidates
	prev, next *cacheEntry
}

type cacheShard struct {
	mu   sync.Mutex
	m    map[cacheKey]*cacheEntry
	head cacheEntry // sentinel of the LRU list: head.next is the most recent
	cap  int
	_    [40]byte // keep shards on separate cache lines
}

func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	// Shards of at least 64 entries, so that LRU order is nearly global; at most 16.
	n := 1
	for n < 16 && n*2*64 <= size {
		n *= 2
	}
	c := &tokenCache{shards: make([]cacheShard, n), mask: uint32(n - 1)}
	per := (size + n - 1) / n
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[cacheKey]*cacheEntry)
		s.head.next, s.head.prev = &s.head, &s.head
		s.cap = per
	}
	return c
}

func (c *tokenCache) shard(k *cacheKey) *cacheShard {
	return &c.shards[uint32(k[0])&c.mask]
}

// get returns the principal for k if present, unexpired at now, and still backed by the
// same key material.
func (c *tokenCache) get(k *cacheKey, now time.Time) *principal.Caller {
	s := c.shard(k)
	s.mu.Lock()
	e := s.m[*k]
	if e == nil {
		s.mu.Unlock()
		return nil
	}
	if !now.Before(e.exp) || e.src.gen.Load() != e.gen {
		s.unlink(e)
		delete(s.m, *k)
		s.mu.Unlock()
		return nil
	}
	if s.head.next != e {
		s.unlink(e)
		s.pushFront(e)
	}
	p := e.p
	s.mu.Unlock()
	return p
}

func (c *tokenCache) put(k *cacheKey, p *principal.Caller, src *keySource, gen uint64) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[*k]; e != nil {
		e.p, e.exp, e.src, e.gen = p, p.ExpiresAt, src, gen
		s.unlink(e)
		s.pushFront(e)
		return
	}
	for len(s.m) >= s.cap {
		last := s.head.prev
		s.unlink(last)
		delete(s.m, last.key)
	}
	e := &cacheEntry{key: *k, p: p, exp: p.ExpiresAt, src: src, gen: gen}
	s.m[*k] = e
	s.pushFront(e)
}

func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (s *cacheShard) unlink(e *cacheEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}
