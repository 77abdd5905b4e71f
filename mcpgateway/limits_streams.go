package mcpgateway

import (
	"context"
	"errors"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry"
)

// Open event streams under the limits: counted per principal and in total, closed
// when their server goes away, their caller's token expires or their server shuts down.

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
func (t *streamTracker) acquire(principal string, server *model.Server, exp time.Time, closeFn func()) (*streamTicket, error) {
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
func (l *limits) openStream(w http.ResponseWriter, principal string, server *model.Server, exp time.Time, closeFn func()) *streamTicket {
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
func streamPrincipal(p *principal.Caller) string {
	if p == nil {
		return ""
	}
	id := p.Subject
	if id == "" {
		id = "client\x00" + p.ClientID
	}
	return p.Issuer + "\x00" + id
}

// beginStream counts a GET event stream before it is forwarded. It returns the request
// to forward (its context ends when the stream must close) and the function to call when
// the handler is done, or ok false after answering the refusal itself.
func (g *Gateway) beginStream(w http.ResponseWriter, r *http.Request, c *principal.Caller, server *model.Server) (*http.Request, func(), bool) {
	var exp time.Time
	if c != nil {
		exp = c.ExpiresAt
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
