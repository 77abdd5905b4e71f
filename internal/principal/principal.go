// Package principal carries the authenticated caller of a request through its context,
// from the gateway to the in-process (builtin) MCP servers it serves. Plain values only:
// no Caddy, no I/O.
package principal

import (
	"context"

	"github.com/caddymcp/caddymcp/internal/policy"
)

// Caller is who made a request, as the gateway authenticated it, with their resolved
// permissions.
type Caller struct {
	Subject  string
	ClientID string
	Groups   []string
	Grant    policy.Grant
}

type ctxKey struct{}

// WithCaller returns a copy of ctx carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the caller ctx carries. ok is false when there is none, which
// means the gateway has authentication off (or the request did not come through it).
func FromContext(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Caller)
	return c, ok && c != nil
}
