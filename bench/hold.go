package bench

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// CaddyHoldH2 is Caddy itself holding an HTTP/2 stream open with the least a handler
// can do (holdStreamHandler: the priming event, then a wait): the floor any handler
// on Caddy's HTTP/2 server pays per open stream — the server's stream state and the
// handler goroutine with Caddy's middleware chain beneath it. GatewayH2 − CaddyHoldH2
// is what the gateway adds above that floor.
const CaddyHoldH2 = "caddy_hold_h2"

func init() { caddy.RegisterModule(holdStreamHandler{}) }

// holdStreamHandler is the bench's stand-in for the cheapest stream handler there is.
type holdStreamHandler struct{}

func (holdStreamHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.bench_hold_stream",
		New: func() caddy.Module { return holdStreamHandler{} },
	}
}

func (holdStreamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "id: 0\ndata:\n\n")
	_ = http.NewResponseController(w).Flush()
	<-r.Context().Done()
	return nil
}
