package mcpregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/v01"
)

// SyncConfig makes the registry pull the servers of another registry's v0.1 API
// (the official registry, or another caddymcp) into its own, periodically.
type SyncConfig struct {
	// From is the other registry's base URL, e.g. https://registry.modelcontextprotocol.io
	// (a trailing /v0.1 or /v0.1/servers is accepted and dropped).
	From string `json:"from"`
	// Interval between syncs. Default 1h. The first sync (a full one) runs when the
	// config starts; later ones ask only for what changed since (updated_since).
	Interval caddy.Duration `json:"interval,omitempty"`
	// NamePrefix starts the local name of every server imported from From, so that
	// imports of several registries cannot collide with each other or local records.
	NamePrefix string `json:"name_prefix,omitempty"`
}

// Limits of a sync.
const (
	DefaultSyncInterval = time.Hour
	syncPageLimit       = 100     // servers per page asked for (the official maximum)
	syncMaxPageBytes    = 4 << 20 // a larger page fails the sync
	syncMaxPages        = 1000    // 100,000 servers
	syncRequestTimeout  = 30 * time.Second
	// syncOverlap is subtracted from the remembered high-water mark: entries written
	// while the previous sync was reading may carry a slightly older updatedAt.
	// Re-reading them is harmless (unchanged records are not written).
	syncOverlap = 10 * time.Second
)

// syncRunner is the App's sync state (memory only).
type syncRunner struct {
	mu     sync.Mutex           // one sync at a time per App
	since  map[string]time.Time // from + "\x00" + prefix → newest updatedAt applied
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// SyncOptions says what SyncFrom pulls.
type SyncOptions struct {
	// From is the other registry's base URL.
	From string
	// NamePrefix starts the local names of the imported servers.
	NamePrefix string
	// Full ignores the remembered time of the last sync from From: every server is read,
	// and afterwards imported records of From that the source no longer lists are removed.
	Full bool
}

// normalizeSyncBase checks a registry base URL and drops a trailing /v0.1[/servers].
func normalizeSyncBase(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("from: %q is not a URL: %v", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("from: %q must be an http or https URL of a registry", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("from: %q must be a plain base URL (no credentials, query or fragment)", raw)
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, "/servers")
	p = strings.TrimSuffix(p, "/v0.1")
	u.Path = strings.TrimRight(p, "/")
	u.RawPath = ""
	return u.String(), nil
}

// provisionSync validates the sync configs and fills their defaults.
func (a *App) provisionSync() error {
	a.syncer.since = map[string]time.Time{}
	a.syncer.client = &http.Client{Timeout: syncRequestTimeout}
	for i := range a.Sync {
		c := &a.Sync[i]
		base, err := normalizeSyncBase(c.From)
		if err != nil {
			return fmt.Errorf("mcp_registry: sync %d: %w", i, err)
		}
		c.From = base
		if c.Interval == 0 {
			c.Interval = caddy.Duration(DefaultSyncInterval)
		}
	}
	return nil
}

// validateSync checks the provisioned sync configs.
func (a *App) validateSync() error {
	seen := map[string]bool{}
	for i := range a.Sync {
		c := &a.Sync[i]
		if c.Interval < caddy.Duration(time.Second) {
			return fmt.Errorf("mcp_registry: sync %s: interval %s is shorter than 1s", c.From, time.Duration(c.Interval))
		}
		if !v01.ValidNamePrefix(c.NamePrefix) {
			return fmt.Errorf("mcp_registry: sync %s: name_prefix %q must be characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit", c.From, c.NamePrefix)
		}
		key := c.From + "\x00" + c.NamePrefix
		if seen[key] {
			return fmt.Errorf("mcp_registry: sync %s (name_prefix %q) is configured twice", c.From, c.NamePrefix)
		}
		seen[key] = true
	}
	return nil
}

// startSync starts one goroutine per sync config, tied to the App's context.
func (a *App) startSync() {
	if len(a.Sync) == 0 || a.ctx.Context == nil {
		return
	}
	ctx, cancel := context.WithCancel(a.ctx)
	a.syncer.cancel = cancel
	for _, c := range a.Sync {
		a.syncer.wg.Add(1)
		go a.syncLoop(ctx, c)
	}
}

// stopSync stops the sync goroutines and waits for them.
func (a *App) stopSync() {
	if a.syncer.cancel != nil {
		a.syncer.cancel()
	}
	a.syncer.wg.Wait()
}

func (a *App) syncLoop(ctx context.Context, c SyncConfig) {
	defer a.syncer.wg.Done()
	select { // writes emit events: wait until every app of the config has started
	case <-ctx.Done():
		return
	case <-a.appsStarted:
	}
	for {
		a.syncLogged(ctx, c)
		t := time.NewTimer(time.Duration(c.Interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// syncLogged runs one periodic sync and logs its outcome; a panic is logged, not fatal.
func (a *App) syncLogged(ctx context.Context, c SyncConfig) {
	defer func() {
		if r := recover(); r != nil {
			a.logger.Error("registry sync panicked", zap.String("from", c.From), zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	res, err := a.SyncFrom(ctx, SyncOptions{From: c.From, NamePrefix: c.NamePrefix})
	if err != nil {
		if ctx.Err() != nil {
			return // stopping
		}
		a.logger.Error("registry sync failed", zap.String("from", c.From), zap.Error(err), zap.Any("result", res))
		return
	}
	a.logger.Info("registry sync", zap.String("from", c.From), zap.Int("pages", res.Pages),
		zap.Int("created", res.Created), zap.Int("updated", res.Updated), zap.Int("deleted", res.Deleted),
		zap.Int("unchanged", res.Unchanged), zap.Int("skipped", res.Skipped))
}

// SyncFrom pulls the latest version of every server of another registry's v0.1 API
// (GET <from>/v0.1/servers?version=latest&limit=100, following nextCursor; after a
// first complete sync only updated_since the newest change it applied) into this
// registry: servers with a usable remote are created or updated through Put, entries of
// status "deleted" remove the record imported for them through Delete. Records that did
// not come from From (their Origin) are never changed or removed. Each page is applied
// as it arrives: when a page fails (transport, status, size, JSON), the sync stops with
// an error and the pages before stay applied; the remembered time does not advance.
// A full sync (the first, or opts.Full) also removes the records imported from From
// that the source no longer lists.
func (a *App) SyncFrom(ctx context.Context, opts SyncOptions) (*ImportResult, error) {
	base, err := normalizeSyncBase(opts.From)
	if err != nil {
		return nil, err
	}
	if !v01.ValidNamePrefix(opts.NamePrefix) {
		return nil, &model.FieldError{Field: "name_prefix", Reason: fmt.Sprintf("%q must be characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit", opts.NamePrefix)}
	}
	a.syncer.mu.Lock()
	defer a.syncer.mu.Unlock()
	if a.syncer.since == nil {
		a.syncer.since = map[string]time.Time{}
	}
	client := a.syncer.client
	if client == nil {
		client = &http.Client{Timeout: syncRequestTimeout}
	}
	key := base + "\x00" + opts.NamePrefix
	since := a.syncer.since[key]
	if opts.Full {
		since = time.Time{}
	}
	full := since.IsZero()
	res := &ImportResult{From: base}
	newest, failed := since, false
	listed := map[string]bool{} // local names of the usable servers the source lists (full sync)
	cursor, seenCursors := "", map[string]bool{}
	for {
		if res.Pages == syncMaxPages {
			err := fmt.Errorf("sync from %s: more than %d pages; stopped", base, syncMaxPages)
			res.Error = err.Error()
			return res, err
		}
		q := url.Values{"limit": {fmt.Sprint(syncPageLimit)}, "version": {"latest"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if full {
			q.Set("include_deleted", "true")
		} else {
			q.Set("updated_since", since.Add(-syncOverlap).UTC().Format(time.RFC3339Nano))
		}
		page, err := fetchV01Page(ctx, client, base+"/v0.1/servers?"+q.Encode())
		if err != nil {
			err = fmt.Errorf("sync from %s, page %d: %w", base, res.Pages+1, err)
			res.Error = err.Error()
			return res, err
		}
		res.Pages++
		for i := range page.Servers {
			e := &page.Servers[i]
			t, err := a.applySyncEntry(ctx, e, base, opts.NamePrefix, res, listed)
			if cerr := ctx.Err(); cerr != nil {
				res.Error = cerr.Error()
				return res, cerr
			}
			if err != nil {
				// Not applied (a store error): keep the remembered time where it is so
				// that the next sync reads the entry again.
				res.skip(e.Server.Name, err.Error())
				a.logger.Warn("registry sync: entry not applied", zap.String("from", base), zap.String("server", e.Server.Name), zap.Error(err))
				failed = true
				continue
			}
			if t.After(newest) {
				newest = t
			}
		}
		cursor = page.Metadata.NextCursor
		if cursor == "" || len(page.Servers) == 0 {
			break
		}
		if seenCursors[cursor] {
			err := fmt.Errorf("sync from %s: the source returned cursor %q twice; stopped", base, cursor)
			res.Error = err.Error()
			return res, err
		}
		seenCursors[cursor] = true
	}
	if full {
		// Whatever this registry imported from base and the source no longer lists
		// (or lists without a usable remote) is gone at the source.
		for _, s := range a.ListServers() {
			official, ok := strings.CutPrefix(s.Origin, base+"#")
			if !ok || listed[s.Name] {
				continue
			}
			if name, err := v01.ImportedName(official, opts.NamePrefix); err != nil || name != s.Name {
				continue // imported from base under another name prefix
			}
			if err := a.removeImported(ctx, s.Name, s.Origin, res); err != nil {
				res.Error = err.Error()
				return res, err
			}
		}
	}
	if !failed {
		a.syncer.since[key] = newest
	}
	return res, nil
}

// applySyncEntry applies one entry of a page and returns its updatedAt (zero when it
// has none). Entries that cannot be imported are counted as skipped; an error is a
// failure worth retrying (the store, the context).
func (a *App) applySyncEntry(ctx context.Context, e *v01.InResponse, base, prefix string, res *ImportResult, listed map[string]bool) (time.Time, error) {
	var updated time.Time
	status := v01.StatusActive
	if off := e.Meta.Official; off != nil {
		if off.IsLatest != nil && !*off.IsLatest {
			return time.Time{}, nil // an older version: only the latest is imported
		}
		if off.Status != "" {
			status = off.Status
		}
		if t, err := time.Parse(time.RFC3339, off.UpdatedAt); err == nil {
			updated = t
		}
	}
	origin := base + "#" + e.Server.Name
	var err error
	switch status {
	case v01.StatusDeleted:
		name, nerr := v01.ImportedName(e.Server.Name, prefix)
		if nerr != nil {
			res.skip(e.Server.Name, nerr.Error())
			break
		}
		err = a.removeImported(ctx, name, origin, res)
	case v01.StatusActive, v01.StatusDeprecated:
		s, headers, merr := v01.ToServer(&e.Server, prefix, base)
		if merr != nil {
			res.skip(e.Server.Name, merr.Error())
			// A server that had a usable remote and no longer has one: drop our copy.
			if name, nerr := v01.ImportedName(e.Server.Name, prefix); nerr == nil {
				if cur := a.Server(name); cur != nil && cur.Origin == origin {
					err = a.removeImported(ctx, name, origin, res)
				}
			}
			break
		}
		listed[s.Name] = true
		err = a.applyImported(ctx, s, headers, res)
	default:
		res.skip(e.Server.Name, fmt.Sprintf("status %q is not one of active, deprecated, deleted", status))
	}
	return updated, err
}

// fetchV01Page GETs one page of a v0.1 server list, at most syncMaxPageBytes.
func fetchV01Page(ctx context.Context, client *http.Client, target string) (*v01.InList, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "caddymcp-registry-sync")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, syncMaxPageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the answer: %w", target, err)
	}
	if len(body) > syncMaxPageBytes {
		return nil, fmt.Errorf("GET %s: the answer is larger than %d bytes", target, syncMaxPageBytes)
	}
	if resp.StatusCode != http.StatusOK {
		snippet := strings.TrimSpace(string(body))
		if len(snippet) > 200 {
			snippet = snippet[:200] + "…"
		}
		return nil, fmt.Errorf("GET %s: status %d: %s", target, resp.StatusCode, snippet)
	}
	var page v01.InList
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("GET %s: not a v0.1 server list: %w", target, err)
	}
	if page.Servers == nil {
		return nil, errors.New("GET " + target + ": not a v0.1 server list (no servers array)")
	}
	return &page, nil
}
