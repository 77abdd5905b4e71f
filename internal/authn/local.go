package authn

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddymcp/caddymcp/internal/principal"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// LocalIssuers are the issuers served by the same Caddy config as the gateway — the
// built-in authorization server. Their tokens are trusted with no configuration:
// verified with the key set the issuer holds in memory (no discovery, no JWKS fetch),
// groups from the "groups" claim, audiences as for configured issuers that list none
// (Config.Audiences and AudienceFunc). Safe for concurrent use; the zero value is empty.
type LocalIssuers struct {
	m      sync.Map // issuer → func() []byte (the issuer's current JWKS document)
	opaque sync.Map // token prefix → *OpaqueResolver
	signIn sync.Map // issuer → *BrowserSignIn
	revoke sync.Map // issuer → *func(*principal.Caller) bool
}

// OpaqueResolver finds the caller of an opaque token (the built-in server's personal
// gateway tokens) in the issuer's store, on every request, so a revocation holds for
// the very next one. It returns a *InvalidTokenError for a token it does not honour.
type OpaqueResolver func(ctx context.Context, token string) (*principal.Caller, error)

// SetOpaque makes tokens starting with prefix resolved by resolve instead of being
// parsed as JWTs. The returned function withdraws it.
func (l *LocalIssuers) SetOpaque(prefix string, resolve OpaqueResolver) (remove func()) {
	entry := &resolve
	l.opaque.Store(prefix, entry)
	return func() { l.opaque.CompareAndDelete(prefix, entry) }
}

// resolverFor returns the resolver of token's prefix, or nil.
func (l *LocalIssuers) resolverFor(token string) OpaqueResolver {
	if l == nil {
		return nil
	}
	var found OpaqueResolver
	l.opaque.Range(func(k, v any) bool {
		if strings.HasPrefix(token, k.(string)) {
			found = *v.(*OpaqueResolver)
			return false
		}
		return true
	})
	return found
}

// Set makes issuer trusted, its keys read from jwks (the JWKS JSON it publishes; called
// again when a token names a key id not seen yet, so key rotation needs no notice).
// The returned function withdraws it.
func (l *LocalIssuers) Set(issuer string, jwks func() []byte) (remove func()) {
	entry := &jwks
	l.m.Store(issuer, entry)
	return func() { l.m.CompareAndDelete(issuer, entry) }
}

// keys returns the key set of a local issuer, or false when issuer is not one.
func (l *LocalIssuers) keys(issuer string) (func() (jwk.Set, error), bool) {
	if l == nil {
		return nil, false
	}
	v, ok := l.m.Load(issuer)
	if !ok {
		return nil, false
	}
	jwks := *v.(*func() []byte)
	return func() (jwk.Set, error) { return jwk.Parse(jwks()) }, true
}

// BrowserSignIn is a local issuer's sign-in in the browser, for pages served by other
// handlers of the config that must know which user is at the browser (e.g. a page that
// connects the user's account at an upstream service) without a sign-in of their own.
type BrowserSignIn interface {
	// SignedIn returns the subject of the user signed in in the browser that sent r.
	SignedIn(r *http.Request) (subject string, ok bool)
	// SignedInUser is SignedIn with the user's groups, as the issuer's tokens carry them.
	SignedInUser(r *http.Request) (subject string, groups []string, ok bool)
	// SignInURL is the issuer's sign-in page, which sends the browser back to returnTo
	// (a path on the issuer's own site) once the user is signed in.
	SignInURL(returnTo string) string
}

// SetSignIn makes b the browser sign-in of issuer. The returned function withdraws it.
func (l *LocalIssuers) SetSignIn(issuer string, b BrowserSignIn) (remove func()) {
	entry := &b
	l.signIn.Store(issuer, entry)
	return func() { l.signIn.CompareAndDelete(issuer, entry) }
}

// SignIn returns the browser sign-in of a local issuer, or false when issuer is not
// one of this config.
func (l *LocalIssuers) SignIn(issuer string) (BrowserSignIn, bool) {
	if l == nil {
		return nil, false
	}
	v, ok := l.signIn.Load(issuer)
	if !ok {
		return nil, false
	}
	return *v.(*BrowserSignIn), true
}

// SignInIssuers lists the local issuers with a browser sign-in, sorted.
func (l *LocalIssuers) SignInIssuers() []string {
	if l == nil {
		return nil
	}
	var out []string
	l.signIn.Range(func(k, _ any) bool {
		out = append(out, k.(string))
		return true
	})
	slices.Sort(out)
	return out
}

// SetRevocations makes revoked decide, on every use of a token of issuer (cached or
// not), whether the issuer has revoked it since (by its jti, or all of its subject's
// tokens issued before some time). revoked must be fast: it runs on every request. The
// returned function withdraws it.
func (l *LocalIssuers) SetRevocations(issuer string, revoked func(*principal.Caller) bool) (remove func()) {
	entry := &revoked
	l.revoke.Store(issuer, entry)
	return func() { l.revoke.CompareAndDelete(issuer, entry) }
}

func (l *LocalIssuers) revoked(p *principal.Caller) bool {
	if l == nil || p.Issuer == "" {
		return false
	}
	v, ok := l.revoke.Load(p.Issuer)
	return ok && (*v.(*func(*principal.Caller) bool))(p)
}
