package mcpregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// Put registers (expectedRevision 0) or updates (expectedRevision = the stored
// revision; AnyRevision for no condition) the server s. The store is written in one
// transaction, which fails when another server uses s's path (the store's path index
// is the authority, so of two concurrent writers only one can take a path); then the
// in-memory index is updated, so every request that starts after Put returns is
// routed to the new record (or a newer one). A stale expectedRevision returns a
// *RevisionMismatchError (errors.Is ErrRevisionMismatch), an invalid record a
// *FieldError, a path in use an error matching ErrPathConflict. s is not modified;
// the stored record is returned. Re-registering a deleted name continues from its
// tombstone's revision.
//
// Concurrent writes commit together (Store.Batch: one fsync for every write queued
// behind a commit) and never hold the index lock while the store works.
func (a *App) Put(ctx context.Context, s *model.Server, expectedRevision uint64) (*model.Server, error) {
	return a.put(ctx, s, expectedRevision, nil)
}

// credentialWrite is a backend credential written in the same transaction as its
// record: sealed nil removes it.
type credentialWrite struct {
	sealed []byte
	bound  boundHeaders
}

// put is Put, also writing cred (when not nil; built by seal from the normalized
// record) in the same transaction, so a record and its secret change together or not
// at all.
func (a *App) put(ctx context.Context, s *model.Server, expectedRevision uint64, cred func(*model.Server) (*credentialWrite, error)) (*model.Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, &model.FieldError{Field: "server", Reason: "required"}
	}
	rec := cloneServer(s)
	if rec.Source == "" {
		rec.Source = model.SourceAPI
	}
	if err := rec.Normalize(); err != nil {
		return nil, err
	}
	if name, ok := strings.CutPrefix(rec.Upstream, model.BuiltinScheme+":"); ok && a.builtins[name] == nil {
		return nil, &model.FieldError{Field: "upstream", Reason: fmt.Sprintf("there is no builtin server %q", name)}
	}
	var cw *credentialWrite
	if cred != nil {
		var err error
		if cw, err = cred(rec); err != nil {
			return nil, err
		}
	}

	// fn may run more than once (Batch): it writes a fresh copy each time and keeps
	// only what its last (committed) run saw.
	var prev, stored *model.Server
	err := a.store.Batch(func(tx store.Tx) error {
		prev, stored = nil, nil
		p, err := tx.Get(rec.Name)
		if err != nil && !errors.Is(err, model.ErrNotFound) {
			return err
		}
		w := cloneServer(rec)
		if err := tx.PutIfRevision(w, expectedRevision); err != nil {
			return err
		}
		if cw != nil {
			if cw.sealed == nil {
				err = tx.DeleteCredential(w.Name)
			} else {
				err = tx.PutCredential(w.Name, cw.sealed)
			}
			if err != nil {
				return err
			}
		}
		prev, stored = p, w
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cw != nil {
		a.setCredential(stored.Name, cw.bound)
	} else if prev != nil && a.credentialOrigin(stored.Name) != "" && upstreamOrigin(prev.Upstream) != upstreamOrigin(stored.Upstream) {
		a.logger.Warn("backend credential suspended: the server's upstream moved to another origin; "+
			"confirm the credential for it (POST /api/servers/<name>/credential/confirm) or set a new one",
			actor(ctx), zap.String("server", stored.Name))
	}
	a.syncIndex(stored.Name, stored, 0)
	if prev != nil && prev.Upstream != stored.Upstream {
		a.health.byServer.Delete(stored.Name) // the last check was of another upstream
	}
	if stored.Enabled && (prev == nil || !prev.Enabled || prev.Upstream != stored.Upstream ||
		prev.Transport != stored.Transport || cw != nil) {
		a.kickHealth(stored.Name)
	}
	event := EventServerRegistered
	if prev != nil {
		event = EventServerUpdated
	}
	a.logger.Info(strings.ReplaceAll(event, "_", " "), actor(ctx), zap.String("server", stored.Name),
		zap.String("path", stored.Path), zap.Uint64("revision", stored.Revision))
	a.emit(event, map[string]any{"server": stored.Name, "path": stored.Path, "revision": stored.Revision})
	a.searchServerChanged(stored.Name)
	return cloneServer(stored), nil
}

// SetEnabled enables or disables the named server (a disabled one stays routed and
// answers 503) under the same rules as Put, and returns the stored record.
func (a *App) SetEnabled(ctx context.Context, name string, enabled bool, expectedRevision uint64) (*model.Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var cur *model.Server
	err := a.store.View(func(tx store.Tx) (err error) { cur, err = tx.Get(name); return })
	if err != nil {
		return nil, err
	}
	if expectedRevision == model.AnyRevision {
		// Condition on what we read, so that a concurrent edit is not overwritten.
		expectedRevision = cur.Revision
	}
	if cur.Revision != expectedRevision {
		return nil, &model.RevisionMismatchError{Name: name, Expected: expectedRevision, Current: cur.Revision}
	}
	cur.Enabled = enabled
	return a.Put(ctx, cur, expectedRevision)
}

// Delete removes the named server (leaving a tombstone), its health and credential,
// then drops it from the index: requests that start after Delete returns get 404.
// expectedRevision is the stored revision or AnyRevision. A missing name is ErrNotFound.
func (a *App) Delete(ctx context.Context, name string, expectedRevision uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var prev *model.Server
	err := a.store.Batch(func(tx store.Tx) error {
		prev = nil // fn may run more than once (Batch)
		p, err := tx.Get(name)
		if err != nil {
			return err
		}
		if expectedRevision != model.AnyRevision && p.Revision != expectedRevision {
			return &model.RevisionMismatchError{Name: name, Expected: expectedRevision, Current: p.Revision}
		}
		if err := tx.Delete(name); err != nil {
			return err
		}
		prev = p
		return nil
	})
	if err != nil {
		return err
	}
	a.syncIndex(name, nil, prev.Revision+1)
	a.health.byServer.Delete(name)
	a.setCredential(name, boundHeaders{})
	a.logger.Info("server removed", actor(ctx), zap.String("server", name), zap.Uint64("revision", prev.Revision+1))
	a.emit(EventServerRemoved, map[string]any{"server": name, "path": prev.Path, "revision": prev.Revision + 1})
	a.searchServerChanged(name)
	return nil
}

// syncIndex brings the index entry of name up to date after a committed write of it
// (committed: the record written, or nil for a delete whose tombstone has revision
// tombRev), and returns once the index holds that write or a newer one.
//
// Writers commit without the index lock, so their index updates may arrive in any
// order: an update arriving late must not put back an older revision (or a deleted
// server). So the update does not apply committed as such: under ix.mu it reads the
// name's latest committed state from the store and indexes that. Each update reads a
// state at least as new as the one before it, so the index never goes back. (This
// also covers a revision that restarts after a tombstone purge, and Import, which
// rebuilds the index under ix.mu.)
//
// Updates are combined: whoever gets ix.mu applies every update queued so far, with
// one read transaction and one copy of the sorted list, so that concurrent writers
// do not each copy the 20,000-entry list.
func (a *App) syncIndex(name string, committed *model.Server, tombRev uint64) {
	r := &indexSync{name: name, committed: committed, tombRev: tombRev}
	q := &a.writes.indexQueue
	q.mu.Lock()
	q.pending = append(q.pending, r)
	q.mu.Unlock()

	ix := a.index
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if r.done {
		return // applied by another writer's syncIndex
	}
	q.mu.Lock()
	batch := q.pending
	q.pending = nil
	q.mu.Unlock()
	a.applyIndexSyncs(batch)
}

// indexSync is one committed write waiting for its index update.
type indexSync struct {
	name      string
	committed *model.Server // nil: deleted
	tombRev   uint64
	done      bool // guarded by the index's mu
}

// indexSyncQueue holds the index updates not applied yet.
type indexSyncQueue struct {
	mu      sync.Mutex
	pending []*indexSync
}

// applyIndexSyncs applies reqs (see syncIndex). Callers hold ix.mu.
func (a *App) applyIndexSyncs(reqs []*indexSync) {
	ix := a.index
	byName := make(map[string]*indexSync, len(reqs)) // the last write of each name
	for _, r := range reqs {
		byName[r.name] = r
	}
	latest := make(map[string]*model.Server, len(byName)) // nil: not stored
	err := a.store.View(func(tx store.Tx) error {
		for name := range byName {
			s, err := tx.Get(name)
			if errors.Is(err, model.ErrNotFound) {
				latest[name] = nil
				continue
			}
			if err != nil {
				return err
			}
			latest[name] = s
		}
		return nil
	})
	if err != nil {
		// Unreadable now (it was just written): fall back to the revision order.
		a.logger.Error("reading back registry writes", zap.Error(err))
		clear(latest)
		for _, r := range reqs {
			cur, ok := latest[r.name]
			if !ok {
				cur = ix.byName(r.name)
			}
			switch {
			case r.committed == nil && cur != nil && cur.Revision < r.tombRev:
				cur = nil
			case r.committed != nil && (cur == nil || cur.Revision < r.committed.Revision):
				cur = r.committed
			}
			latest[r.name] = cur
		}
	}

	changed := make(map[string]*model.Server, len(latest)) // name → new record, nil: removed
	for name, s := range latest {
		cur := ix.byName(name)
		switch {
		case s == nil:
			if cur == nil {
				continue
			}
			ix.removeRoutes(cur)
		case cur != nil && cur.Revision == s.Revision && cur.UpdatedAt.Equal(s.UpdatedAt):
			continue // already indexed
		default:
			if c := byName[name].committed; c != nil && c.Revision == s.Revision && c.UpdatedAt.Equal(s.UpdatedAt) {
				s = c // the same record: index the caller's copy
			}
			ix.setRoutes(cur, s)
		}
		changed[name] = s
	}
	if len(changed) > 0 {
		ix.setSortedMany(changed)
	}
	for _, r := range reqs {
		r.done = true
	}
}

// setSortedMany replaces, inserts (value non-nil) and removes (nil) the named
// records in the sorted snapshot with one copy (runs of unchanged records are copied
// whole). Callers hold ix.mu.
func (ix *Index) setSortedMany(changed map[string]*model.Server) {
	cur := ix.list()
	type op struct {
		name  string
		s     *model.Server
		at    int
		found bool
	}
	ops := make([]op, 0, len(changed))
	for name, s := range changed {
		at, found := slices.BinarySearchFunc(cur, name, func(x *model.Server, name string) int { return strings.Compare(x.Name, name) })
		if s == nil && !found {
			continue
		}
		ops = append(ops, op{name, s, at, found})
	}
	slices.SortFunc(ops, func(x, y op) int { return strings.Compare(x.name, y.name) })
	next := make([]*model.Server, 0, len(cur)+len(ops))
	pos := 0
	for _, o := range ops {
		next = append(next, cur[pos:o.at]...)
		pos = o.at
		if o.found {
			pos++ // replaced or removed
		}
		if o.s != nil {
			next = append(next, o.s)
		}
	}
	next = append(next, cur[pos:]...)
	ix.sorted.Store(&next)
}

// checkRestoredUpstreams applies the runtime_upstreams rules to the servers of a
// backup document, outside any lock (the checks resolve names): a backup is a way to
// register servers too. The config's own targets pass. A document that does not
// decode is left to store.RestoreBackup, which names what is wrong with it.
func (a *App) checkRestoredUpstreams(ctx context.Context, data []byte) error {
	var doc struct {
		Servers []*model.Server `json:"servers"`
	}
	if json.Unmarshal(data, &doc) != nil || a.RuntimeUpstreams == nil {
		return nil
	}
	for _, s := range doc.Servers {
		if s == nil || strings.HasPrefix(s.Upstream, model.BuiltinScheme+":") || a.trustedUpstream(s.Upstream) {
			continue
		}
		if err := a.CheckRuntimeUpstream(ctx, s.Upstream); err != nil {
			return fmt.Errorf("server %q: %w", s.Name, err)
		}
	}
	return nil
}

// Backup writes the whole store (servers, health, tombstones, sealed credentials,
// collections) as one JSON store.Backup. Credentials are never decrypted.
func (a *App) Backup(w io.Writer) error { return store.WriteBackup(a.store, w) }

// Restore loads a backup document (at most store.MaxBackupBytes) in one transaction,
// merging with or replacing what the store holds; every record is validated first and
// any error fails the whole restore. Sealed credentials must open with this registry's
// keys. Every restored upstream passes the runtime_upstreams checks, as any other
// runtime write does, except the config's own targets. The index, credentials and
// health in memory are then rebuilt from the store.
func (a *App) Restore(ctx context.Context, r io.Reader, mode store.RestoreMode) (*store.RestoreResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, store.MaxBackupBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > store.MaxBackupBytes {
		return nil, fmt.Errorf("backup is larger than %d bytes", store.MaxBackupBytes)
	}
	if err := a.checkRestoredUpstreams(ctx, data); err != nil {
		return nil, err
	}
	r = bytes.NewReader(data)
	ix := a.index
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var (
		servers []*model.Server
		creds   map[string]boundHeaders
	)
	res, err := store.RestoreBackup(a.store, r, mode, func(tx store.Tx) error {
		var err error
		if servers, err = tx.List(); err != nil {
			return err
		}
		for _, s := range servers {
			if name, ok := strings.CutPrefix(s.Upstream, model.BuiltinScheme+":"); ok && a.builtins[name] == nil {
				return fmt.Errorf("server %q: there is no builtin server %q", s.Name, name)
			}
		}
		names, err := tx.ListCredentials()
		if err != nil {
			return err
		}
		creds = make(map[string]boundHeaders, len(names))
		for _, n := range names {
			raw, err := tx.GetCredential(n)
			if err != nil {
				return err
			}
			if a.creds.keys == nil {
				return fmt.Errorf("server %q has a credential but the registry has no encryption_key", n)
			}
			c, _, err := a.creds.keys.open(n, raw)
			if err != nil {
				return err
			}
			creds[n] = c.bound()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	keep := make(map[string]bool, len(servers))
	for _, s := range servers {
		keep[s.Name] = true
		ix.set(ix.byName(s.Name), s)
	}
	for _, old := range ix.list() {
		if !keep[old.Name] {
			ix.remove(old)
		}
	}
	a.health.byServer.Range(func(k, _ any) bool {
		if !keep[k.(string)] {
			a.health.byServer.Delete(k)
		}
		return true
	})
	if err := a.loadHealth(); err != nil {
		a.logger.Warn("loading imported server health", zap.Error(err))
	}
	a.creds.mu.Lock()
	a.creds.headers = creds
	a.creds.mu.Unlock()
	a.logger.Info("registry imported", zap.String("mode", string(res.Mode)), zap.Int("servers", res.Servers),
		zap.Int("removed", res.Removed))
	a.invalidateSearch()
	return res, nil
}

// setCredential replaces (b.headers nil: removes) the named server's backend headers
// in memory.
func (a *App) setCredential(name string, b boundHeaders) {
	a.creds.mu.Lock()
	defer a.creds.mu.Unlock()
	if _, ok := a.creds.headers[name]; !ok && b.headers == nil {
		return
	}
	m := maps.Clone(a.creds.headers)
	if m == nil {
		m = map[string]boundHeaders{}
	}
	if b.headers == nil {
		delete(m, name)
	} else {
		m[name] = b
	}
	a.creds.headers = m
}

// credentialOrigin is the origin the named server's credential was given for, or "".
func (a *App) credentialOrigin(name string) string {
	a.creds.mu.RLock()
	defer a.creds.mu.RUnlock()
	return a.creds.headers[name].origin
}

// set replaces prev (nil when new) with s in the index. Callers hold ix.mu.
func (ix *Index) set(prev, s *model.Server) {
	ix.setRoutes(prev, s)
	ix.setSorted(s)
}

// setRoutes is set without the sorted snapshot.
func (ix *Index) setRoutes(prev, s *model.Server) {
	if prev != nil && prev.Path != s.Path {
		if cur := ix.lookup(prev.Path); cur != nil && cur.Name == s.Name {
			ix.byPath.Delete(prev.Path)
		}
	}
	ix.byPath.Store(s.Path, s)
	ix.names.Store(s.Name, s)
}

// remove drops s from the index. Callers hold ix.mu.
func (ix *Index) remove(s *model.Server) {
	if ix.removeRoutes(s) {
		ix.removeSorted(s.Name)
	}
}

// removeRoutes is remove without the sorted snapshot; it reports whether the name
// was indexed.
func (ix *Index) removeRoutes(s *model.Server) bool {
	if cur := ix.lookup(s.Path); cur != nil && cur.Name == s.Name {
		ix.byPath.Delete(s.Path)
	}
	cur := ix.byName(s.Name)
	if cur == nil {
		return false
	}
	ix.names.Delete(s.Name)
	if cur.Path != s.Path {
		if c := ix.lookup(cur.Path); c != nil && c.Name == s.Name {
			ix.byPath.Delete(cur.Path)
		}
	}
	return true
}

func cloneServer(s *model.Server) *model.Server {
	c := *s
	c.Tags = append([]string(nil), s.Tags...)
	if len(s.Tags) == 0 {
		c.Tags = s.Tags
	}
	if s.ForwardIdentity != nil {
		f := *s.ForwardIdentity
		c.ForwardIdentity = &f
	}
	return &c
}

// actor names who made a runtime write, for the registry's log: the authenticated
// caller's subject (REST API, registry MCP tools) or "anonymous".
func actor(ctx context.Context) zap.Field {
	if c, ok := principal.FromContext(ctx); ok {
		return zap.String("by", c.Subject)
	}
	return zap.String("by", "anonymous")
}
