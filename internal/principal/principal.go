// Package principal carries the authenticated caller of a request through its context,
// from the gateway to the in-process (builtin) MCP servers it serves. Plain values only:
// no Caddy, no I/O.
package principal

import (
	"context"
	"time"

	"github.com/caddymcp/caddymcp/internal/policy"
)

// Caller is who made a request: the identity a token or API key proved (set by
// authn.Validator and access.Authenticator) and, once access.Authenticator.Resolve has
// run, what the policy grants it. Callers returned by a validator may be shared between
// requests (they come from the validated-token cache): treat them, slices included, as
// immutable, and copy before modifying.
type Caller struct {
	// Subject is the token's sub claim ("" if it has none but names a client), or
	// "api-key:<hash prefix>" for an API key.
	Subject string
	// Issuer is the configured issuer that signed the token (equal to iss); empty for
	// an API key.
	Issuer string
	// ClientID is client_id (RFC 9068), else azp (OIDC), else appid (Entra v1).
	ClientID string
	// Groups from the issuer's groups claim (a string is one group, an array of strings
	// is taken as is), or an API key's configured groups. nil when there are none.
	Groups []string
	// TokenScopes are the OAuth scopes the token carries: its scope claim
	// (space-separated, RFC 8693/9068) or, when absent, scp. They grant nothing here;
	// PolicyScopes do.
	TokenScopes []string
	// ExpiresAt is the token's exp; zero for an API key.
	ExpiresAt time.Time
	// IssuedAt is the token's iat; zero when it has none.
	IssuedAt time.Time
	// TokenID is the token's jti; "" when it has none.
	TokenID string
	// Audiences is the token's aud, as validated (one of them is accepted). Callers
	// that accept some audiences only for some resources (RFC 8707, per-server
	// tokens) read it.
	Audiences []string

	// Grant is what the policy allows the caller, resolved from Groups.
	Grant policy.Grant
	// PolicyScopes name the policy's scopes that Groups map to (the scopes of the
	// policy file, such as "servers/github-read"), which made Grant.
	PolicyScopes []string
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
