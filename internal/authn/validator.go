package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/caddymcp/caddymcp/internal/principal"
)

// Validator validates bearer JWTs from a fixed set of trusted issuers. It is safe for
// concurrent use. Its background work stops when the context given to NewValidator ends.
type Validator struct {
	cfg     Config
	ctx     context.Context
	issuers map[string]*issuer
	fetch   *fetcher
	jwks    *jwk.Cache
	cache   *tokenCache

	mu      sync.Mutex
	sources map[string]*keySource
	local   sync.Map // issuer → *issuer: the local issuers (Config.Local) seen so far

	verifies atomic.Int64 // signature verifications performed (tests, metrics)
}

type issuer struct {
	issuerSettings
	src     atomic.Pointer[keySource]
	limiter limiter // discovery attempts
}

var verifiers = func() map[string]jws.Verifier {
	m := make(map[string]jws.Verifier, len(supportedAlgs))
	for alg := range supportedAlgs {
		v, err := jws.NewVerifier(jwa.SignatureAlgorithm(alg))
		if err != nil {
			panic(fmt.Sprintf("authn: jwx has no verifier for %s: %v", alg, err))
		}
		m[alg] = v
	}
	return m
}()

// NewValidator checks cfg and starts fetching every issuer's keys in the background. It
// does not wait for the network: an issuer whose keys cannot be fetched yet makes
// Validate return ErrKeysUnavailable for its tokens until a later attempt succeeds.
//
// ctx bounds the Validator's lifetime: the jwk.Cache background refresh and any fetch in
// flight stop when it is done (in Caddy: the caddy.Context given to Provision, which is
// cancelled when the config is unloaded). Validate keeps working on cached keys after
// that, but fetches nothing new.
func NewValidator(ctx context.Context, cfg Config) (*Validator, error) {
	settings, err := cfg.issuerSettings()
	if err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	v := &Validator{
		cfg:     c,
		ctx:     ctx,
		issuers: make(map[string]*issuer, len(settings)),
		sources: map[string]*keySource{},
		cache:   newTokenCache(c.CacheSize),
		fetch: &fetcher{
			ctx:      ctx,
			client:   c.HTTPClient,
			timeout:  c.FetchTimeout,
			maxBytes: c.MaxResponseBytes,
			onError:  c.OnFetchError,
		},
	}
	window := min(c.RefreshInterval, time.Minute)
	v.jwks = jwk.NewCache(ctx,
		jwk.WithRefreshWindow(window),
		jwk.WithErrSink(httprcSink(v.report)),
	)
	for _, s := range settings {
		is := &issuer{issuerSettings: s}
		u := s.jwksURL
		if u == "" {
			u = c.KeyMemory.getIssuer(s.issuer)
		}
		if u != "" {
			src, err := v.source(u)
			if err != nil {
				return nil, err
			}
			is.src.Store(src)
		}
		v.issuers[s.issuer] = is
	}
	for _, is := range v.issuers {
		go v.warmUp(is)
	}
	return v, nil
}

// warmUp fetches an issuer's keys right away; when they were seeded from a KeyMemory it
// still fetches once, which also starts the periodic background refresh.
func (v *Validator) warmUp(is *issuer) {
	src, err := v.keys(v.ctx, is)
	if err != nil {
		return
	}
	src.mu.Lock()
	started := src.started
	src.mu.Unlock()
	if !started {
		_ = v.refetch(v.ctx, src)
	}
}

// httprcSink receives the errors of the jwk.Cache background refresh. Fetch failures
// were already reported by fetcher.Get (report drops them); parse failures are new.
type httprcSink func(url string, err error)

func (f httprcSink) Error(err error) {
	var re *httprc.RefreshError
	if errors.As(err, &re) {
		f(re.URL, re.Err)
		return
	}
	f("", err)
}

// report passes a fetch failure to Config.OnFetchError once.
func (v *Validator) report(u string, err error) {
	var r *reportedError
	if v.cfg.OnFetchError != nil && !errors.As(err, &r) {
		v.cfg.OnFetchError(u, err)
	}
}

// source returns the shared key source for a JWKS URL, registering it with the
// jwk.Cache the first time.
func (v *Validator) source(u string) (*keySource, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.sources[u]; s != nil {
		return s, nil
	}
	s := &keySource{url: u, mem: v.cfg.KeyMemory}
	if ix := s.mem.getKeys(u); ix != nil {
		s.index.Store(ix)
		s.gen.Store(1)
	}
	err := v.jwks.Register(u,
		jwk.WithHTTPClient(v.fetch),
		jwk.WithRefreshInterval(v.cfg.RefreshInterval),
		jwk.WithIgnoreParseError(true),
		jwk.WithPostFetcher(jwk.PostFetchFunc(func(_ string, set jwk.Set) (jwk.Set, error) {
			s.store(set)
			return set, nil
		})),
	)
	if err != nil {
		return nil, fmt.Errorf("authn: registering JWKS %s: %w", u, err)
	}
	v.sources[u] = s
	return s, nil
}

// keys returns the issuer's key source once it has keys, discovering and fetching
// (rate-limited) when it has none yet.
func (v *Validator) keys(ctx context.Context, is *issuer) (*keySource, error) {
	src := is.src.Load()
	if src == nil {
		err := v.limited(ctx, &is.limiter, func(bg context.Context) error {
			u, err := v.fetch.discover(bg, is.issuer)
			if err != nil {
				v.report(is.issuer, err)
				return err
			}
			s, err := v.source(u)
			if err != nil {
				return err
			}
			is.src.Store(s)
			v.cfg.KeyMemory.putIssuer(is.issuer, u)
			return nil
		})
		if src = is.src.Load(); src == nil {
			return nil, &KeysUnavailableError{Issuer: is.issuer, Err: err}
		}
	}
	if src.index.Load() == nil {
		err := v.refetch(ctx, src)
		if src.index.Load() == nil {
			return nil, &KeysUnavailableError{Issuer: is.issuer, Err: err}
		}
	}
	return src, nil
}

// localIssuer returns the issuer entry of iss when Config.Local has it: ES256 tokens
// (what the built-in authorization server signs), groups from "groups", the audiences
// of issuers that list none. Its keys are read from the issuer's memory.
func (v *Validator) localIssuer(iss string) *issuer {
	keys, ok := v.cfg.Local.keys(iss)
	if !ok {
		return nil
	}
	if is, ok := v.local.Load(iss); ok {
		return is.(*issuer)
	}
	es256, _ := algBit("ES256")
	is := &issuer{issuerSettings: issuerSettings{
		issuer: iss, audiences: slices.DeleteFunc(slices.Clone(v.cfg.Audiences), func(a string) bool { return a == "" }),
		audFunc: v.cfg.AudienceFunc, groupsClaim: DefaultGroupsClaim, algs: es256,
	}}
	is.src.Store(&keySource{url: "local issuer " + iss, local: keys})
	actual, _ := v.local.LoadOrStore(iss, is)
	return actual.(*issuer)
}

// refetch fetches src's JWKS now, unless a fetch ran less than MinRefetchInterval ago.
// The first fetch of a source goes through the jwk.Cache (which starts its periodic
// background refresh); later on-demand fetches bypass it, because each jwk.Cache.Refresh
// in jwx v2 / httprc v1 schedules one more perpetual periodic refresh of the URL.
func (v *Validator) refetch(ctx context.Context, src *keySource) error {
	if src.local != nil {
		// In memory: no network to spare, and a rotated key must be found at once.
		set, err := src.local()
		if err != nil {
			return fmt.Errorf("reading the keys of %s: %w", src.url, err)
		}
		src.store(set)
		return nil
	}
	return v.limited(ctx, &src.limiter, func(bg context.Context) error {
		src.mu.Lock()
		first := !src.started
		src.started = true
		src.mu.Unlock()
		if first {
			if _, err := v.jwks.Refresh(bg, src.url); err != nil {
				v.report(src.url, err)
				return err
			}
			return nil
		}
		body, _, err := v.fetch.fetch(bg, src.url)
		if err == nil {
			var set jwk.Set
			if set, err = jwk.Parse(body, jwk.WithIgnoreParseError(true)); err == nil {
				src.store(set)
				return nil
			}
			err = fmt.Errorf("parsing JWKS %s: %w", src.url, err)
		}
		v.report(src.url, err)
		return err
	})
}

// limited runs fn through l; the caller waits at most FetchTimeout (and its own ctx).
func (v *Validator) limited(ctx context.Context, l *limiter, fn func(context.Context) error) error {
	if err := v.ctx.Err(); err != nil {
		return fmt.Errorf("validator stopped: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, v.cfg.FetchTimeout)
	defer cancel()
	return l.run(wctx, v.ctx, v.cfg.Now(), v.cfg.MinRefetchInterval, fn)
}

// Validate checks a bearer token (without the "Bearer " prefix) and returns the caller.
// ctx bounds any wait for a key fetch the call triggers (cold start, unknown kid).
//
// Errors match ErrNoToken, ErrInvalidToken (*InvalidTokenError) or ErrKeysUnavailable
// (*KeysUnavailableError) with errors.Is; nothing else is returned.
func (v *Validator) Validate(ctx context.Context, token string) (*principal.Caller, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, invalid(ReasonTooLarge)
	}
	if strings.IndexByte(token, '.') < 0 { // not a JWT: maybe an issuer's opaque token
		if resolve := v.cfg.Local.resolverFor(token); resolve != nil {
			return resolve(ctx, token) // looked up every time: a revocation holds at once
		}
	}
	var key cacheKey
	if v.cache != nil {
		key = sha256.Sum256([]byte(token))
		if p := v.cache.get(&key, v.cfg.Now()); p != nil {
			return v.unlessRevoked(p)
		}
	}
	p, src, gen, err := v.validate(ctx, token)
	if err != nil {
		return nil, err
	}
	if v.cache != nil && v.cfg.Now().Before(p.ExpiresAt) {
		v.cache.put(&key, p, src, gen)
	}
	return v.unlessRevoked(p)
}

// unlessRevoked refuses a local issuer's token that issuer has revoked since it was
// issued; checked on every use, cached or not, so a revocation holds at once.
func (v *Validator) unlessRevoked(p *principal.Caller) (*principal.Caller, error) {
	if v.cfg.Local.revoked(p) {
		return nil, invalidFor(ReasonRevoked, p.Issuer, nil)
	}
	return p, nil
}

func (v *Validator) validate(ctx context.Context, token string) (*principal.Caller, *keySource, uint64, error) {
	c, err := parseCompact(token)
	if err != nil {
		return nil, nil, 0, &InvalidTokenError{Reason: ReasonMalformed, detail: err}
	}
	if _, ok := supportedAlgs[c.alg]; !ok {
		return nil, nil, 0, invalid(ReasonUnsupportedAlg)
	}
	issStr, ok := jsonString(c.claims["iss"])
	if !ok {
		return nil, nil, 0, invalid(ReasonUntrustedIssuer)
	}
	is := v.issuers[issStr]
	if is == nil {
		if is = v.localIssuer(issStr); is == nil {
			return nil, nil, 0, invalid(ReasonUntrustedIssuer)
		}
	}
	if !is.algs.has(c.alg) {
		return nil, nil, 0, invalidFor(ReasonUnsupportedAlg, is.issuer, nil)
	}

	src, err := v.keys(ctx, is)
	if err != nil {
		return nil, nil, 0, err
	}
	// gen before index: a key change racing with us can only make the cache entry stale
	// (re-verified on next use), never make a result from old keys look current.
	gen := src.gen.Load()
	ix := src.index.Load()
	cands := ix.lookup(c.kid, c.alg)
	if len(cands) == 0 {
		// Maybe the issuer rotated keys: refetch (rate-limited), then look again.
		_ = v.refetch(ctx, src)
		gen = src.gen.Load()
		ix = src.index.Load()
		if cands = ix.lookup(c.kid, c.alg); len(cands) == 0 {
			var detail error
			if why, ok := ix.rejected[c.kid]; ok {
				detail = fmt.Errorf("key %q in %s is unusable: %s", c.kid, src.url, why)
			}
			return nil, nil, 0, invalidFor(ReasonUnknownKey, is.issuer, detail)
		}
	}

	verifier := verifiers[c.alg]
	input := []byte(c.signingInput)
	verified := false
	for _, k := range cands {
		v.verifies.Add(1)
		if verifier.Verify(input, c.sig, k.pub) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, nil, 0, invalidFor(ReasonBadSignature, is.issuer, nil)
	}

	p, reason := v.principal(is, c)
	if reason != "" {
		return nil, nil, 0, invalidFor(reason, is.issuer, nil)
	}
	return p, src, gen, nil
}

// principal checks the time and audience claims of a verified token and extracts the
// caller. It returns a Reason* on rejection.
func (v *Validator) principal(is *issuer, c *compact) (*principal.Caller, string) {
	now := v.cfg.Now()
	skew := v.cfg.Skew
	rawExp, ok := c.claims["exp"]
	if !ok {
		return nil, ReasonMissingExpiry
	}
	exp, ok := numericDate(rawExp)
	if !ok {
		return nil, ReasonMalformed
	}
	if !now.Before(exp.Add(skew)) {
		return nil, ReasonExpired
	}
	if raw, ok := c.claims["nbf"]; ok {
		nbf, ok := numericDate(raw)
		if !ok {
			return nil, ReasonMalformed
		}
		if now.Add(skew).Before(nbf) {
			return nil, ReasonNotYetValid
		}
	}
	var iat time.Time
	if raw, ok := c.claims["iat"]; ok {
		if iat, ok = numericDate(raw); !ok {
			return nil, ReasonMalformed
		}
		if iat.After(now.Add(skew)) {
			return nil, ReasonIssuedInFuture
		}
	}

	auds, ok := stringList(c.claims["aud"], false)
	if !ok || !slices.ContainsFunc(auds, func(a string) bool {
		return slices.Contains(is.audiences, a) || (is.audFunc != nil && is.audFunc(a))
	}) {
		return nil, ReasonWrongAudience
	}

	p := &principal.Caller{Issuer: is.issuer, ExpiresAt: exp, IssuedAt: iat, Audiences: auds}
	p.TokenID, _ = jsonString(c.claims["jti"])
	if raw, ok := c.claims["sub"]; ok {
		if p.Subject, ok = jsonString(raw); !ok {
			return nil, ReasonMalformed
		}
	}
	for _, name := range [...]string{"client_id", "azp", "appid"} {
		if s, ok := jsonString(c.claims[name]); ok && s != "" {
			p.ClientID = s
			break
		}
	}
	if p.Subject == "" && p.ClientID == "" {
		return nil, ReasonMissingSubject
	}
	if raw, ok := claimPath(c.claims, is.groupsClaim, 0); ok {
		p.Groups, _ = stringList(raw, false)
	}
	if raw, ok := c.claims["scope"]; ok {
		p.TokenScopes, _ = stringList(raw, true)
	} else if raw, ok := c.claims["scp"]; ok {
		p.TokenScopes, _ = stringList(raw, true)
	}
	return p, ""
}
