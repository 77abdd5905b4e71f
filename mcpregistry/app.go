// Package mcpregistry is the bottom layer of caddymcp: the mcp_registry app that owns
// the store of approved MCP servers, the in-memory index the gateway routes from, and
// the registry's own MCP server.
package mcpregistry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the mcp_registry app: the catalogue of approved MCP servers. Handlers that need
// it (the gateway, the APIs) get it with ctx.App("mcp_registry"); when the config does not
// mention it, it runs on its defaults.
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

	// HealthChecks configures the background health checks and tool discovery
	// (default: every 30s, 10s timeout, 4 at a time, 20% jitter).
	HealthChecks *HealthConfig `json:"health,omitempty"`

	store     Store
	storePath string
	index     *Index
	builtins  map[string]http.Handler
	logger    *zap.Logger

	// health checks (health.go)
	ctx             caddy.Context
	events          *caddyevents.App
	health          sync.Map // server name → *ServerHealth (replaced, never modified)
	checkLocks      sync.Map // server name → *sync.Mutex
	healthClient    *http.Client
	healthTransport *http.Transport
	healthCancel    context.CancelFunc
	healthWG        sync.WaitGroup
	startedAt       time.Time
	appsStarted     chan struct{} // closed once every app of this config has started
	startedOnce     sync.Once
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
	Transport Transport `json:"transport,omitempty"`
	// Description is shown to people choosing servers.
	Description string `json:"description,omitempty"`
	// Tags group servers for search and filters.
	Tags []string `json:"tags,omitempty"`
	// Disabled servers are kept but answer 503.
	Disabled bool `json:"disabled,omitempty"`
	// BackendAuth is how the gateway authenticates to the upstream.
	BackendAuth BackendAuth `json:"backend_auth,omitempty"`
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
	repl := caddy.NewReplacer()
	a.storePath = repl.ReplaceAll(a.Storage.Path, "")
	if a.storePath == "" {
		a.storePath = filepath.Join(caddy.AppDataDir(), "mcp", "registry.db")
	}

	declared, err := a.declaredServers()
	if err != nil {
		return err
	}

	a.builtins = make(map[string]http.Handler)
	if !a.DisableBuiltinServer {
		a.builtins[builtinRegistryName] = newRegistryMCPHandler(a)
	}

	store, err := openBolt(a.storePath, time.Duration(a.Storage.OpenTimeout))
	if err != nil {
		return err
	}
	a.store = store
	servers, err := reconcile(store, declared)
	if err != nil {
		_ = closeBolt(a.storePath)
		a.store = nil
		return err
	}
	a.index = newIndex(servers)
	if err := a.provisionHealth(ctx); err != nil {
		_ = closeBolt(a.storePath)
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
func (a *App) declaredServers() ([]*Server, error) {
	repl := caddy.NewReplacer()
	var out []*Server
	names := map[string]bool{}
	paths := map[string]string{}
	add := func(s *Server) error {
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
		s := &Server{
			Name:        c.Name,
			Path:        c.Path,
			Upstream:    repl.ReplaceKnown(c.Upstream, ""),
			Transport:   c.Transport,
			Description: c.Description,
			Tags:        c.Tags,
			Enabled:     !c.Disabled,
			BackendAuth: c.BackendAuth,
			Source:      SourceConfig,
		}
		if err := add(s); err != nil {
			return nil, err
		}
	}
	if !a.DisableBuiltinServer && !names[builtinRegistryName] {
		if err := add(&Server{
			Name:        builtinRegistryName,
			Upstream:    BuiltinScheme + ":" + builtinRegistryName,
			Description: "The MCP registry itself: list the approved MCP servers and search their tools.",
			Tags:        []string{"registry", "builtin"},
			Enabled:     true,
			Source:      SourceConfig,
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reconcile writes the declared servers into the store in one transaction, removes
// config-owned records no longer declared, and returns every stored server.
func reconcile(store Store, declared []*Server) ([]*Server, error) {
	var all []*Server
	err := store.Update(func(tx StoreTx) error {
		existing, err := tx.List()
		if err != nil {
			return err
		}
		keep := make(map[string]bool, len(declared))
		for _, s := range declared {
			keep[s.Name] = true
		}
		for _, old := range existing {
			if old.Source == SourceConfig && !keep[old.Name] {
				if err := tx.Delete(old.Name); err != nil {
					return err
				}
			}
		}
		for _, s := range declared {
			prev, err := tx.Get(s.Name)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if prev != nil && sameDefinition(prev, s) {
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
		return checkUniquePaths(all)
	})
	if err != nil {
		return nil, fmt.Errorf("reconciling declared servers with the registry: %w", err)
	}
	return all, nil
}

func checkUniquePaths(all []*Server) error {
	seen := make(map[string]string, len(all))
	for _, s := range all {
		if other, ok := seen[s.Path]; ok {
			return fmt.Errorf("servers %q and %q both use path %q", other, s.Name, s.Path)
		}
		seen[s.Path] = s.Name
	}
	return nil
}

// Start implements caddy.App: it starts the background health checks (never in
// Provision: a provisioned config may never start).
func (a *App) Start() error {
	a.startHealth()
	return nil
}

// Stop implements caddy.App: it stops the health checks and waits for them.
func (a *App) Stop() error {
	a.stopHealth()
	return nil
}

// Cleanup releases this config's reference to the store.
func (a *App) Cleanup() error {
	if a.store == nil {
		return nil
	}
	a.store = nil
	return closeBolt(a.storePath)
}

// Lookup returns the server routed at path segment seg, or nil. It is safe for
// concurrent use and allocation-free: the gateway calls it on every request.
func (a *App) Lookup(seg string) *Server { return a.index.lookup(seg) }

// Servers returns every server known to the index, ordered by name.
func (a *App) ListServers() []*Server { return a.index.list() }

// Server returns the server with the given name, or nil.
func (a *App) Server(name string) *Server { return a.index.byName(name) }

// Builtin returns the in-process handler for builtin:<name>, or nil.
func (a *App) Builtin(name string) http.Handler { return a.builtins[name] }

// Index is the in-memory view of the registry that requests are routed from. Records
// are immutable once indexed: a change replaces the pointer.
type Index struct {
	mu     sync.Mutex // serialises writers; readers never lock
	byPath sync.Map   // path segment → *Server
	names  sync.Map   // name → *Server
}

func newIndex(servers []*Server) *Index {
	ix := new(Index)
	for _, s := range servers {
		ix.byPath.Store(s.Path, s)
		ix.names.Store(s.Name, s)
	}
	return ix
}

func (ix *Index) lookup(seg string) *Server {
	v, ok := ix.byPath.Load(seg)
	if !ok {
		return nil
	}
	return v.(*Server)
}

func (ix *Index) byName(name string) *Server {
	v, ok := ix.names.Load(name)
	if !ok {
		return nil
	}
	return v.(*Server)
}

func (ix *Index) list() []*Server {
	var out []*Server
	ix.names.Range(func(_, v any) bool {
		out = append(out, v.(*Server))
		return true
	})
	sortServers(out)
	return out
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
