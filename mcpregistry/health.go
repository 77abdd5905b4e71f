package mcpregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// HealthConfig configures the registry's background health checks and tool discovery.
//
// Every Interval each enabled server that is not builtin is connected to with the MCP
// client (the client negotiates 2026-07-28 server/discover or falls back to
// initialize), pinged, and asked for its tools, prompts and resources. The result is
// kept in memory and in the store, so a restart shows the last known state at once.
//
// The checks keep no session open. Servers that announce list changes
// (capabilities tools/prompts/resources.listChanged) are in addition watched: one
// long-lived session each (at most WatchLimit), on which a list_changed notification
// triggers a check at once (health_watch.go). Other servers' changed lists are picked
// up at the next check or by a manual refresh (App.RefreshNow).
//
// An unhealthy server stays routable: it is marked, not hidden.
type HealthConfig struct {
	// Disabled turns the background checks off. Stored health is still shown and a
	// manual refresh still works. In the Caddyfile: `health off` or `interval off|0`.
	Disabled bool `json:"disabled,omitempty"`
	// Interval between two checks of the same server. Default 30s. A negative value
	// disables the checks like Disabled.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout bounds one whole check (connect, ping, lists). Default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Concurrency is how many servers are checked at the same time. Default 4.
	Concurrency int `json:"concurrency,omitempty"`
	// Jitter spreads the checks of one round over this fraction of Interval (0 to 1)
	// so that they do not all fire at once. Default 0.2; 0 starts them together.
	Jitter *float64 `json:"jitter,omitempty"`
	// WatchLimit bounds how many servers are watched for list_changed notifications
	// (one long-lived MCP session each; servers beyond it are only checked every
	// Interval). Default 256; negative turns watching off. Watching runs only with the
	// background checks (not Disabled), whose results say which servers notify. In the
	// Caddyfile: `watch_limit <n>|off`.
	WatchLimit int `json:"watch_limit,omitempty"`
}

// healthState is the App's health checking at run time (memory only).
type healthState struct {
	byServer   sync.Map // server name → *model.ServerHealth (replaced, never modified)
	checkLocks sync.Map // server name → *sync.Mutex: one check of a server at a time
	client     *http.Client
	transport  *http.Transport
	cancel     context.CancelFunc
	kicks      atomic.Pointer[chan string] // immediate checks (health_kick.go); nil when off
	wg         sync.WaitGroup
	// watcher is the running list_changed watcher (health_watch.go); atomic because a
	// manual refresh may run before Start.
	watcher atomic.Pointer[watcher]
}

const (
	defaultHealthInterval    = 30 * time.Second
	defaultHealthTimeout     = 10 * time.Second
	defaultHealthConcurrency = 4
	defaultHealthJitter      = 0.2
	defaultWatchLimit        = 256
	maxWatchLimit            = 100000

	// Bounds on what one check records, so that a misbehaving server cannot grow the
	// store without limit.
	maxListedItems     = 2000
	maxDescriptionLen  = 4096
	maxSchemaLen       = 64 << 10
	maxLastErrorLen    = 512
	builtinUpstreamPfx = model.BuiltinScheme + ":"
)

func (c *HealthConfig) provision() {
	if c.Interval == 0 {
		c.Interval = caddy.Duration(defaultHealthInterval)
	}
	if c.Interval < 0 {
		c.Disabled = true
	}
	if c.Timeout == 0 {
		c.Timeout = caddy.Duration(defaultHealthTimeout)
	}
	if c.Concurrency == 0 {
		c.Concurrency = defaultHealthConcurrency
	}
	if c.Jitter == nil {
		j := defaultHealthJitter
		c.Jitter = &j
	}
	if c.WatchLimit == 0 {
		c.WatchLimit = defaultWatchLimit
	}
}

func (c *HealthConfig) validate() error {
	if c.Timeout < 0 {
		return fmt.Errorf("health timeout must be positive")
	}
	if c.Concurrency < 1 || c.Concurrency > 1024 {
		return fmt.Errorf("health concurrency %d must be between 1 and 1024", c.Concurrency)
	}
	if j := *c.Jitter; j < 0 || j > 1 {
		return fmt.Errorf("health jitter %v must be between 0 and 1", j)
	}
	if c.WatchLimit > maxWatchLimit {
		return fmt.Errorf("health watch_limit %d must be at most %d", c.WatchLimit, maxWatchLimit)
	}
	return nil
}

// Health returns what is known of the named server's health. The builtin registry
// server is always healthy with its own tools. ok is false for an unknown name.
func (a *App) Health(name string) (model.ServerHealth, bool) {
	s := a.Server(name)
	switch {
	case s == nil:
		return model.ServerHealth{}, false
	case isBuiltin(s):
		return a.builtinHealth(s), true
	}
	if v, ok := a.health.byServer.Load(name); ok {
		return *v.(*model.ServerHealth), true
	}
	return model.ServerHealth{Server: name, Status: model.HealthUnknown}, true
}

// RefreshNow checks the named server at once (also when it is disabled or the
// background checks are off), records the result and returns it. A failed check is
// not an error: it is reported as an unhealthy ServerHealth. The error is for an
// unknown name or a ctx that ends first.
func (a *App) RefreshNow(ctx context.Context, name string) (model.ServerHealth, error) {
	s := a.Server(name)
	if s == nil {
		return model.ServerHealth{}, model.ErrNotFound
	}
	if isBuiltin(s) {
		return a.builtinHealth(s), nil
	}
	h := a.checkAndRecord(ctx, s)
	if err := ctx.Err(); err != nil {
		return h, err
	}
	return h, nil
}

func isBuiltin(s *model.Server) bool { return strings.HasPrefix(s.Upstream, builtinUpstreamPfx) }

func (a *App) builtinHealth(s *model.Server) model.ServerHealth {
	return model.ServerHealth{Server: s.Name, Status: model.HealthHealthy, Tools: a.builtinTools(s), CheckedAt: a.startedAt}
}

func (a *App) builtinTools(s *model.Server) []model.ToolInfo {
	if s.Upstream == builtinUpstreamPfx+builtinRegistryName {
		return registryTools
	}
	return nil
}

// loadHealth fills the in-memory health map from the store (the last known state).
func (a *App) loadHealth() error {
	return a.store.View(func(tx store.Tx) error {
		list, err := tx.ListStatus()
		if err != nil {
			return err
		}
		for _, h := range list {
			a.health.byServer.Store(h.Server, h)
		}
		return nil
	})
}

// startHealth starts the background loop; it stops on the config context's Done or
// stopHealth.
func (a *App) startHealth() {
	a.startedAt = time.Now().UTC()
	if a.events == nil {
		a.startedOnce.Do(func() { close(a.appsStarted) })
	}
	if a.HealthChecks.Disabled {
		return
	}
	ctx, cancel := context.WithCancel(a.ctx)
	a.health.cancel = cancel
	a.health.wg.Add(1)
	go func() {
		defer a.health.wg.Done()
		a.healthLoop(ctx)
	}()
	a.startHealthKicks(ctx)
	a.startWatches(ctx)
}

func (a *App) stopHealth() {
	if a.health.cancel != nil {
		a.health.cancel()
	}
	a.health.kicks.Store(nil)
	a.health.wg.Wait()
	a.stopWatches()
	if a.health.transport != nil {
		a.health.transport.CloseIdleConnections()
	}
}

func (a *App) healthLoop(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			a.logger.Error("health loop panicked; background checks stopped", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	interval := time.Duration(a.HealthChecks.Interval)
	select {
	case <-ctx.Done():
		return
	case <-a.appsStarted:
	}
	for {
		start := time.Now()
		a.healthRound(ctx)
		wait := interval - time.Since(start)
		if wait < interval/10 {
			// A round longer than the interval: leave a little breathing room.
			wait = interval / 10
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// healthRound checks every enabled network server once, at most Concurrency at a time,
// each starting after a random delay within Jitter×Interval.
func (a *App) healthRound(ctx context.Context) {
	spread := time.Duration(*a.HealthChecks.Jitter * float64(a.HealthChecks.Interval))
	sem := make(chan struct{}, a.HealthChecks.Concurrency)
	var wg sync.WaitGroup
	for _, s := range a.ListServers() {
		if !s.Enabled || isBuiltin(s) {
			continue
		}
		wg.Add(1)
		go func(s *model.Server) {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					a.logger.Error("health check panicked", zap.String("server", s.Name), zap.Any("panic", r), zap.Stack("stack"))
				}
			}()
			if spread > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(rand.N(spread)):
				}
			}
			select {
			case <-ctx.Done():
				return
			case sem <- struct{}{}:
			}
			defer func() { <-sem }()
			a.checkAndRecord(ctx, s)
		}(s)
	}
	wg.Wait()
}

// checkAndRecord checks s, stores the result (memory and store) and emits an event when
// the status changed. Checks of the same server are serialised.
func (a *App) checkAndRecord(ctx context.Context, s *model.Server) model.ServerHealth {
	mu, _ := a.health.checkLocks.LoadOrStore(s.Name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	prev, _ := a.Health(s.Name)
	res := a.checkServer(ctx, s)
	if ctx.Err() != nil && res.Status == model.HealthUnhealthy {
		// Shutting down (or the caller gave up): that says nothing about the server.
		return prev
	}

	h := &model.ServerHealth{
		Server:              s.Name,
		Status:              res.Status,
		LatencyMS:           res.LatencyMS,
		LastError:           res.LastError,
		CheckedAt:           res.CheckedAt,
		LastHealthyAt:       prev.LastHealthyAt,
		ProtocolVersion:     prev.ProtocolVersion,
		ServerName:          prev.ServerName,
		ServerVersion:       prev.ServerVersion,
		Tools:               prev.Tools,
		Prompts:             prev.Prompts,
		Resources:           prev.Resources,
		ConsecutiveFailures: prev.ConsecutiveFailures + 1,
		Notifies:            prev.Notifies,
	}
	listsChanged := false
	if res.Status == model.HealthAuthRequired {
		// Up; the lists are each user's to see, not the registry's.
		h.LastHealthyAt = res.CheckedAt
		h.ConsecutiveFailures = 0
		h.ProtocolVersion, h.ServerName, h.ServerVersion = "", "", ""
		h.Tools, h.Prompts, h.Resources, h.Notifies = nil, nil, nil, false
	}
	if res.Status == model.HealthHealthy {
		h.LastHealthyAt = res.CheckedAt
		h.ProtocolVersion, h.ServerName, h.ServerVersion = res.ProtocolVersion, res.ServerName, res.ServerVersion
		h.Tools, h.Prompts, h.Resources = res.Tools, res.Prompts, res.Resources
		h.ConsecutiveFailures = 0
		h.Notifies = res.Notifies
		// Only a change against lists seen before counts (not the first discovery).
		listsChanged = !prev.LastHealthyAt.IsZero() && !sameLists(&prev, h)
	}

	// Persist only while the server still exists with the upstream that was checked;
	// the status bucket is separate, so the server record itself is never rewritten.
	stale := false
	err := a.store.Update(func(tx store.Tx) error {
		cur, err := tx.Get(s.Name)
		if errors.Is(err, model.ErrNotFound) || (err == nil && cur.Upstream != s.Upstream) {
			stale = true
			return nil
		}
		if err != nil {
			return err
		}
		return tx.PutStatus(h)
	})
	if err != nil {
		a.logger.Error("recording server health", zap.String("server", s.Name), zap.Error(err))
	}
	if stale {
		return *h
	}
	a.health.byServer.Store(s.Name, h)
	a.searchToolsRecorded(s.Name, prev.Tools, h.Tools)
	if h.Notifies != prev.Notifies {
		a.kickWatches()
	}
	if listsChanged {
		a.logger.Info("server tools changed", zap.String("server", s.Name), zap.Int("tools", len(h.Tools)),
			zap.Int("prompts", len(h.Prompts)), zap.Int("resources", len(h.Resources)))
		a.emit(EventServerToolsChanged, map[string]any{"server": s.Name, "tools": len(h.Tools)})
	}

	if prev.Status != h.Status {
		level := a.logger.Info
		if h.Status == model.HealthUnhealthy {
			level = a.logger.Warn
		}
		level("server health changed", zap.String("server", s.Name),
			zap.String("status", string(h.Status)), zap.String("previous", string(prev.Status)),
			zap.String("error", h.LastError))
		a.emit(EventServerHealthChanged, map[string]any{
			"server":   s.Name,
			"status":   string(h.Status),
			"previous": string(prev.Status),
		})
	}
	return *h
}

// startedHook closes appsStarted on Caddy's "started" event for this config.
type startedHook struct{ a *App }

func (h startedHook) Handle(context.Context, caddy.Event) error {
	h.a.startedOnce.Do(func() { close(h.a.appsStarted) })
	return nil
}

// checkServer connects to s with the MCP client, pings it and lists its tools, prompts
// and resources, all within the configured timeout.
func (a *App) checkServer(ctx context.Context, s *model.Server) (h model.ServerHealth) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.HealthChecks.Timeout))
	defer cancel()
	start := time.Now()
	h.Server = s.Name
	defer func() {
		h.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
		h.CheckedAt = time.Now().UTC()
	}()
	fail := func(step string, err error) model.ServerHealth {
		h.Status = model.HealthUnhealthy
		h.LastError = describeCheckError(step, err)
		return h
	}

	if a.perUserOAuth(s) {
		return a.checkPerUserOAuth(ctx, s, h)
	}
	hc := a.healthClientFor(s)
	if a.UpstreamGrant(s.Name) == OAuthGrantClientCredentials {
		hc = &http.Client{Transport: machineTokenTransport{base: a.health.transport, a: a, s: s}}
	}
	var transport mcp.Transport
	switch s.Transport {
	case model.TransportSSE:
		transport = &mcp.SSEClientTransport{Endpoint: s.Upstream, HTTPClient: hc}
	default:
		transport = &mcp.StreamableClientTransport{
			Endpoint:             s.Upstream,
			HTTPClient:           hc,
			MaxRetries:           -1,
			DisableStandaloneSSE: true,
		}
	}
	client := mcp.NewClient(healthClientInfo, nil)
	session, err := client.Connect(ctx, transport, nil)
	if err != nil {
		return fail("connect", err)
	}
	defer session.Close()
	init := session.InitializeResult()
	// 2026-07-28 has no ping (server/discover already proved the server answers);
	// older versions get one.
	if init == nil || init.ProtocolVersion < "2026-07-28" {
		if err := session.Ping(ctx, nil); err != nil {
			return fail("ping", err)
		}
	}
	var caps *mcp.ServerCapabilities
	if init != nil {
		h.ProtocolVersion = init.ProtocolVersion
		caps = init.Capabilities
		h.Notifies = announcesListChanged(caps)
		if init.ServerInfo != nil {
			h.ServerName, h.ServerVersion = bound(init.ServerInfo.Name, 256), bound(init.ServerInfo.Version, 256)
		}
	}
	if caps == nil || caps.Tools != nil {
		h.Tools = []model.ToolInfo{}
		for tool, err := range session.Tools(ctx, nil) {
			if err != nil {
				return fail("tools/list", err)
			}
			if len(h.Tools) >= maxListedItems {
				break
			}
			ti := model.ToolInfo{Name: bound(tool.Name, 256), Description: bound(tool.Description, maxDescriptionLen)}
			if tool.InputSchema != nil {
				if raw, err := json.Marshal(tool.InputSchema); err == nil && len(raw) <= maxSchemaLen {
					ti.InputSchema = raw
				}
			}
			h.Tools = append(h.Tools, ti)
		}
	}
	if caps != nil && caps.Prompts != nil {
		h.Prompts = []model.PromptInfo{}
		for p, err := range session.Prompts(ctx, nil) {
			if err != nil {
				return fail("prompts/list", err)
			}
			if len(h.Prompts) >= maxListedItems {
				break
			}
			h.Prompts = append(h.Prompts, model.PromptInfo{Name: bound(p.Name, 256), Description: bound(p.Description, maxDescriptionLen)})
		}
	}
	if caps != nil && caps.Resources != nil {
		h.Resources = []model.ResourceInfo{}
		for r, err := range session.Resources(ctx, nil) {
			if err != nil {
				return fail("resources/list", err)
			}
			if len(h.Resources) >= maxListedItems {
				break
			}
			h.Resources = append(h.Resources, model.ResourceInfo{URI: bound(r.URI, 2048), Name: bound(r.Name, 256)})
		}
	}
	h.Status = model.HealthHealthy
	return h
}

var healthClientInfo = &mcp.Implementation{Name: "caddymcp-registry-health", Version: "0.1.0"}

// bound cuts s to at most n bytes on a rune boundary.
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// provisionHealth sets the health defaults, the HTTP client and the events app, and
// loads the last known state from the store. It starts nothing.
func (a *App) provisionHealth(ctx caddy.Context) error {
	if a.HealthChecks == nil {
		a.HealthChecks = new(HealthConfig)
	}
	a.HealthChecks.provision()
	a.ctx = ctx
	a.appsStarted = make(chan struct{})
	if ev, err := ctx.App("events"); err == nil {
		a.events, _ = ev.(*caddyevents.App)
	} else {
		a.logger.Warn("events app unavailable; health changes will only be logged", zap.Error(err))
	}
	if a.events != nil {
		// The events app binds its subscriptions in its own Start, and apps start in no
		// particular order: wait for Caddy's "started" event (all apps of this config
		// running) before the first check or emission.
		if err := a.events.On("started", startedHook{a}); err != nil {
			a.logger.Warn("cannot wait for the config to start; health events disabled", zap.Error(err))
			a.events = nil
		}
	}
	a.health.transport = http.DefaultTransport.(*http.Transport).Clone()
	a.health.transport.DialContext = a.GuardDial((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	a.health.client = &http.Client{Transport: a.health.transport}
	return nil
}
