package mcpregistry

import (
	"context"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/upstream"
)

// CheckRuntimeUpstream returns a *model.FieldError (field "upstream") when raw may not
// be the upstream of a server registered at runtime; see upstream.Rules.
func (a *App) CheckRuntimeUpstream(ctx context.Context, raw string) error {
	return a.RuntimeUpstreams.Check(ctx, "upstream", raw, upstream.Resolve)
}

// GuardDial wraps dial so that the runtime_upstreams rules also hold for the address
// actually connected to (see upstream.Guard); dials to the servers declared in the
// Caddy config pass. The gateway and the health checker wrap their transports' dialers
// with it.
func (a *App) GuardDial(dial upstream.DialFunc) upstream.DialFunc {
	return upstream.Guard(a.RuntimeUpstreams, a.trustedDials, dial)
}

// trustedUpstream reports whether raw points at the host:port of a server declared in
// the config (the operator's own choice, exempt from runtime_upstreams).
func (a *App) trustedUpstream(raw string) bool {
	for target := range upstream.TrustedTargets([]*model.Server{{Upstream: raw}}) {
		return a.trustedDials[target]
	}
	return false
}
