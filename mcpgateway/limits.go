package mcpgateway

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/cfargs"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

// LimitsConfig bounds what one gateway lets callers hold: open event streams, time
// spent sending a request body, memory spent on list responses being filtered. Every
// refusal is a JSON-RPC error body, with Retry-After where waiting helps.
type LimitsConfig struct {
	// MaxStreamsPerPrincipal caps the GET event streams one authenticated caller holds
	// open at once (a token's issuer and subject, or an API key). More answer 429 with
	// Retry-After. Without auth there is no principal (and many users may share one
	// address behind NAT), so only MaxStreams applies. An IDE opens one per server and session, a few
	// at reconnect; 32 leaves room for several IDE windows and slow-to-notice reconnects
	// while stopping a single caller from exhausting file descriptors. Default 32; -1
	// removes the cap.
	MaxStreamsPerPrincipal int `json:"max_streams_per_principal,omitempty"`

	// MaxStreams caps the GET event streams the gateway carries in total. More answer
	// 503 with Retry-After. Each stream holds two sockets (client and upstream), so 4096
	// streams use 8192 descriptors, within the default 1<<20 hard limit systemd gives
	// Caddy and far from it. Default 4096; -1 removes the cap.
	MaxStreams int `json:"max_streams,omitempty"`

	// BodyReadTimeout bounds the time to receive a request body once its head arrived.
	// A slower body gets 408 with a JSON-RPC error. Default 10s; -1 (Caddyfile: off)
	// removes the bound.
	BodyReadTimeout caddy.Duration `json:"body_read_timeout,omitempty"`

	// MaxListBufferSize bounds the memory held at once by JSON list responses
	// (tools/list, prompts/list, resources/list) buffered for filtering, counting each
	// body twice (input and filtered output). A list that would go over waits up to
	// ListBufferWait for room, then gets 503 with Retry-After. Default 64 MiB: two of
	// the largest lists the filter reads (16 MiB) at once, hundreds of ordinary ones.
	MaxListBufferSize int64 `json:"max_list_buffer_size,omitempty"`

	// ListBufferWait is how long a list response waits for buffer room before the 503.
	// Default 2s.
	ListBufferWait caddy.Duration `json:"list_buffer_wait,omitempty"`

	// StreamCheckInterval is how often open streams are checked against the registry:
	// a stream whose server was disabled, removed or moved to another upstream is
	// closed within it. A stream also ends when the caller's token expires. Default 1s.
	StreamCheckInterval caddy.Duration `json:"stream_check_interval,omitempty"`
}

// JSON-RPC error codes of the limits (documented in the README with the others).
const (
	codeTooManyStreams = -32010 // 429 / 503: stream caps reached
	codeBodyTimeout    = -32011 // 408: the request body arrived too slowly
	codeBusy           = -32012 // 503: no room to buffer a list response for filtering
)

const (
	defaultMaxStreamsPerPrincipal = 32
	defaultMaxStreams             = 4096
	defaultBodyReadTimeout        = 10 * time.Second
	defaultMaxListBufferSize      = 64 << 20
	defaultListBufferWait         = 2 * time.Second
	defaultStreamCheckInterval    = time.Second
)

// limits is the provisioned form of LimitsConfig.
type limits struct {
	perPrincipal int // <= 0: no cap
	total        int // <= 0: no cap
	bodyTimeout  time.Duration
	lists        *byteBudget
	streams      streamTracker
}

func provisionLimits(ctx caddy.Context, cfg *LimitsConfig, registry *mcpregistry.App, logger *zap.Logger) *limits {
	c := LimitsConfig{}
	if cfg != nil {
		c = *cfg
	}
	l := &limits{
		perPrincipal: orDefault(c.MaxStreamsPerPrincipal, defaultMaxStreamsPerPrincipal),
		total:        orDefault(c.MaxStreams, defaultMaxStreams),
		bodyTimeout:  time.Duration(c.BodyReadTimeout),
	}
	if l.bodyTimeout == 0 {
		l.bodyTimeout = defaultBodyReadTimeout
	}
	size, wait := c.MaxListBufferSize, time.Duration(c.ListBufferWait)
	if size == 0 {
		size = defaultMaxListBufferSize
	}
	if wait <= 0 {
		wait = defaultListBufferWait
	}
	l.lists = newByteBudget(size, wait)
	every := time.Duration(c.StreamCheckInterval)
	if every <= 0 {
		every = defaultStreamCheckInterval
	}
	l.streams.init(l.perPrincipal, l.total)
	if registry != nil {
		go l.streams.sweep(ctx, every, registry, logger)
	}
	// A server shutting down (config reload or stop) waits for its active requests,
	// with no bound unless grace_period is set, and a stream copied in its handler
	// (HTTP/2) never ends by itself: end them all when the shutdown begins, as Cleanup
	// does for hijacked streams, which Caddy no longer tracks.
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		srv.RegisterOnShutdown(l.streams.endAll)
	}
	return l
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (c *LimitsConfig) validate() error {
	if c == nil {
		return nil
	}
	if c.MaxStreamsPerPrincipal < -1 || c.MaxStreams < -1 {
		return errors.New("limits: stream caps must be positive, or -1 for none")
	}
	if c.MaxListBufferSize < 0 || c.ListBufferWait < 0 || c.StreamCheckInterval < 0 {
		return errors.New("limits: sizes and durations must not be negative")
	}
	return nil
}

// unmarshalLimits parses the limits block:
//
//	limits {
//		max_streams_per_principal <n>|off
//		max_streams               <n>|off
//		body_read_timeout         <duration>|off
//		max_list_buffer_size      <size>
//		list_buffer_wait          <duration>
//		stream_check_interval     <duration>
//	}
func unmarshalLimits(d *caddyfile.Dispenser, c *LimitsConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		v, err := cfargs.One(d)
		if err != nil {
			return err
		}
		switch opt {
		case "max_streams_per_principal", "max_streams":
			n := -1
			if v != "off" {
				if n, err = strconv.Atoi(v); err != nil || n <= 0 {
					return d.Errf("bad %s %q: want a positive number or off", opt, v)
				}
			}
			if opt == "max_streams" {
				c.MaxStreams = n
			} else {
				c.MaxStreamsPerPrincipal = n
			}
		case "body_read_timeout":
			if v == "off" {
				c.BodyReadTimeout = -1
				break
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("bad body_read_timeout %q: want a duration such as 10s, or off", v)
			}
			c.BodyReadTimeout = caddy.Duration(dur)
		case "max_list_buffer_size":
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<40 {
				return d.Errf("bad max_list_buffer_size %q: want a size such as 64MiB", v)
			}
			c.MaxListBufferSize = int64(n)
		case "list_buffer_wait", "stream_check_interval":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("bad %s %q: want a duration", opt, v)
			}
			if opt == "list_buffer_wait" {
				c.ListBufferWait = caddy.Duration(dur)
			} else {
				c.StreamCheckInterval = caddy.Duration(dur)
			}
		default:
			return d.Errf("unknown limits option %q", opt)
		}
	}
	return nil
}

// --- request bodies

// bodyDeadline is the time r's body may take to arrive (0: unbounded, or no body).
func (l *limits) bodyDeadline(r *http.Request) time.Duration {
	if l == nil || r.ContentLength == 0 {
		return 0
	}
	return l.bodyTimeout
}

// isBodyTimeout reports whether a body read failed on the read deadline.
func isBodyTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func writeBodyTimeout(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Connection", "close")
	writeRPCError(w, http.StatusRequestTimeout, "", codeBodyTimeout,
		"the request body did not arrive within the gateway's body_read_timeout of "+d.String())
}

// --- event streams

// streamTicket is one open GET event stream: counted against the caps until release,
// closed early when its server goes away or its caller's token expires.
type streamTicket struct {
	t         *streamTracker
	principal string
	server    string
	upstream  string
	expiry    *time.Timer // closes the stream at the token's exp (nil: no exp)

	mu       sync.Mutex
	close    func() // ends the stream (cancels the handler, or closes the connections)
	closed   bool
	released bool
	handed   bool // the hijacked stream owns the ticket and releases it
}

// streamTracker counts open streams per principal and in total.
type streamTracker struct {
	perPrincipal, max int
	total             atomic.Int64

	mu   sync.Mutex
	per  map[string]int
	open map[*streamTicket]struct{}
}

func (t *streamTracker) init(perPrincipal, max int) {
	t.perPrincipal, t.max = perPrincipal, max
	t.per = make(map[string]int)
	t.open = make(map[*streamTicket]struct{})
}

var (
	errPrincipalStreams = errors.New("too many open event streams for this caller")
	errTotalStreams     = errors.New("too many open event streams on the gateway")
)

// acquire counts a new stream, or refuses it at a cap.
func (t *streamTracker) acquire(principal string, server *mcpregistry.Server, exp time.Time, closeFn func()) (*streamTicket, error) {
	if t.max > 0 && t.total.Add(1) > int64(t.max) {
		t.total.Add(-1)
		return nil, errTotalStreams
	}
	if t.max <= 0 {
		t.total.Add(1)
	}
	tk := &streamTicket{t: t, principal: principal, server: server.Name, upstream: server.Upstream, close: closeFn}
	t.mu.Lock()
	if t.perPrincipal > 0 && principal != "" && t.per[principal] >= t.perPrincipal {
		t.mu.Unlock()
		t.total.Add(-1)
		return nil, errPrincipalStreams
	}
	t.per[principal]++
	t.open[tk] = struct{}{}
	t.mu.Unlock()
	if !exp.IsZero() {
		tk.expiry = time.AfterFunc(time.Until(exp), tk.end)
	}
	return tk, nil
}

// handOver makes closeFn the way to end the stream from now on (the hijacked path).
func (tk *streamTicket) handOver(closeFn func()) bool {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.closed {
		return false
	}
	tk.close, tk.handed = closeFn, true
	return true
}

// releaseUnlessHanded is the handler's release: a ticket handed over to a hijacked
// stream is released when that stream closes.
func (tk *streamTicket) releaseUnlessHanded() {
	tk.mu.Lock()
	handed := tk.handed
	tk.mu.Unlock()
	if !handed {
		tk.release()
	}
}

// end closes the stream early (server gone, token expired).
func (tk *streamTicket) end() {
	tk.mu.Lock()
	if tk.closed {
		tk.mu.Unlock()
		return
	}
	tk.closed = true
	fn := tk.close
	tk.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// release uncounts the stream; later calls do nothing.
func (tk *streamTicket) release() {
	tk.mu.Lock()
	if tk.released {
		tk.mu.Unlock()
		return
	}
	tk.released, tk.closed = true, true
	tk.mu.Unlock()
	if tk.expiry != nil {
		tk.expiry.Stop()
	}
	t := tk.t
	t.mu.Lock()
	if n := t.per[tk.principal] - 1; n > 0 {
		t.per[tk.principal] = n
	} else {
		delete(t.per, tk.principal)
	}
	delete(t.open, tk)
	t.mu.Unlock()
	t.total.Add(-1)
}

// endAll closes every open stream.
func (t *streamTracker) endAll() {
	t.mu.Lock()
	all := make([]*streamTicket, 0, len(t.open))
	for tk := range t.open {
		all = append(all, tk)
	}
	t.mu.Unlock()
	for _, tk := range all {
		tk.end()
	}
}

// sweep closes, every interval until ctx ends, the streams whose server was removed,
// disabled or pointed at another upstream.
func (t *streamTracker) sweep(ctx context.Context, every time.Duration, registry *mcpregistry.App, logger *zap.Logger) {
	defer func() {
		if err := recover(); err != nil {
			logger.Error("stream sweep panicked", zap.Any("error", err))
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var stale []*streamTicket
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t.total.Load() == 0 {
			continue
		}
		stale = stale[:0]
		t.mu.Lock()
		for tk := range t.open {
			s := registry.Server(tk.server)
			if s == nil || !s.Enabled || s.Upstream != tk.upstream {
				stale = append(stale, tk)
			}
		}
		t.mu.Unlock()
		for _, tk := range stale {
			logger.Debug("closing an event stream: its server was disabled, removed or moved", zap.String("server", tk.server))
			tk.end()
		}
	}
}

// openStream counts a GET stream for the caller, or answers the refusal itself and
// returns nil. closeFn ends the stream while its handler holds it.
func (l *limits) openStream(w http.ResponseWriter, principal string, server *mcpregistry.Server, exp time.Time, closeFn func()) *streamTicket {
	if !exp.IsZero() && !time.Now().Before(exp) {
		return nil // cannot happen after validation; refuse rather than count it
	}
	tk, err := l.streams.acquire(principal, server, exp, closeFn)
	switch {
	case errors.Is(err, errPrincipalStreams):
		w.Header().Set("Retry-After", "30")
		writeRPCError(w, http.StatusTooManyRequests, "", codeTooManyStreams,
			"too many open event streams for this caller (limit "+strconv.Itoa(l.perPrincipal)+"); close some and retry")
	case err != nil:
		w.Header().Set("Retry-After", "30")
		writeRPCError(w, http.StatusServiceUnavailable, "", codeTooManyStreams,
			"the gateway carries its maximum of "+strconv.Itoa(l.total)+" event streams; retry later")
	}
	return tk
}

// streamPrincipal names the caller for the per-principal cap: issuer and subject (or
// client id) of a token, the key's subject for an API key; "" without auth (no cap).
func streamPrincipal(c *who) string {
	if c == nil || c.Principal == nil {
		return ""
	}
	p := c.Principal
	id := p.Subject
	if id == "" {
		id = "client\x00" + p.ClientID
	}
	return p.Issuer + "\x00" + id
}

// beginStream counts a GET event stream before it is forwarded. It returns the request
// to forward (its context ends when the stream must close) and the function to call when
// the handler is done, or ok false after answering the refusal itself.
func (g *Gateway) beginStream(w http.ResponseWriter, r *http.Request, c *who, server *mcpregistry.Server) (*http.Request, func(), bool) {
	var exp time.Time
	if c != nil && c.Principal != nil {
		exp = c.Principal.ExpiresAt
	}
	ctx, cancel := context.WithCancel(r.Context())
	tk := g.limits.openStream(w, streamPrincipal(c), server, exp, cancel)
	if tk == nil {
		cancel()
		return r, nil, false
	}
	return r.WithContext(context.WithValue(ctx, ticketCtxKey{}, tk)), func() {
		cancel()
		tk.releaseUnlessHanded()
	}, true
}

type ticketCtxKey struct{}

// ticketFrom returns the stream ticket ServeHTTP put in r's context, if any.
func ticketFrom(r *http.Request) *streamTicket {
	tk, _ := r.Context().Value(ticketCtxKey{}).(*streamTicket)
	return tk
}

// --- list buffers

// byteBudget is a counting semaphore on bytes, with a bounded wait.
type byteBudget struct {
	limit int64
	wait  time.Duration

	mu      sync.Mutex
	used    int64
	waiters int           // acquires waiting for room
	room    chan struct{} // closed (and replaced) when bytes are released to waiters
}

func newByteBudget(limit int64, wait time.Duration) *byteBudget {
	return &byteBudget{limit: limit, wait: wait, room: make(chan struct{})}
}

// acquire takes n bytes, waiting up to the budget's wait (or ctx's end) for room. A
// request larger than the whole budget is refused at once.
func (b *byteBudget) acquire(ctx context.Context, n int64) bool {
	if n > b.limit {
		return false
	}
	var deadline <-chan time.Time
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return true
		}
		room := b.room
		b.waiters++
		b.mu.Unlock()
		if deadline == nil {
			timer := time.NewTimer(b.wait)
			defer timer.Stop()
			deadline = timer.C
		}
		ok := true
		select {
		case <-room:
		case <-deadline:
			ok = false
		case <-ctx.Done():
			ok = false
		}
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
		if !ok {
			return false
		}
	}
}

func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.waiters > 0 {
		close(b.room)
		b.room = make(chan struct{})
	}
	b.mu.Unlock()
}

func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func writeBusy(w http.ResponseWriter, id string) {
	w.Header().Set("Retry-After", "2")
	writeRPCError(w, http.StatusServiceUnavailable, id, codeBusy,
		"the gateway is filtering too many large list responses at once; retry shortly")
}
