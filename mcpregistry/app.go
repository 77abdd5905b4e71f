package mcpregistry

import (
	"errors"
	"fmt"
	"github.com/caddymcp/caddymcp/internal/authn"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
	"github.com/caddymcp/caddymcp/mcpregistry/upstream"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the mcp_registry app: the catalogue of approved MCP servers. Handlers that need
// it (the gateway, the APIs) get it with ctx.App("mcp_registry"); when the config does not
// mention it, it runs on its defaults.
//
// It emits these events (origin mcp_registry) through Caddy's events app:
//
//	server_registered      a server registered at run time; data server, path, revision
//	server_updated         a server changed at run time (also enable/disable); same data
//	server_removed         a server deleted at run time; data server, path, revision
//	server_health_changed  a check changed a server's status; data server, status, previous
//	server_tools_changed   a check found new tools, prompts or resources; data server, tools
//
// Servers declared in the config change with the config and emit no event.
type App struct {
	// Storage chooses where records are kept. Default: a bbolt file
	// mcp/registry.db in Caddy's data directory.
	Storage *StorageConfig `json:"storage,omitempty"`

	// Servers declared in the config. They are upserted into the store when the config
	// loads (marked source "config"); config servers that disappear from the config are
	// removed from the store. Servers registered at runtime are left alone.
	Servers []*ServerConfig `json:"servers,omitempty"`

	// DisableBuiltinServer stops the registry's own MCP server (tools list_servers,
	// get_server, search_tools) from being registered as server "registry".
	DisableBuiltinServer bool `json:"disable_builtin_server,omitempty"`

	// EncryptionKey seals the servers' backend credentials in the store (AES-256-GCM):
	// 32 bytes in base64 or hex, normally from a placeholder such as
	// {env.MCP_REGISTRY_KEY} or {file./run/secrets/mcp_registry_key}. Generate one with
	// `openssl rand -base64 32`. Required as soon as any server has a credential:
	// credentials are never stored in plaintext.
	EncryptionKey string `json:"encryption_key,omitempty"`

	// EncryptionKeyFile is a file holding EncryptionKey (same format), written with a
	// new random key (mode 0600) on the first start when it does not exist: encryption
	// with no setup, for a laptop or a single instance. The key then lies beside the
	// data it protects, so a copy of both is a copy of the secrets; in production give
	// encryption_key from a secret store instead. Not together with encryption_key.
	EncryptionKeyFile string `json:"encryption_key_file,omitempty"`

	// PreviousEncryptionKeys are keys that sealed credentials before EncryptionKey did
	// (same format). Credentials under one of them are read and re-sealed under
	// EncryptionKey when the config loads; once every instance has loaded, they can go.
	PreviousEncryptionKeys []string `json:"previous_encryption_keys,omitempty"`

	// HealthChecks configures the background health checks and tool discovery
	// (default: every 30s, 10s timeout, 4 at a time, 20% jitter).
	HealthChecks *HealthConfig `json:"health,omitempty"`

	// Sync pulls the servers of other registries' v0.1 APIs into this one, periodically
	// (sync.go).
	Sync []SyncConfig `json:"sync,omitempty"`

	// TombstoneRetention is how long the tombstone of a deleted server is kept (so
	// that the v0.1 API's include_deleted and sync clients using updated_since learn
	// of the deletion) before a background cleanup purges it. Default: 30 days. The
	// cleanup runs when the config starts and then every retention/10, at most an
	// hour apart. A name registered again after its tombstone was purged starts over
	// at revision 1 (a client that still remembers an older revision sees a new
	// server, not an update).
	TombstoneRetention caddy.Duration `json:"tombstone_retention,omitempty"`

	// RuntimeUpstreams restricts the upstream URLs of servers registered at runtime
	// (REST API, register_server, sync): by default http(s) only, and never link-local,
	// cloud metadata, multicast or unspecified addresses, nor Caddy's admin endpoint.
	RuntimeUpstreams *upstream.Rules `json:"runtime_upstreams,omitempty"`

	// SearchConfig configures search_tools and /api/search: lexical ranking always,
	// fused with semantic ranking when embeddings are configured.
	SearchConfig *SearchConfig `json:"search,omitempty"`

	search    searchState    // ranked search index over servers and tools (search.go)
	semantic  *semanticState // embeddings of servers and tools, when configured (search_semantic.go)
	syncer    syncRunner     // periodic and admin syncs from other registries (sync.go)
	store     store.Store
	storePath string
	index     *Index
	builtins  map[string]http.Handler
	creds     credentialState // backend credentials in memory (credentials.go)
	// upstreamAuth: backend_auth oauth clients, token cache and vault (upstream_oauth.go)
	upstreamAuth upstreamAuthState
	// localIssuers are the token issuers of this config (mcp_oauth_server), which the
	// gateway and the REST API trust with no configuration.
	localIssuers authn.LocalIssuers
	// trustedDials: host:port of the config's servers, exempt from GuardDial.
	trustedDials map[string]bool
	logger       *zap.Logger

	health healthState // background checks, tool discovery and list_changed watches (health.go)

	ctx         caddy.Context
	events      *caddyevents.App
	startedAt   time.Time
	appsStarted chan struct{} // closed once every app of this config has started
	startedOnce sync.Once

	writes writeState // runtime writes: index update queue, tombstone cleanup (write.go, tombstone_cleanup.go)
}

// StorageConfig selects and configures the registry's store.
type StorageConfig struct {
	// Backend is "bbolt" (the default, an embedded file).
	Backend string `json:"backend,omitempty"`
	// Path of the bbolt file. Default: <caddy data dir>/mcp/registry.db.
	Path string `json:"path,omitempty"`
	// OpenTimeout bounds the wait for the file lock when opening. Default 5s.
	OpenTimeout caddy.Duration `json:"open_timeout,omitempty"`
}

// ServerConfig declares one server in the Caddy config.
type ServerConfig struct {
	// Name identifies the server (a-z, 0-9, '.', '_', '-').
	Name string `json:"name"`
	// Path is the URL path segment; default Name.
	Path string `json:"path,omitempty"`
	// Upstream is the server's MCP endpoint URL (or SSE stream URL), or builtin:<name>.
	Upstream string `json:"upstream"`
	// Transport is streamable-http (default) or sse.
	Transport model.Transport `json:"transport,omitempty"`
	// Description is shown to people choosing servers.
	Description string `json:"description,omitempty"`
	// Tags group servers for search and filters.
	Tags []string `json:"tags,omitempty"`
	// Disabled servers are kept but answer 503.
	Disabled bool `json:"disabled,omitempty"`
	// BackendAuth is how the gateway authenticates to the upstream.
	BackendAuth model.BackendAuth `json:"backend_auth,omitempty"`
	// BackendCredential is the secret of BackendAuth (the bearer token or the API key),
	// normally a placeholder: {env.GITHUB_TOKEN} or {file./run/secrets/github_token}.
	// Resolved when the config loads and stored only encrypted (see EncryptionKey).
	// Implies backend_auth bearer when BackendAuth is not set.
	BackendCredential string `json:"backend_credential,omitempty"`
	// BackendHeaders are extra headers set on every request to the upstream (and on
	// health checks); values may be placeholders and are stored encrypted like
	// BackendCredential.
	BackendHeaders map[string]string `json:"backend_headers,omitempty"`
	// GatewayTokenHeader is where clients send the gateway's token for this server:
	// authorization (default) or x-authorization (composite mode: the client's own
	// Authorization header passes to the upstream).
	GatewayTokenHeader string `json:"gateway_token_header,omitempty"`
	// ForwardClientCredentials passes the client's Cookie header and access_token
	// query parameter on to the upstream; without it they stay at the gateway (they
	// were meant for it). Config only: a server registered at runtime never receives
	// them.
	ForwardClientCredentials bool `json:"forward_client_credentials,omitempty"`
	// ForwardIdentity sends the caller's subject and groups to the upstream as headers
	// (default X-MCP-User and X-MCP-Groups).
	ForwardIdentity *model.ForwardIdentity `json:"forward_identity,omitempty"`
	// BackendOAuth is the OAuth client of backend_auth oauth: how the gateway obtains
	// the access token it sends (each user's own, the gateway's, or an exchanged one).
	// See UpstreamOAuthConfig.
	BackendOAuth *UpstreamOAuthConfig `json:"backend_oauth,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "mcp_registry",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens the store, reconciles the servers declared in the config with it and
// builds the in-memory index.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.Storage == nil {
		a.Storage = new(StorageConfig)
	}
	if a.Storage.Backend == "" {
		a.Storage.Backend = "bbolt"
	}
	if a.Storage.Backend != "bbolt" {
		return fmt.Errorf("storage backend %q is not supported (bbolt)", a.Storage.Backend)
	}
	if a.Storage.OpenTimeout == 0 {
		a.Storage.OpenTimeout = caddy.Duration(5 * time.Second)
	}
	if a.TombstoneRetention <= 0 {
		a.TombstoneRetention = caddy.Duration(defaultTombstoneRetention)
	}
	repl := caddy.NewReplacer()
	a.storePath = repl.ReplaceAll(a.Storage.Path, "")
	if a.storePath == "" {
		a.storePath = filepath.Join(caddy.AppDataDir(), "mcp", "registry.db")
	}

	if a.RuntimeUpstreams == nil {
		a.RuntimeUpstreams = new(upstream.Rules)
	}
	var ownOnce sync.Once
	var own *upstream.ListenSet
	ownListeners := func() *upstream.ListenSet { // the http app is provisioned by the time anything dials
		ownOnce.Do(func() { own = upstream.CaddyListeners(ctx, upstream.Resolve) })
		return own
	}
	if err := a.RuntimeUpstreams.Provision(ownListeners); err != nil {
		return fmt.Errorf("mcp_registry: %w", err)
	}

	if err := a.provisionEmbeddings(); err != nil {
		return err
	}
	declared, err := a.declaredServers()
	if err != nil {
		return err
	}
	a.trustedDials = upstream.TrustedTargets(declared)
	if err := a.provisionSync(); err != nil {
		return err
	}
	encryptionKey := a.EncryptionKey
	if a.EncryptionKeyFile != "" {
		if a.EncryptionKey != "" {
			return errors.New("mcp_registry: encryption_key and encryption_key_file are exclusive: configure one key")
		}
		path := caddy.NewReplacer().ReplaceKnown(a.EncryptionKeyFile, "")
		key, created, err := loadOrCreateKeyFile(path)
		if err != nil {
			return fmt.Errorf("mcp_registry: %w", err)
		}
		if created {
			a.logger.Warn("generated a new encryption key; keep it with the data, without it sealed credentials and sign-in keys are lost", zap.String("file", path))
		}
		encryptionKey = key
	}
	keys, err := newKeyring(encryptionKey, a.PreviousEncryptionKeys)
	if err != nil {
		return fmt.Errorf("mcp_registry: %w", err)
	}
	declaredCreds := map[string]*credentialPlain{}
	configNames := map[string]bool{}
	for _, s := range declared {
		configNames[s.Name] = true
	}
	for i, c := range a.Servers {
		cred, err := declaredCredential(c, declared[i])
		if err != nil {
			return err
		}
		if cred != nil {
			declaredCreds[c.Name] = cred
		}
	}

	a.builtins = make(map[string]http.Handler)
	if !a.DisableBuiltinServer {
		a.builtins[builtinRegistryName] = newRegistryMCPHandler(a)
	}

	st, err := store.OpenBolt(a.storePath, time.Duration(a.Storage.OpenTimeout))
	if err != nil {
		return err
	}
	a.store = st
	servers, err := reconcile(st, declared)
	if err != nil {
		_ = st.Close()
		a.store = nil
		return err
	}
	a.creds.keys = keys
	a.creds.headers, err = reconcileCredentials(st, keys, declaredCreds, configNames)
	if err != nil {
		_ = st.Close()
		a.store = nil
		return err
	}
	a.index = newIndex(servers)
	if err := a.provisionUpstreamAuth(declared); err != nil {
		_ = st.Close()
		a.store = nil
		return err
	}
	if err := a.provisionHealth(ctx); err != nil {
		_ = st.Close()
		a.store = nil
		return err
	}
	if err := a.loadHealth(); err != nil {
		a.logger.Warn("loading the last known server health", zap.Error(err))
	}
	a.logger.Info("registry loaded", zap.String("path", a.storePath), zap.Int("servers", len(servers)))
	return nil
}

const builtinRegistryName = "registry"

// declaredServers normalises the config's servers (plus the builtin one) and checks
// that names and paths are unique.
func (a *App) declaredServers() ([]*model.Server, error) {
	repl := caddy.NewReplacer()
	var out []*model.Server
	names := map[string]bool{}
	paths := map[string]string{}
	add := func(s *model.Server) error {
		if err := s.Normalize(); err != nil {
			return fmt.Errorf("server %q: %w", s.Name, err)
		}
		if names[s.Name] {
			return fmt.Errorf("server %q is declared twice", s.Name)
		}
		if other, ok := paths[s.Path]; ok {
			return fmt.Errorf("servers %q and %q both use path %q", other, s.Name, s.Path)
		}
		names[s.Name], paths[s.Path] = true, s.Name
		out = append(out, s)
		return nil
	}
	for _, c := range a.Servers {
		ba := c.BackendAuth
		if ba.Scheme == "" && c.BackendCredential != "" {
			ba.Scheme = model.BackendAuthBearer
		}
		var fi *model.ForwardIdentity
		if c.ForwardIdentity != nil {
			f := *c.ForwardIdentity
			fi = &f
		}
		s := &model.Server{
			Name:        c.Name,
			Path:        c.Path,
			Upstream:    repl.ReplaceKnown(c.Upstream, ""),
			Transport:   c.Transport,
			Description: c.Description,
			Tags:        c.Tags,
			Enabled:     !c.Disabled,
			BackendAuth: ba,
			Source:      model.SourceConfig,

			GatewayTokenHeader:       c.GatewayTokenHeader,
			ForwardIdentity:          fi,
			ForwardClientCredentials: c.ForwardClientCredentials,
		}
		if err := add(s); err != nil {
			return nil, err
		}
	}
	if !a.DisableBuiltinServer && !names[builtinRegistryName] {
		if err := add(&model.Server{
			Name:        builtinRegistryName,
			Upstream:    model.BuiltinScheme + ":" + builtinRegistryName,
			Description: "The MCP registry itself: list the approved MCP servers and search their tools.",
			Tags:        []string{"registry", "builtin"},
			Enabled:     true,
			Source:      model.SourceConfig,
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reconcile writes the declared servers into the store in one transaction, removes
// config-owned records no longer declared, and returns every stored server.
func reconcile(st store.Store, declared []*model.Server) ([]*model.Server, error) {
	var all []*model.Server
	err := st.Update(func(tx store.Tx) error {
		existing, err := tx.List()
		if err != nil {
			return err
		}
		keep := make(map[string]bool, len(declared))
		for _, s := range declared {
			keep[s.Name] = true
		}
		for _, old := range existing {
			if old.Source == model.SourceConfig && !keep[old.Name] {
				if err := tx.Delete(old.Name); err != nil {
					return err
				}
			}
		}
		for _, s := range declared {
			prev, err := tx.Get(s.Name)
			if err != nil && !errors.Is(err, model.ErrNotFound) {
				return err
			}
			if prev != nil && model.SameDefinition(prev, s) {
				continue
			}
			if err := tx.Put(s); err != nil {
				return err
			}
		}
		all, err = tx.List()
		if err != nil {
			return err
		}
		return model.CheckUniquePaths(all)
	})
	if err != nil {
		return nil, fmt.Errorf("reconciling declared servers with the registry: %w", err)
	}
	return all, nil
}

// Validate implements caddy.Validator: it checks the provisioned health and sync
// settings and changes nothing. Settings that decide what Provision opens (the storage
// backend, the encryption keys, the declared servers) are checked by Provision itself.
func (a *App) Validate() error {
	if err := a.HealthChecks.validate(); err != nil {
		return err
	}
	return a.validateSync()
}

// Start implements caddy.App: it starts the background health checks (never in
// Provision: a provisioned config may never start).
func (a *App) Start() error {
	a.startHealth()
	a.startSearch()   // builds the search index in the background (search.go)
	a.startSemantic() // embeds servers and tools, when configured (search_semantic.go)
	a.startTombstoneCleanup()
	a.startSync()
	return nil
}

// Stop implements caddy.App: it stops the health checks and waits for them.
func (a *App) Stop() error {
	a.stopSync()
	a.stopHealth()
	a.stopTombstoneCleanup()
	return nil
}

// Cleanup releases this config's reference to the store.
func (a *App) Cleanup() error {
	if a.store == nil {
		return nil
	}
	st := a.store
	a.store = nil
	return st.Close()
}

// Ready reports whether the app holds its store: it is provisioned and not cleaned up.
func (a *App) Ready() bool { return a.store != nil }

// Tombstone returns the tombstone of the deleted server name, or an error matching
// model.ErrNotFound.
func (a *App) Tombstone(name string) (t *model.Tombstone, err error) {
	err = a.store.View(func(tx store.Tx) error { t, err = tx.GetTombstone(name); return err })
	return t, err
}

// Running returns the mcp_registry app of the running config, for admin API routes
// (which are not part of a config): a caddy.APIError 404 when none runs, 503 when it is
// not provisioned yet.
func Running() (*App, error) {
	app, err := caddy.ActiveContext().AppIfConfigured("mcp_registry")
	if err != nil || app == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("the mcp_registry app is not running")}
	}
	a, ok := app.(*App)
	if !ok || !a.Ready() {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the mcp_registry app is not ready")}
	}
	return a, nil
}

// Committed returns the named server as the store holds it, or an error matching
// model.ErrNotFound. The index that Server reads can trail a concurrent write by a
// moment; a read-modify-write that lost a race reads here to see what it lost to.
func (a *App) Committed(name string) (s *model.Server, err error) {
	err = a.store.View(func(tx store.Tx) error { s, err = tx.Get(name); return err })
	return s, err
}

// LocalIssuers are the token issuers served by this config (the built-in
// authorization server registers itself here when it provisions); handlers with auth
// trust their tokens with no configuration.
func (a *App) LocalIssuers() *authn.LocalIssuers { return &a.localIssuers }

// Tombstones returns every tombstone, ordered by name.
func (a *App) Tombstones() (ts []*model.Tombstone, err error) {
	err = a.store.View(func(tx store.Tx) error { ts, err = tx.ListTombstones(); return err })
	return ts, err
}

// Lookup returns the server routed at path segment seg, or nil. It is safe for
// concurrent use and allocation-free: the gateway calls it on every request.
func (a *App) Lookup(seg string) *model.Server { return a.index.lookup(seg) }

// ListServers returns every server known to the index, ordered by name. The slice is
// shared: callers must not modify it.
func (a *App) ListServers() []*model.Server { return a.index.list() }

// Server returns the server with the given name, or nil.
func (a *App) Server(name string) *model.Server { return a.index.byName(name) }

// Builtin returns the in-process handler for builtin:<name>, or nil.
func (a *App) Builtin(name string) http.Handler { return a.builtins[name] }

// Index is the in-memory view of the registry that requests are routed from. Records
// are immutable once indexed: a change replaces the pointer.
type Index struct {
	mu     sync.Mutex // serialises writers; readers never lock
	byPath sync.Map   // path segment → *Server
	names  sync.Map   // name → *Server
	// sorted is every server ordered by name, replaced (never modified) by writers,
	// so that listing is free for readers.
	sorted atomic.Pointer[[]*model.Server]
}

func newIndex(servers []*model.Server) *Index {
	ix := new(Index)
	for _, s := range servers {
		ix.byPath.Store(s.Path, s)
		ix.names.Store(s.Name, s)
	}
	sorted := slices.Clone(servers)
	sortServers(sorted)
	sorted = slices.CompactFunc(sorted, func(a, b *model.Server) bool { return a.Name == b.Name })
	ix.sorted.Store(&sorted)
	return ix
}

func (ix *Index) lookup(seg string) *model.Server {
	v, ok := ix.byPath.Load(seg)
	if !ok {
		return nil
	}
	return v.(*model.Server)
}

func (ix *Index) byName(name string) *model.Server {
	v, ok := ix.names.Load(name)
	if !ok {
		return nil
	}
	return v.(*model.Server)
}

// list returns the servers ordered by name: a shared snapshot that callers must not
// modify (writers replace it, never change it).
func (ix *Index) list() []*model.Server {
	if p := ix.sorted.Load(); p != nil {
		return *p
	}
	return nil
}

// setSorted puts s into the sorted snapshot (replacing the record of the same name),
// copying it. Callers hold ix.mu.
func (ix *Index) setSorted(s *model.Server) {
	cur := ix.list()
	i, found := slices.BinarySearchFunc(cur, s.Name, func(x *model.Server, name string) int { return strings.Compare(x.Name, name) })
	next := make([]*model.Server, 0, len(cur)+1)
	next = append(next, cur[:i]...)
	next = append(next, s)
	if found {
		i++
	}
	next = append(next, cur[i:]...)
	ix.sorted.Store(&next)
}

// removeSorted drops the record named name from the sorted snapshot, copying it.
// Callers hold ix.mu.
func (ix *Index) removeSorted(name string) {
	cur := ix.list()
	i, found := slices.BinarySearchFunc(cur, name, func(x *model.Server, name string) int { return strings.Compare(x.Name, name) })
	if !found {
		return
	}
	next := slices.Concat(cur[:i], cur[i+1:])
	ix.sorted.Store(&next)
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
