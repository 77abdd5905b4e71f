package mcpregistry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Watching servers for list_changed notifications.
//
// The health checks connect, list and disconnect, so they hear no notification. A
// server whose last check announced listChanged for its tools, prompts or resources
// is in addition "watched": one long-lived MCP session (at most HealthConfig.WatchLimit
// of them, in name order) whose ToolListChanged/PromptListChanged/ResourceListChanged
// handlers trigger, debounced, a regular check (checkAndRecord: store, memory and the
// server_tools_changed event when the lists differ).
//
// A notification can only arrive on a stream the server keeps open:
//   - legacy streamable HTTP (up to 2025-11-25): the standalone GET stream of the
//     session. A server that refuses it (405, or no event stream) cannot notify:
//     the watch is given up for that record (until it changes) and the server is
//     only checked every Interval.
//   - 2026-07-28 (stateless, no GET stream): go-sdk v1.8.0's client opens a SEP-2575
//     subscriptions/listen stream in Connect when a list-changed handler is set and the
//     server announces listChanged, and delivers the notifications to the same handlers.
//     The SDK does not report the end of that stream (the session stays usable), so
//     the watch observes the HTTP response body itself (streamTracker).
//   - legacy SSE: the transport's own GET stream.
//
// When the stream ends (server restarted, network) the session is closed and
// reconnected with backoff (1s doubling to 5 min, jittered), and a check is run on
// reconnection since notifications may have been missed. The regular checks run
// independently and alone decide the health status.
//
// Watches are reconciled every second and whenever a check changes whether a server
// notifies: a server disabled, removed, or whose record changed (upstream, transport,
// credentials) has its session closed (and reopened for the new record). All close when
// the app stops.

const (
	watchReconcileEvery = time.Second
	watchDebounce       = 500 * time.Millisecond
	watchMinBackoff     = time.Second
	watchMaxBackoff     = 5 * time.Minute
	watchStableAfter    = time.Minute // a session that lived this long resets the backoff
	watchStreamWait     = 2 * time.Second

	mcpMethodHeader        = "Mcp-Method"
	methodSubscriptionsLis = "subscriptions/listen"
)

var errNoNotificationStream = errors.New("the server opened no stream for notifications")

type watcher struct {
	a       *App
	ctx     context.Context
	kick    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	watches map[string]*watch // server name → running watch
	// gaveUp: records (by pointer; records are immutable) that opened no notification
	// stream; not retried until the record changes.
	gaveUp   map[*model.Server]bool
	sessions atomic.Int64 // sessions currently connected (for tests and metrics)
	limitLog bool
}

type watch struct {
	s      *model.Server
	cancel context.CancelFunc
}

func announcesListChanged(caps *mcp.ServerCapabilities) bool {
	if caps == nil {
		return false
	}
	return (caps.Tools != nil && caps.Tools.ListChanged) ||
		(caps.Prompts != nil && caps.Prompts.ListChanged) ||
		(caps.Resources != nil && caps.Resources.ListChanged)
}

// startWatches starts the reconciler; ctx is the health loop's.
func (a *App) startWatches(ctx context.Context) {
	if a.HealthChecks.WatchLimit < 0 {
		return
	}
	w := &watcher{a: a, ctx: ctx, kick: make(chan struct{}, 1), watches: map[string]*watch{}, gaveUp: map[*model.Server]bool{}}
	a.health.watcher.Store(w)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.loop()
	}()
}

// stopWatches waits for the watches to end (their context is the health loop's, which
// is cancelled first).
func (a *App) stopWatches() {
	if a.HealthChecks == nil {
		return
	}
	if w := a.health.watcher.Load(); w != nil {
		w.wg.Wait()
	}
}

// kickWatches asks for a reconciliation now.
func (a *App) kickWatches() {
	if a.HealthChecks == nil {
		return
	}
	if w := a.health.watcher.Load(); w != nil {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// watchSessions is how many watch sessions are connected.
func (a *App) watchSessions() int64 {
	if a.HealthChecks == nil {
		return 0
	}
	if w := a.health.watcher.Load(); w != nil {
		return w.sessions.Load()
	}
	return 0
}

func (w *watcher) loop() {
	defer func() {
		if r := recover(); r != nil {
			w.a.logger.Error("watch reconciler panicked; list_changed watching stopped", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	select {
	case <-w.ctx.Done():
		return
	case <-w.a.appsStarted:
	}
	t := time.NewTicker(watchReconcileEvery)
	defer t.Stop()
	for {
		w.reconcile()
		select {
		case <-w.ctx.Done():
			w.mu.Lock()
			for name, wt := range w.watches {
				wt.cancel()
				delete(w.watches, name)
			}
			w.mu.Unlock()
			return
		case <-t.C:
		case <-w.kick:
		}
	}
}

// reconcile starts and stops watches to match the servers that should be watched.
func (w *watcher) reconcile() {
	w.mu.Lock()
	defer w.mu.Unlock()
	want := map[string]*model.Server{}
	limit := w.a.HealthChecks.WatchLimit
	over := 0
	for _, s := range w.a.ListServers() {
		if !s.Enabled || isBuiltin(s) || w.gaveUp[s] {
			continue
		}
		v, ok := w.a.health.byServer.Load(s.Name)
		if !ok || !v.(*model.ServerHealth).Notifies {
			continue
		}
		if len(want) >= limit {
			over++
			continue
		}
		want[s.Name] = s
	}
	if over > 0 && !w.limitLog {
		w.a.logger.Warn("more servers announce list changes than watch_limit; the others are only checked every interval",
			zap.Int("watch_limit", limit), zap.Int("not_watched", over))
	}
	w.limitLog = over > 0

	for name, wt := range w.watches {
		if s := want[name]; s != wt.s {
			wt.cancel()
			delete(w.watches, name)
		}
	}
	for gone := range w.gaveUp {
		if w.a.Server(gone.Name) != gone {
			delete(w.gaveUp, gone)
		}
	}
	for name, s := range want {
		if w.watches[name] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(w.ctx)
		w.watches[name] = &watch{s: s, cancel: cancel}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer cancel()
			w.run(ctx, s)
		}()
	}
}

// run keeps a watch session to s open until ctx ends, reconnecting with backoff.
func (w *watcher) run(ctx context.Context, s *model.Server) {
	defer func() {
		if r := recover(); r != nil {
			w.a.logger.Error("watch panicked", zap.String("server", s.Name), zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	backoff := watchMinBackoff
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := w.session(ctx, s, attempt > 0)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoNotificationStream) {
			w.a.logger.Info("server announces list changes but opened no notification stream; not watched",
				zap.String("server", s.Name))
			w.mu.Lock()
			w.gaveUp[s] = true
			if wt := w.watches[s.Name]; wt != nil && wt.s == s {
				delete(w.watches, s.Name)
			}
			w.mu.Unlock()
			return
		}
		if time.Since(start) >= watchStableAfter {
			backoff = watchMinBackoff
		}
		w.a.logger.Debug("watch session ended; reconnecting", zap.String("server", s.Name),
			zap.Duration("in", backoff), zap.String("error", watchEndReason(err)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(backoff*2, watchMaxBackoff)
	}
}

// watchEndReason says why a watch session ended, in the checker's own words.
func watchEndReason(err error) string {
	if err == nil {
		return "the upstream ended the session"
	}
	return checkErrorKind(err)
}

// session connects one watch session to s and serves its notifications until the
// session or its notification stream ends, or ctx. recheck runs a check once connected
// (after a reconnection, notifications may have been missed).
func (w *watcher) session(ctx context.Context, s *model.Server, recheck bool) error {
	a := w.a
	tracker := newStreamTracker(a.healthClientFor(s).Transport)
	httpClient := &http.Client{Transport: tracker}
	var transport mcp.Transport
	switch s.Transport {
	case model.TransportSSE:
		transport = &mcp.SSEClientTransport{Endpoint: s.Upstream, HTTPClient: httpClient}
	default:
		transport = &mcp.StreamableClientTransport{Endpoint: s.Upstream, HTTPClient: httpClient, MaxRetries: -1}
	}
	changed := make(chan struct{}, 1)
	onChange := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	client := mcp.NewClient(healthClientInfo, &mcp.ClientOptions{
		Capabilities:               &mcp.ClientCapabilities{},
		ToolListChangedHandler:     func(context.Context, *mcp.ToolListChangedRequest) { onChange() },
		PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { onChange() },
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { onChange() },
	})
	// The SSE transport's GET stream lives on Connect's context: keep it for the
	// session's life, and bound only the connection with a timer.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(time.Duration(a.HealthChecks.Timeout), cancel)
	session, err := client.Connect(cctx, transport, nil)
	if !timer.Stop() && err == nil {
		err = context.DeadlineExceeded
		session.Close()
	}
	if err != nil {
		return err
	}
	defer session.Close()
	if !announcesListChanged(session.InitializeResult().Capabilities) {
		// The server changed its mind since the last check; the next check says so.
		return errNoNotificationStream
	}
	select {
	case <-tracker.opened:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(watchStreamWait):
		return errNoNotificationStream
	}
	w.sessions.Add(1)
	defer w.sessions.Add(-1)
	a.logger.Debug("watching server for list changes", zap.String("server", s.Name),
		zap.String("protocol", session.InitializeResult().ProtocolVersion))

	ended := make(chan error, 1)
	go func() { ended <- session.Wait() }()
	if recheck {
		onChange()
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-ended:
			if err == nil {
				err = errors.New("session closed")
			}
			return err
		case <-tracker.dropped:
			return errors.New("notification stream ended")
		case <-changed:
			if debounce == nil {
				debounce = time.After(watchDebounce)
			}
		case <-debounce:
			debounce = nil
			// The current record: a change of it cancels ctx soon anyway.
			if cur := a.Server(s.Name); cur == s {
				a.checkAndRecord(ctx, s)
			}
		}
	}
}

// streamTracker is the watch session's HTTP transport: it notices when the stream
// notifications come on (a GET event stream, or a 2026-07-28 subscriptions/listen POST
// answered with an event stream) opens and when it ends.
type streamTracker struct {
	base              http.RoundTripper
	opened, dropped   chan struct{}
	openOnce, dropOne sync.Once
}

func newStreamTracker(base http.RoundTripper) *streamTracker {
	if base == nil {
		base = http.DefaultTransport
	}
	return &streamTracker{base: base, opened: make(chan struct{}), dropped: make(chan struct{})}
}

func (t *streamTracker) RoundTrip(req *http.Request) (*http.Response, error) {
	stream := req.Method == http.MethodGet || req.Header.Get(mcpMethodHeader) == methodSubscriptionsLis
	resp, err := t.base.RoundTrip(req)
	if err != nil || !stream || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return resp, err
	}
	t.openOnce.Do(func() { close(t.opened) })
	resp.Body = &trackedBody{ReadCloser: resp.Body, end: func() { t.dropOne.Do(func() { close(t.dropped) }) }}
	return resp, nil
}

type trackedBody struct {
	io.ReadCloser
	end func()
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *trackedBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

// sameLists reports whether two checks found the same tools, prompts and resources.
func sameLists(a, b *model.ServerHealth) bool {
	return slices.EqualFunc(a.Tools, b.Tools, func(x, y model.ToolInfo) bool {
		return x.Name == y.Name && x.Description == y.Description && bytes.Equal(x.InputSchema, y.InputSchema)
	}) && slices.Equal(a.Prompts, b.Prompts) && slices.Equal(a.Resources, b.Resources)
}
