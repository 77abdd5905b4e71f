package registryapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// v01Cache holds, for each published server, its ServerResponse as the JSON that
// json.Marshal gives it, so that a list page is the concatenation of cached entries
// rather than a reflection-driven encoding of 30 structs with a map each.
//
// The one request-dependent part of an entry, the origin that starts its remote URL
// (public_url, or the request's scheme and Host), is left out: an entry is the JSON
// before the URL's first character (head) and after the origin (tail), and a page
// writes head, the origin JSON-escaped once per request, tail. JSON escaping works
// character by character and the rest of the URL starts with an ASCII '/', so
// escape(origin)+escape(rest) = escape(origin+rest) byte for byte.
//
// Entries sit in a table parallel to the index's name-ordered snapshot of servers
// (App.ListServers), so a page finds its entries by position, without hashing. Every
// change of the registry replaces that snapshot; the first page served from a new
// snapshot builds a new table, carrying the entries over by name (one merge of two
// sorted lists: the same order of work as the index's own copy of the snapshot), so
// the table never holds more entries than the registry has servers. Records are
// immutable once indexed (a change replaces the *Server and bumps its revision), so an
// entry is valid while it was rendered from the very record now at its position;
// anything else renders it anew. The handler's own settings that shape an entry
// (namespace, gateway prefix, auth header) are part of the key too: when they change
// (tests do that), every entry is stale.
type v01Cache struct {
	table atomic.Pointer[v01Table]
	key   atomic.Pointer[v01CacheKey]
	// origin is the last origin escaped for JSON (public_url, or usually one Host).
	origin atomic.Pointer[v01EscapedOrigin]
	// off renders every page through encoding/json, as before the cache (tests).
	off bool
}

// v01Table is the cache's entries for one snapshot of the index.
type v01Table struct {
	servers []*model.Server            // the snapshot (App.ListServers)
	entries []atomic.Pointer[v01Entry] // entries[i] renders servers[i], or nil
}

// v01CacheKey is the handler configuration entries were rendered under.
type v01CacheKey struct {
	namespace, gatewayPrefix string
	authHeaderRequired       bool
}

// v01Entry is one server's rendered ServerResponse, split around the origin.
type v01Entry struct {
	key        *v01CacheKey
	srv        *model.Server
	rev        uint64
	head, tail []byte
}

// v01EscapedOrigin is an origin and its JSON escaping.
type v01EscapedOrigin struct {
	origin  string
	escaped []byte
}

// escapedOrigin returns origin JSON-escaped (without quotes), reusing the last one's.
func (c *v01Cache) escapedOrigin(origin string) []byte {
	if o := c.origin.Load(); o != nil && o.origin == origin {
		return o.escaped
	}
	o := &v01EscapedOrigin{origin, v01AppendJSONString(nil, origin)}
	c.origin.Store(o)
	return o.escaped
}

// v01PagePool recycles page buffers (of at most v01MaxPooledPage bytes).
var v01PagePool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// v01MaxPooledPage is the largest page buffer put back into v01PagePool: a page of
// 100 entries is about 50 KiB, unless the request's Host is very long.
const v01MaxPooledPage = 256 << 10

// v01URLKey is what precedes the remote URL's value in a rendered ServerResponse.
var v01URLKey = []byte(`"url":"`)

// v01CacheKeyOf returns the key of h's current settings (the cache's, when they are
// unchanged).
func (h *RegistryAPI) v01CacheKeyOf() *v01CacheKey {
	k := h.v01.key.Load()
	if k != nil && k.namespace == h.Namespace && k.gatewayPrefix == h.GatewayPrefix && k.authHeaderRequired == h.AuthHeaderRequired {
		return k
	}
	k = &v01CacheKey{h.Namespace, h.GatewayPrefix, h.AuthHeaderRequired}
	h.v01.key.Store(k)
	return k
}

// tableFor returns the table of the snapshot servers, building it if the cache's is
// of another snapshot.
func (c *v01Cache) tableFor(servers []*model.Server) *v01Table {
	old := c.table.Load()
	if old != nil && len(old.servers) == len(servers) && (len(servers) == 0 || &old.servers[0] == &servers[0]) {
		return old
	}
	t := &v01Table{servers: servers, entries: make([]atomic.Pointer[v01Entry], len(servers))}
	if old != nil {
		// Both snapshots are ordered by name: carry the entries of the names in both.
		for i, j := 0, 0; i < len(old.servers) && j < len(servers); {
			if old.servers[i] == servers[j] { // the same record: no need to compare names
				t.entries[j].Store(old.entries[i].Load())
				i++
				j++
				continue
			}
			switch d := strings.Compare(old.servers[i].Name, servers[j].Name); {
			case d < 0:
				i++
			case d > 0:
				j++
			default:
				t.entries[j].Store(old.entries[i].Load())
				i++
				j++
			}
		}
	}
	c.table.Store(t)
	return t
}

// entry returns the entry of s = t.servers[i] rendered under key k: the cached one if
// it is of this very record, else a new rendering (then cached). ok is false if the
// rendering cannot be split around its origin (not expected).
func (t *v01Table) entry(h *RegistryAPI, k *v01CacheKey, i int, s *model.Server) (*v01Entry, bool) {
	if e := t.entries[i].Load(); e != nil && e.srv == s && e.rev == s.Revision && e.key == k {
		return e, true
	}
	b, err := json.Marshal(h.publisher().Response(s, ""))
	if err != nil {
		return nil, false
	}
	j := bytes.Index(b, v01URLKey)
	if j < 0 {
		return nil, false
	}
	j += len(v01URLKey)
	e := &v01Entry{key: k, srv: s, rev: s.Revision, head: b[:j:j], tail: b[j:]}
	t.entries[i].Store(e)
	return e, true
}

// v01AppendJSONString appends s JSON-encoded as encoding/json encodes it, without
// the quotes.
func v01AppendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b[1:len(b)-1]...)
}
