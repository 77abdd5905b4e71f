package mcpregistry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// Events emitted by runtime writes (with data "server", "path", "revision").
const (
	EventServerRegistered = "server_registered"
	EventServerUpdated    = "server_updated"
	EventServerRemoved    = "server_removed"
)

// ErrPathConflict is matched (errors.Is) when a write would route two servers at one path.
var ErrPathConflict = errors.New("path already in use")

// Put registers (expectedRevision 0) or updates (expectedRevision = the stored
// revision; AnyRevision for no condition) the server s. The store is written in one
// transaction that also checks that no other server uses s's path; then the in-memory
// index is updated, so every request that starts after Put returns is routed to the
// new record. A stale expectedRevision returns a *RevisionMismatchError
// (errors.Is ErrRevisionMismatch), an invalid record a *FieldError, a path in use an
// error matching ErrPathConflict. s is not modified; the stored record is returned.
// Re-registering a deleted name continues from its tombstone's revision.
func (a *App) Put(ctx context.Context, s *Server, expectedRevision uint64) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, &FieldError{"server", "required"}
	}
	rec := cloneServer(s)
	if rec.Source == "" {
		rec.Source = SourceAPI
	}
	if err := rec.Normalize(); err != nil {
		return nil, err
	}
	if name, ok := strings.CutPrefix(rec.Upstream, BuiltinScheme+":"); ok && a.builtins[name] == nil {
		return nil, &FieldError{"upstream", fmt.Sprintf("there is no builtin server %q", name)}
	}

	ix := a.index
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var prev *Server
	err := a.store.Update(func(tx StoreTx) error {
		var err error
		prev, err = tx.Get(rec.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := checkPathFree(tx, ix, rec); err != nil {
			return err
		}
		return tx.PutIfRevision(rec, expectedRevision)
	})
	if err != nil {
		return nil, err
	}
	ix.set(prev, rec)
	if prev != nil && prev.Upstream != rec.Upstream {
		a.health.Delete(rec.Name) // the last check was of another upstream
	}
	event := EventServerRegistered
	if prev != nil {
		event = EventServerUpdated
	}
	a.logger.Info(strings.ReplaceAll(event, "_", " "), zap.String("server", rec.Name),
		zap.String("path", rec.Path), zap.Uint64("revision", rec.Revision))
	a.emit(event, map[string]any{"server": rec.Name, "path": rec.Path, "revision": rec.Revision})
	a.invalidateSearch()
	return cloneServer(rec), nil
}

// SetEnabled enables or disables the named server (a disabled one stays routed and
// answers 503) under the same rules as Put, and returns the stored record.
func (a *App) SetEnabled(ctx context.Context, name string, enabled bool, expectedRevision uint64) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var cur *Server
	err := a.store.View(func(tx StoreTx) (err error) { cur, err = tx.Get(name); return })
	if err != nil {
		return nil, err
	}
	if expectedRevision == AnyRevision {
		// Condition on what we read, so that a concurrent edit is not overwritten.
		expectedRevision = cur.Revision
	}
	if cur.Revision != expectedRevision {
		return nil, &RevisionMismatchError{Name: name, Expected: expectedRevision, Current: cur.Revision}
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
	ix := a.index
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var prev *Server
	err := a.store.Update(func(tx StoreTx) error {
		var err error
		prev, err = tx.Get(name)
		if err != nil {
			return err
		}
		if expectedRevision != AnyRevision && prev.Revision != expectedRevision {
			return &RevisionMismatchError{Name: name, Expected: expectedRevision, Current: prev.Revision}
		}
		return tx.Delete(name)
	})
	if err != nil {
		return err
	}
	ix.remove(prev)
	a.health.Delete(name)
	a.setCredential(name, nil)
	a.logger.Info("server removed", zap.String("server", name), zap.Uint64("revision", prev.Revision+1))
	a.emit(EventServerRemoved, map[string]any{"server": name, "path": prev.Path, "revision": prev.Revision + 1})
	a.invalidateSearch()
	return nil
}

// Export writes the whole store (servers, health, tombstones, sealed credentials) as
// JSON; see Export (the type) for what it holds. Credentials are never decrypted.
func (a *App) Export(w io.Writer) error { return ExportStore(a.store, w) }

// Import loads an export document (at most MaxImportBytes) in one transaction, merging
// with or replacing what the store holds; every record is validated first and any
// error fails the whole import. Sealed credentials must open with this registry's
// keys. The index, credentials and health in memory are then rebuilt from the store.
func (a *App) Import(ctx context.Context, r io.Reader, mode ImportMode) (*ImportResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ix := a.index
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var (
		servers []*Server
		creds   map[string]http.Header
	)
	res, err := ImportStore(a.store, r, mode, func(tx StoreTx) error {
		var err error
		if servers, err = tx.List(); err != nil {
			return err
		}
		for _, s := range servers {
			if name, ok := strings.CutPrefix(s.Upstream, BuiltinScheme+":"); ok && a.builtins[name] == nil {
				return fmt.Errorf("server %q: there is no builtin server %q", s.Name, name)
			}
		}
		names, err := tx.ListCredentials()
		if err != nil {
			return err
		}
		creds = make(map[string]http.Header, len(names))
		for _, n := range names {
			raw, err := tx.GetCredential(n)
			if err != nil {
				return err
			}
			if a.keys == nil {
				return fmt.Errorf("server %q has a credential but the registry has no encryption_key", n)
			}
			c, _, err := a.keys.open(n, raw)
			if err != nil {
				return err
			}
			creds[n] = c.headers()
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
	a.health.Range(func(k, _ any) bool {
		if !keep[k.(string)] {
			a.health.Delete(k)
		}
		return true
	})
	if err := a.loadHealth(); err != nil {
		a.logger.Warn("loading imported server health", zap.Error(err))
	}
	a.credMu.Lock()
	a.credentials = creds
	a.credMu.Unlock()
	a.logger.Info("registry imported", zap.String("mode", string(res.Mode)), zap.Int("servers", res.Servers),
		zap.Int("removed", res.Removed))
	a.invalidateSearch()
	return res, nil
}

// setCredential replaces (h nil: removes) the named server's backend headers in memory.
func (a *App) setCredential(name string, h http.Header) {
	a.credMu.Lock()
	defer a.credMu.Unlock()
	if _, ok := a.credentials[name]; !ok && h == nil {
		return
	}
	m := maps.Clone(a.credentials)
	if m == nil {
		m = map[string]http.Header{}
	}
	if h == nil {
		delete(m, name)
	} else {
		m[name] = h
	}
	a.credentials = m
}

// checkPathFree fails when a server other than s is routed, or stored, at s.Path.
func checkPathFree(tx StoreTx, ix *Index, s *Server) error {
	if other := ix.lookup(s.Path); other != nil && other.Name != s.Name {
		return fmt.Errorf("%w: path %q is used by server %q", ErrPathConflict, s.Path, other.Name)
	}
	all, err := tx.List()
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Path == s.Path && o.Name != s.Name {
			return fmt.Errorf("%w: path %q is used by server %q", ErrPathConflict, s.Path, o.Name)
		}
	}
	return nil
}

// set replaces prev (nil when new) with s in the index. Callers hold ix.mu.
func (ix *Index) set(prev, s *Server) {
	if prev != nil && prev.Path != s.Path {
		if cur := ix.lookup(prev.Path); cur != nil && cur.Name == s.Name {
			ix.byPath.Delete(prev.Path)
		}
	}
	ix.byPath.Store(s.Path, s)
	ix.names.Store(s.Name, s)
	ix.setSorted(s)
}

// remove drops s from the index. Callers hold ix.mu.
func (ix *Index) remove(s *Server) {
	if cur := ix.lookup(s.Path); cur != nil && cur.Name == s.Name {
		ix.byPath.Delete(s.Path)
	}
	if cur := ix.byName(s.Name); cur != nil {
		ix.names.Delete(s.Name)
		ix.removeSorted(s.Name)
		if cur.Path != s.Path {
			if c := ix.lookup(cur.Path); c != nil && c.Name == s.Name {
				ix.byPath.Delete(cur.Path)
			}
		}
	}
}

func cloneServer(s *Server) *Server {
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
