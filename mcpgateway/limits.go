package mcpgateway

import (
	"errors"
	"net/http"
	"os"
	"strconv"
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
	// ListBufferWait for room, then gets 503 with Retry-After; the list that started
	// first may always grow within this size for itself (so a burst cannot starve
	// every list), which keeps the total under twice it. Default 64 MiB: two of the
	// largest lists the filter reads (16 MiB) at once, hundreds of ordinary ones.
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
