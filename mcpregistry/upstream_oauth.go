package mcpregistry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/upstream"
	"github.com/caddymcp/caddymcp/mcpregistry/upstreamoauth"
)

// backend_auth oauth at run time: the token the gateway sends a server for a caller,
// from an in-memory cache on the hot path (a hit is a map read under a read lock: no
// store read, no decryption, no allocation), filled from the vault or the upstream's
// token endpoint on a miss, one fetch per (caller, server) at a time, no lock held
// across I/O.

const (
	// refreshSkew: an access token is refreshed this long before it expires.
	refreshSkew = 30 * time.Second
	// missingTTL: how long "this user has no token for this server" is remembered; a
	// connection completed on this instance clears it at once.
	missingTTL = 10 * time.Second
	// connectLinkTTL bounds the life of a connect link handed to a client.
	connectLinkTTL = 15 * time.Minute
	// connectFlowTTL bounds the time between starting a connection on the connect page
	// and the authorization server's redirect back.
	connectFlowTTL = 10 * time.Minute
	// discoveryRetry: a failed discovery is retried after this long.
	discoveryRetry = 30 * time.Second
	// maxFlowsPerUser and maxFlowsTotal bound the pending connect flows (each lives
	// connectFlowTTL): a user starting connections in a loop, or many users, cannot
	// grow the store without end.
	maxFlowsPerUser = 5
	maxFlowsTotal   = 10000
)

// skewFor is how long before expiry a token with remaining lifetime left is
// refreshed: refreshSkew, or a quarter of a short lifetime.
func skewFor(left time.Duration) time.Duration {
	return min(refreshSkew, max(left/4, 0))
}

// ConnectRequiredError says the caller holds no usable token for the server: they have
// to connect their account through the connect page.
type ConnectRequiredError struct {
	Server string
	// Reason is shown to the user (never a secret).
	Reason string
}

func (e *ConnectRequiredError) Error() string {
	return "no upstream authorization for server " + e.Server + ": " + e.Reason
}

// ExchangeRefusedError says the upstream's authorization server refused to exchange the
// caller's token (invalid_grant: it does not trust the token's issuer, or the token
// itself): retrying will not help, and connecting is not what the grant needs.
type ExchangeRefusedError struct {
	Server string
	// Reason is the authorization server's error, bounded and printable (never a token).
	Reason string
}

func (e *ExchangeRefusedError) Error() string {
	return "the authorization server of " + e.Server + " refused to exchange the caller's token: " + e.Reason
}

// UpstreamCaller is who a token is wanted for.
type UpstreamCaller struct {
	Issuer, Subject string
	// Token is the caller's own bearer token at the gateway: the subject token of a
	// token exchange, used for nothing else.
	Token string
}

type tokenKey struct{ issuer, subject, server string }

// cachedToken is the in-memory state of one (caller, server).
type cachedToken struct {
	header string // "Bearer …"
	origin string // the upstream origin it may be sent to
	// refreshAt: past it the token is refreshed first (zero: never).
	refreshAt time.Time
	// missing: no token; remembered until missingUntil.
	missing      bool
	missingUntil time.Time
	reason       string
	// refused: a token exchange was refused; remembered until missingUntil, so a
	// caller the authorization server does not trust is not sent there on every call.
	refused bool
}

type flight struct {
	done chan struct{}
	tok  *cachedToken
	err  error
}

type discoveryCache struct {
	mu  sync.Mutex
	ep  *upstreamoauth.Endpoints
	err error
	at  time.Time
}

// upstreamAuthState is the App's backend_auth oauth state.
type upstreamAuthState struct {
	clients map[string]*oauthClient // by server name; config servers only
	vault   VaultStore
	tokens  *Sealer // seals vault records
	links   *Sealer // seals connect links
	// registrations seals the gateway's dynamic client registrations.
	registrations *Sealer
	fetcher       *upstreamoauth.Fetcher
	logger        *zap.Logger
	now           func() time.Time

	// flowsPerUser and flowsTotal are the caps on pending connect flows.
	flowsPerUser, flowsTotal int

	mu      sync.RWMutex
	cache   map[tokenKey]*cachedToken
	flights map[tokenKey]*flight
}

// provisionUpstreamAuth builds the oauth clients of the config's servers and
// reconciles the vault with them: tokens of servers that no longer take per-user
// OAuth are removed.
func (a *App) provisionUpstreamAuth(declared []*model.Server) error {
	st := &a.upstreamAuth
	st.logger = a.logger.Named("upstream_oauth")
	st.now = time.Now
	st.clients = map[string]*oauthClient{}
	st.cache = map[tokenKey]*cachedToken{}
	st.flights = map[tokenKey]*flight{}
	st.flowsPerUser, st.flowsTotal = maxFlowsPerUser, maxFlowsTotal
	trusted := make(map[string]bool, len(a.trustedDials))
	for k := range a.trustedDials {
		trusted[k] = true
	}
	byName := map[string]*ServerConfig{}
	for _, c := range a.Servers {
		byName[c.Name] = c
	}
	perUser := map[string]bool{}
	dynamic := false
	for _, s := range declared {
		c := byName[s.Name]
		if s.BackendAuth.Scheme != model.BackendAuthOAuth {
			if c != nil && c.BackendOAuth != nil {
				return fmt.Errorf("server %q: backend_oauth needs backend_auth oauth", s.Name)
			}
			continue
		}
		if c == nil {
			continue
		}
		if c.BackendCredential != "" {
			return fmt.Errorf("server %q: backend_auth oauth takes no backend_credential", s.Name)
		}
		cl, err := provisionOAuthClient(s, c.BackendOAuth)
		if err != nil {
			return err
		}
		st.clients[s.Name] = cl
		if cl.grant == OAuthGrantAuthorizationCode {
			perUser[s.Name] = true
		}
		dynamic = dynamic || cl.registration == RegistrationDynamic
		// The operator named these: dials to them are the operator's choice, like
		// the config's upstreams. What metadata documents name is checked.
		for target := range upstream.TrustedTargets([]*model.Server{{Upstream: cl.issuer}, {Upstream: cl.tokenURL}}) {
			trusted[target] = true
		}
	}
	dial := upstream.Guard(a.RuntimeUpstreams, trusted, (&net.Dialer{Timeout: 5 * time.Second}).DialContext)
	st.fetcher = &upstreamoauth.Fetcher{
		HTTP: &http.Client{
			Transport: &http.Transport{
				DialContext:           dial,
				TLSHandshakeTimeout:   5 * time.Second,
				ResponseHeaderTimeout: 10 * time.Second,
				MaxIdleConnsPerHost:   4,
				IdleConnTimeout:       time.Minute,
			},
			CheckRedirect: upstreamoauth.NoRedirects,
			Timeout:       20 * time.Second,
		},
		CheckURL: func(ctx context.Context, raw string) error {
			for target := range upstream.TrustedTargets([]*model.Server{{Upstream: raw}}) {
				if trusted[target] {
					return nil
				}
			}
			return a.RuntimeUpstreams.Check(ctx, "url", raw, upstream.Resolve)
		},
	}
	st.vault = collectionVault{db: NewCollectionStore(a.store)}
	if len(perUser) > 0 {
		var err error
		if st.tokens, err = a.Sealer(vaultPurpose); err != nil {
			return fmt.Errorf("backend_auth oauth keeps each user's tokens sealed: %w", err)
		}
		if st.links, err = a.Sealer("upstream connect link"); err != nil {
			return err
		}
	}
	if dynamic {
		var err error
		if st.registrations, err = a.Sealer(registrationPurpose); err != nil {
			return fmt.Errorf("registration dynamic keeps the gateway's client secret sealed: %w", err)
		}
	}
	removed, err := st.vault.DeleteTokens(func(_ string, rec *VaultRecord) bool { return !perUser[rec.Server] })
	if err != nil {
		return fmt.Errorf("reconciling the upstream token vault: %w", err)
	}
	if len(removed) > 0 {
		st.logger.Info("removed the upstream tokens of servers without per-user OAuth", zap.Int("tokens", len(removed)))
	}
	return nil
}

// UpstreamGrant returns the grant of server's backend_auth oauth (OAuthGrant…), or ""
// when it has none.
func (a *App) UpstreamGrant(server string) string {
	if cl := a.upstreamAuth.clients[server]; cl != nil {
		return cl.grant
	}
	return ""
}

// UpstreamAuthorization returns the Authorization header value the gateway sends s's
// upstream for caller c: a *ConnectRequiredError when c has to connect first. Other
// errors are the authorization server's failures (retry later). The value is a secret:
// never log it or put it in an error.
func (a *App) UpstreamAuthorization(ctx context.Context, s *model.Server, c UpstreamCaller) (string, error) {
	st := &a.upstreamAuth
	cl := st.clients[s.Name]
	if cl == nil {
		return "", fmt.Errorf("server %q has no backend_auth oauth configuration", s.Name)
	}
	k := tokenKey{server: s.Name}
	if cl.grant != OAuthGrantClientCredentials {
		if c.Subject == "" {
			return "", &ConnectRequiredError{Server: s.Name, Reason: "the caller has no subject to keep a token for"}
		}
		k.issuer, k.subject = c.Issuer, c.Subject
	}
	now := st.now()
	st.mu.RLock()
	e := st.cache[k]
	st.mu.RUnlock()
	if v, err, ok := e.answer(s, now); ok {
		return v, err
	}
	e, err := st.fetch(ctx, k, func(ctx context.Context) (*cachedToken, error) { return st.obtain(ctx, cl, s, k, c) })
	if err != nil {
		return "", err
	}
	v, err, _ := e.answer(s, now)
	return v, err
}

// answer is what e says for s at now; ok is false when e must be fetched again.
func (e *cachedToken) answer(s *model.Server, now time.Time) (string, error, bool) {
	if e == nil {
		return "", nil, false
	}
	if e.missing || e.refused {
		if !now.Before(e.missingUntil) {
			return "", nil, false
		}
		if e.refused {
			return "", &ExchangeRefusedError{Server: s.Name, Reason: e.reason}, true
		}
		return "", &ConnectRequiredError{Server: s.Name, Reason: e.reason}, true
	}
	if !e.refreshAt.IsZero() && !now.Before(e.refreshAt) {
		return "", nil, false
	}
	if !sameOrigin(s.Upstream, e.origin) {
		return "", &ConnectRequiredError{Server: s.Name, Reason: "the server's upstream changed since you connected; connect again"}, true
	}
	return e.header, nil, true
}

// fetch runs get once for k however many callers want it at the same time, and caches
// what it returns.
func (st *upstreamAuthState) fetch(ctx context.Context, k tokenKey, get func(context.Context) (*cachedToken, error)) (*cachedToken, error) {
	st.mu.Lock()
	if f := st.flights[k]; f != nil {
		st.mu.Unlock()
		select {
		case <-f.done:
			return f.tok, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	st.flights[k] = f
	st.mu.Unlock()

	// The fetch outlives a caller that gives up: others may be waiting on it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	f.tok, f.err = get(fctx)
	cancel()

	st.mu.Lock()
	delete(st.flights, k)
	if f.err == nil {
		st.cache[k] = f.tok
	}
	st.mu.Unlock()
	close(f.done)
	return f.tok, f.err
}

// invalidate forgets what is cached for k.
func (st *upstreamAuthState) invalidate(k tokenKey) {
	st.mu.Lock()
	delete(st.cache, k)
	st.mu.Unlock()
}

func (st *upstreamAuthState) missing(k tokenKey, reason string) *cachedToken {
	return &cachedToken{missing: true, missingUntil: st.now().Add(missingTTL), reason: reason}
}

// obtain gets k's token from where its grant keeps it.
func (st *upstreamAuthState) obtain(ctx context.Context, cl *oauthClient, s *model.Server, k tokenKey, c UpstreamCaller) (*cachedToken, error) {
	switch cl.grant {
	case OAuthGrantClientCredentials:
		return st.machineToken(ctx, cl, s)
	case OAuthGrantTokenExchange:
		return st.exchangeToken(ctx, cl, s, c)
	}
	return st.userToken(ctx, cl, s, k, "")
}

// cached makes the cache entry of tok for s.
func (st *upstreamAuthState) cached(s *model.Server, access string, expiresAt time.Time) *cachedToken {
	e := &cachedToken{header: "Bearer " + access, origin: upstreamOrigin(s.Upstream)}
	if !expiresAt.IsZero() {
		e.refreshAt = expiresAt.Add(-skewFor(expiresAt.Sub(st.now())))
	}
	return e
}

// userToken reads k's token from the vault, refreshing it when it is about to expire,
// or when it is refusedHeader (the upstream refused it before its time).
func (st *upstreamAuthState) userToken(ctx context.Context, cl *oauthClient, s *model.Server, k tokenKey, refusedHeader string) (*cachedToken, error) {
	key := vaultKey(k.issuer, k.subject, k.server)
	rec, err := st.vault.GetToken(key)
	if errors.Is(err, model.ErrNotFound) {
		return st.missing(k, "you have not connected your account at "+s.Name+" yet"), nil
	}
	if err != nil {
		return nil, err
	}
	sec, err := st.open(key, rec)
	if err != nil {
		st.logger.Error("upstream token does not open; the user must connect again", zap.String("server", s.Name), zap.Error(err))
		return st.missing(k, "your stored connection cannot be read; connect again"), nil
	}
	if sec.Origin != upstreamOrigin(s.Upstream) {
		return st.missing(k, "the server's upstream changed since you connected; connect again"), nil
	}
	now := st.now()
	refused := refusedHeader != "" && refusedHeader == "Bearer "+sec.AccessToken
	if !refused && (rec.ExpiresAt.IsZero() || now.Before(rec.ExpiresAt.Add(-skewFor(rec.ExpiresAt.Sub(now))))) {
		return st.cached(s, sec.AccessToken, rec.ExpiresAt), nil
	}
	drop := func(reason string) (*cachedToken, error) {
		// Only the record read: another instance may have refreshed it meanwhile.
		if _, err := st.vault.DeleteTokens(func(kk string, r *VaultRecord) bool { return kk == key && bytes.Equal(r.Sealed, rec.Sealed) }); err != nil {
			return nil, err
		}
		st.logger.Info("upstream connection ended", zap.String("server", s.Name), zap.String("user", k.subject), zap.String("reason", reason))
		return st.missing(k, reason), nil
	}
	if sec.RefreshToken == "" {
		return drop("your access at " + s.Name + " expired; connect again")
	}
	ep, err := cl.endpoints(ctx, st.fetcher)
	if err != nil {
		return nil, err
	}
	if ep.Issuer != sec.AuthServer {
		return drop("the server's authorization server changed; connect again")
	}
	auth := cl.auth
	switch cl.registration {
	case RegistrationCIMD:
		auth = upstreamoauth.ClientAuth{ClientID: sec.ClientID, Method: "none"}
	case RegistrationDynamic:
		reg, err := st.registration(ctx, cl, ep, "", false)
		if err != nil {
			return nil, err
		}
		if auth = reg.Auth(); auth.ClientID != sec.ClientID {
			return drop("the gateway's registration at " + s.Name + "'s authorization server changed; connect again")
		}
	}
	tok, err := st.fetcher.Token(ctx, ep, auth, url.Values{
		"grant_type":    {upstreamoauth.GrantRefreshToken},
		"refresh_token": {sec.RefreshToken},
		"resource":      {cl.resource},
	})
	if upstreamoauth.InvalidGrant(err) {
		return drop("your authorization at " + s.Name + " was revoked or expired; connect again")
	}
	if err != nil {
		st.logger.Warn("refreshing an upstream token failed", zap.String("server", s.Name), zap.String("user", k.subject), zap.Error(err))
		return nil, fmt.Errorf("refreshing your token at %s: %w", s.Name, err)
	}
	if err := upstreamoauth.CheckAudience(tok.AccessToken, cl.resource); err != nil {
		st.logger.Warn("refused a refreshed upstream token", zap.String("server", s.Name), zap.String("user", k.subject), zap.Error(err))
		return drop("the authorization server answered with a token for another audience; connect again")
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = sec.RefreshToken
	}
	next := *rec
	next.RefreshedAt, next.ExpiresAt = now, tok.ExpiresAt
	if tok.Scope != "" {
		next.Scope = tok.Scope
	}
	if err := st.seal(key, &next, vaultSecret{Origin: sec.Origin, AuthServer: sec.AuthServer, ClientID: sec.ClientID, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}); err != nil {
		return nil, err
	}
	if err := st.vault.PutToken(key, &next); err != nil {
		return nil, err
	}
	st.logger.Debug("refreshed an upstream token", zap.String("server", s.Name), zap.String("user", k.subject))
	return st.cached(s, tok.AccessToken, tok.ExpiresAt), nil
}

// machineToken gets the gateway's own token (client credentials).
func (st *upstreamAuthState) machineToken(ctx context.Context, cl *oauthClient, s *model.Server) (*cachedToken, error) {
	ep, err := cl.endpoints(ctx, st.fetcher)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {upstreamoauth.GrantClientCredentials}, "resource": {cl.resource}}
	if len(cl.scopes) > 0 {
		form.Set("scope", strings.Join(cl.scopes, " "))
	}
	tok, err := st.fetcher.Token(ctx, ep, cl.auth, form)
	if err == nil {
		err = upstreamoauth.CheckAudience(tok.AccessToken, cl.resource)
	}
	if err != nil {
		st.logger.Warn("client credentials for an upstream failed", zap.String("server", s.Name), zap.Error(err))
		return nil, fmt.Errorf("obtaining the gateway's token for %s: %w", s.Name, err)
	}
	return st.cached(s, tok.AccessToken, tok.ExpiresAt), nil
}

// exchangeToken trades the caller's own token for one whose audience is the upstream
// (RFC 8693, or Entra's on-behalf-of); kept in memory only, until it expires.
func (st *upstreamAuthState) exchangeToken(ctx context.Context, cl *oauthClient, s *model.Server, c UpstreamCaller) (*cachedToken, error) {
	if c.Token == "" {
		return nil, fmt.Errorf("token exchange for %s needs the caller's bearer token", s.Name)
	}
	ep, err := cl.endpoints(ctx, st.fetcher)
	if err != nil {
		return nil, err
	}
	form := url.Values{}
	switch cl.profile {
	case TokenExchangeEntraOBO:
		form.Set("grant_type", upstreamoauth.GrantJWTBearer)
		form.Set("assertion", c.Token)
		form.Set("requested_token_use", "on_behalf_of")
	default:
		form.Set("grant_type", upstreamoauth.GrantTokenExchange)
		form.Set("subject_token", c.Token)
		form.Set("subject_token_type", upstreamoauth.TokenTypeAccessToken)
		form.Set("requested_token_type", upstreamoauth.TokenTypeAccessToken)
		form.Set("resource", cl.resource)
		if cl.audience != "" {
			form.Set("audience", cl.audience)
		}
	}
	if len(cl.scopes) > 0 {
		form.Set("scope", strings.Join(cl.scopes, " "))
	}
	tok, err := st.fetcher.Token(ctx, ep, cl.auth, form)
	if err == nil && cl.profile != TokenExchangeEntraOBO {
		err = upstreamoauth.CheckAudience(tok.AccessToken, cl.resource)
	}
	if upstreamoauth.InvalidGrant(err) {
		st.logger.Warn("token exchange for an upstream refused", zap.String("server", s.Name), zap.String("user", c.Subject), zap.Error(err))
		return &cachedToken{refused: true, missingUntil: st.now().Add(missingTTL), reason: err.Error()}, nil
	}
	if err != nil {
		st.logger.Warn("token exchange for an upstream failed", zap.String("server", s.Name), zap.String("user", c.Subject), zap.Error(err))
		return nil, fmt.Errorf("exchanging your token for %s: %w", s.Name, err)
	}
	return st.cached(s, tok.AccessToken, tok.ExpiresAt), nil
}

// endpoints are cl's authorization server's endpoints, discovered once per config
// (a failure is retried after discoveryRetry). The lock is not held across I/O.
func (cl *oauthClient) endpoints(ctx context.Context, f *upstreamoauth.Fetcher) (*upstreamoauth.Endpoints, error) {
	d := &cl.discovered
	d.mu.Lock()
	ep, err, at := d.ep, d.err, d.at
	d.mu.Unlock()
	if ep != nil {
		return ep, nil
	}
	if err != nil && time.Since(at) < discoveryRetry {
		return nil, err
	}
	if cl.tokenURL != "" && cl.grant != OAuthGrantAuthorizationCode {
		ep = &upstreamoauth.Endpoints{Issuer: cl.issuer, TokenEndpoint: cl.tokenURL}
	} else {
		ep, err = f.Discover(ctx, cl.resource, cl.issuer)
		if err == nil && cl.tokenURL != "" {
			ep.TokenEndpoint = cl.tokenURL
		}
	}
	if err != nil {
		err = fmt.Errorf("discovering the authorization server of %s: %w", cl.server, err)
	}
	d.mu.Lock()
	d.ep, d.err, d.at = ep, err, time.Now()
	d.mu.Unlock()
	return ep, err
}

func (st *upstreamAuthState) seal(key string, rec *VaultRecord, sec vaultSecret) error {
	plain, err := json.Marshal(sec)
	if err != nil {
		return err
	}
	rec.Sealed, err = st.tokens.Seal(key, plain)
	clear(plain)
	return err
}

func (st *upstreamAuthState) open(key string, rec *VaultRecord) (*vaultSecret, error) {
	plain, err := st.tokens.Open(key, rec.Sealed)
	if err != nil {
		return nil, err
	}
	sec := new(vaultSecret)
	err = json.Unmarshal(plain, sec)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("%s %q is corrupt", vaultPurpose, key)
	}
	return sec, nil
}

// ForgetUpstreamToken forgets c's token for server, which the upstream refused (401):
// a per-user connection is removed from the vault (the grant was revoked at the
// upstream, so the user connects again); a machine or exchanged token is dropped from
// memory and fetched again on the next request.
func (a *App) ForgetUpstreamToken(server string, c UpstreamCaller) {
	st := &a.upstreamAuth
	cl := st.clients[server]
	if cl == nil {
		return
	}
	k := tokenKey{server: server}
	if cl.grant != OAuthGrantClientCredentials {
		k.issuer, k.subject = c.Issuer, c.Subject
	}
	if cl.grant == OAuthGrantAuthorizationCode && c.Subject != "" {
		key := vaultKey(c.Issuer, c.Subject, server)
		if _, err := st.vault.DeleteTokens(func(kk string, _ *VaultRecord) bool { return kk == key }); err != nil {
			st.logger.Error("removing a refused upstream token", zap.String("server", server), zap.Error(err))
		}
		st.mu.Lock()
		st.cache[k] = st.missing(k, "your authorization at "+server+" was revoked or has expired; connect again")
		st.mu.Unlock()
		return
	}
	st.invalidate(k)
}

// RefreshRefusedToken is asked when the upstream answered 401 to the caller's stored
// token refusedHeader (the Authorization value sent) although the token had not
// expired: the upstream may have revoked the access token alone, or rotated its
// keys. When the connection holds a refresh token, it is refreshed now, once however
// many requests were refused together, and true returned: the request may be sent
// once more. False otherwise (and when the refresh fails): the caller forgets the
// connection as refused.
func (a *App) RefreshRefusedToken(ctx context.Context, s *model.Server, c UpstreamCaller, refusedHeader string) bool {
	st := &a.upstreamAuth
	cl := st.clients[s.Name]
	if cl == nil || cl.grant != OAuthGrantAuthorizationCode || c.Subject == "" || refusedHeader == "" {
		return false
	}
	k := tokenKey{issuer: c.Issuer, subject: c.Subject, server: s.Name}
	st.mu.Lock()
	if e := st.cache[k]; e != nil && e.header == refusedHeader {
		delete(st.cache, k)
	}
	st.mu.Unlock()
	e, err := st.fetch(ctx, k, func(ctx context.Context) (*cachedToken, error) {
		return st.userToken(ctx, cl, s, k, refusedHeader)
	})
	if err != nil || e == nil || e.missing || e.header == refusedHeader {
		return false
	}
	st.logger.Info("refreshed an upstream token the upstream refused", zap.String("server", s.Name), zap.String("user", c.Subject))
	return true
}

// connectLink is what a connect link carries, sealed.
type connectLink struct {
	Issuer  string `json:"i"`
	Subject string `json:"s"`
	Expires int64  `json:"e"`
	ID      string `json:"n"`
}

// NewConnectLink returns the sealed value of a connect link for caller (iss, sub) and
// server, valid connectLinkTTL, and its id (the elicitation id).
func (a *App) NewConnectLink(server, issuer, subject string) (link, id string, err error) {
	st := &a.upstreamAuth
	if st.links == nil || st.clients[server] == nil || st.clients[server].grant != OAuthGrantAuthorizationCode {
		return "", "", fmt.Errorf("server %q takes no per-user connection", server)
	}
	id = upstreamoauth.RandomString(16)
	plain, err := json.Marshal(connectLink{Issuer: issuer, Subject: subject, Expires: st.now().Add(connectLinkTTL).Unix(), ID: id})
	if err != nil {
		return "", "", err
	}
	sealed, err := st.links.Seal(server, plain)
	if err != nil {
		return "", "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), id, nil
}

// OpenConnectLink returns the caller a connect link for server was made for; an error
// when it is forged, made for another server, or expired.
func (a *App) OpenConnectLink(server, link string) (issuer, subject string, err error) {
	st := &a.upstreamAuth
	if st.links == nil || len(link) > 2048 {
		return "", "", errors.New("this connect link is not valid")
	}
	raw, err := base64.RawURLEncoding.DecodeString(link)
	if err != nil {
		return "", "", errors.New("this connect link is not valid")
	}
	plain, err := st.links.Open(server, raw)
	if err != nil {
		return "", "", errors.New("this connect link is not valid (made for another server, or altered)")
	}
	var l connectLink
	if err := json.Unmarshal(plain, &l); err != nil {
		return "", "", errors.New("this connect link is not valid")
	}
	if st.now().Unix() > l.Expires {
		return "", "", errors.New("this connect link has expired; call the tool again for a new one")
	}
	return l.Issuer, l.Subject, nil
}

// BeginConnect starts a connection of (issuer, subject) to server: it stores the flow
// (single-use, connectFlowTTL) bound to the browser's nonce and returns the
// authorization URL to send the browser to. redirectURI is the gateway's callback as
// the request derived it; a configured redirect_uri wins.
func (a *App) BeginConnect(ctx context.Context, server, issuer, subject, redirectURI, browserNonce string) (string, error) {
	st := &a.upstreamAuth
	cl := st.clients[server]
	if cl == nil || cl.grant != OAuthGrantAuthorizationCode {
		return "", fmt.Errorf("server %q takes no per-user connection", server)
	}
	ep, err := cl.endpoints(ctx, st.fetcher)
	if err != nil {
		st.logger.Warn("connect refused: authorization server discovery failed", zap.String("server", server), zap.Error(err))
		return "", err
	}
	if cl.redirect != "" {
		redirectURI = cl.redirect
	}
	auth, err := st.clientAuth(ctx, cl, ep, redirectURI, true)
	if err != nil {
		st.logger.Warn("connect refused: no client registration", zap.String("server", server), zap.Error(err))
		return "", err
	}
	state := upstreamoauth.RandomString(32)
	verifier, challenge := upstreamoauth.PKCE()
	sum := sha256.Sum256([]byte(browserNonce))
	f := &ConnectFlow{
		Server: server, Issuer: issuer, Subject: subject,
		Verifier: verifier, RedirectURI: redirectURI, AuthServer: ep.Issuer, ClientID: auth.ClientID,
		Browser: hex.EncodeToString(sum[:]), ExpiresAt: st.now().Add(connectFlowTTL),
	}
	authURL, err := upstreamoauth.AuthorizeURL(ep, upstreamoauth.AuthorizeRequest{
		ClientID: auth.ClientID, RedirectURI: redirectURI, State: state,
		CodeChallenge: challenge, Resource: cl.resource, Scopes: cl.scopes,
	})
	if err != nil {
		return "", err
	}
	if err := st.vault.PutFlow(flowKey(state), f, st.now(), st.flowsPerUser, st.flowsTotal); err != nil {
		var tm *TooManyFlowsError
		if errors.As(err, &tm) {
			st.logger.Warn("connect refused: too many pending connections", zap.String("server", server), zap.String("user", subject), zap.Bool("per_user", tm.PerUser))
		}
		return "", err
	}
	return authURL, nil
}

// TakeConnectFlow returns and deletes server's flow of state: a state is honoured
// once. The caller checks the browser binding (BrowserMatches) and the signed-in user.
func (a *App) TakeConnectFlow(server, state string) (*ConnectFlow, error) {
	st := &a.upstreamAuth
	if state == "" || len(state) > 512 {
		return nil, errors.New("the callback carries no valid state")
	}
	f, err := st.vault.TakeFlow(flowKey(state))
	if errors.Is(err, model.ErrNotFound) {
		return nil, errors.New("this connection was already completed, or never started here (unknown state)")
	}
	if err != nil {
		return nil, err
	}
	if f.Server != server {
		return nil, errors.New("this callback belongs to another server's connection")
	}
	if st.now().After(f.ExpiresAt) {
		return nil, errors.New("this connection took too long; start again")
	}
	return f, nil
}

// BrowserMatches reports whether nonce (from the browser's flow cookie) is the one f
// was started with.
func (f *ConnectFlow) BrowserMatches(nonce string) bool {
	if nonce == "" {
		return false
	}
	sum := sha256.Sum256([]byte(nonce))
	return hex.EncodeToString(sum[:]) == f.Browser
}

// FinishConnect redeems the authorization code of flow f and stores the tokens in the
// vault. issParam is the authorization response's iss (RFC 9207), "" when absent.
// Nothing is stored when anything is wrong.
func (a *App) FinishConnect(ctx context.Context, f *ConnectFlow, code, issParam string) error {
	st := &a.upstreamAuth
	cl := st.clients[f.Server]
	if cl == nil || cl.grant != OAuthGrantAuthorizationCode {
		return fmt.Errorf("server %q takes no per-user connection", f.Server)
	}
	s := a.Server(f.Server)
	if s == nil {
		return fmt.Errorf("server %q is gone", f.Server)
	}
	ep, err := cl.endpoints(ctx, st.fetcher)
	if err != nil {
		return err
	}
	if ep.Issuer != f.AuthServer {
		return errors.New("the server's authorization server changed during the connection; start again")
	}
	switch {
	case issParam != "" && issParam != ep.Issuer:
		return fmt.Errorf("the authorization response comes from issuer %q, not %q (mix-up)", issParam, ep.Issuer)
	case issParam == "" && ep.IssParameter:
		return errors.New("the authorization response lacks the iss parameter its server promises (RFC 9207)")
	}
	if code == "" || len(code) > 4096 {
		return errors.New("the callback carries no valid code")
	}
	auth, err := st.clientAuth(ctx, cl, ep, f.RedirectURI, false)
	if err != nil {
		return err
	}
	if f.ClientID != "" && auth.ClientID != f.ClientID {
		return errors.New("the gateway's registration at the authorization server changed during the connection; start again")
	}
	tok, err := st.fetcher.Token(ctx, ep, auth, url.Values{
		"grant_type":    {upstreamoauth.GrantAuthorizationCode},
		"code":          {code},
		"redirect_uri":  {f.RedirectURI},
		"code_verifier": {f.Verifier},
		"resource":      {cl.resource},
	})
	if err != nil {
		return fmt.Errorf("redeeming the authorization code: %w", err)
	}
	if err := upstreamoauth.CheckAudience(tok.AccessToken, cl.resource); err != nil {
		return err
	}
	now := st.now()
	key := vaultKey(f.Issuer, f.Subject, f.Server)
	rec := &VaultRecord{Server: f.Server, Issuer: f.Issuer, Subject: f.Subject, Scope: tok.Scope, ConnectedAt: now, ExpiresAt: tok.ExpiresAt}
	if err := st.seal(key, rec, vaultSecret{Origin: upstreamOrigin(s.Upstream), AuthServer: ep.Issuer, ClientID: auth.ClientID, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}); err != nil {
		return err
	}
	if err := st.vault.PutToken(key, rec); err != nil {
		return err
	}
	st.invalidate(tokenKey{f.Issuer, f.Subject, f.Server})
	st.logger.Info("upstream account connected", zap.String("server", f.Server), zap.String("user", f.Subject))
	return nil
}

// UpstreamConnection is one stored connection as listed: no secret.
type UpstreamConnection struct {
	Server      string    `json:"server"`
	Issuer      string    `json:"issuer"`
	Subject     string    `json:"subject"`
	Scope       string    `json:"scope,omitempty"`
	ConnectedAt time.Time `json:"connected_at"`
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

func listed(recs []VaultRecord) []UpstreamConnection {
	out := make([]UpstreamConnection, 0, len(recs))
	for _, r := range recs {
		out = append(out, UpstreamConnection{Server: r.Server, Issuer: r.Issuer, Subject: r.Subject, Scope: r.Scope,
			ConnectedAt: r.ConnectedAt, RefreshedAt: r.RefreshedAt, ExpiresAt: r.ExpiresAt})
	}
	return out
}

// UpstreamConnections lists the connections of (issuer, subject); every user's when
// both are "".
func (a *App) UpstreamConnections(issuer, subject string) ([]UpstreamConnection, error) {
	all := issuer == "" && subject == ""
	uk := vaultUserKey(issuer, subject)
	recs, err := a.upstreamAuth.vault.ListTokens(func(k string, r *VaultRecord) bool {
		return all || (userOfKey(k, uk) && r.Issuer == issuer && r.Subject == subject)
	})
	return listed(recs), err
}

// DisconnectUpstream removes (issuer, subject)'s tokens: for server, or for every
// server when server is "". It returns what it removed. The gateway stops sending them
// at once on this instance (other instances within missingTTL at most for new
// requests, as soon as their cached access token expires otherwise).
func (a *App) DisconnectUpstream(issuer, subject, server string) ([]UpstreamConnection, error) {
	st := &a.upstreamAuth
	uk := vaultUserKey(issuer, subject)
	recs, err := st.vault.DeleteTokens(func(k string, r *VaultRecord) bool {
		return userOfKey(k, uk) && r.Issuer == issuer && r.Subject == subject && (server == "" || r.Server == server)
	})
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		st.invalidate(tokenKey{r.Issuer, r.Subject, r.Server})
		st.logger.Info("upstream account disconnected", zap.String("server", r.Server), zap.String("user", r.Subject))
	}
	return listed(recs), nil
}

// RemoveLocalUserConnections removes the connections of the local user subject (a
// user of this config's built-in authorization server, at any of its issuers): called
// when that user is removed.
func (a *App) RemoveLocalUserConnections(subject string) (int, error) {
	st := &a.upstreamAuth
	if st.vault == nil {
		return 0, nil
	}
	recs, err := st.vault.DeleteTokens(func(_ string, r *VaultRecord) bool {
		_, local := a.localIssuers.SignIn(r.Issuer)
		return r.Subject == subject && local
	})
	for _, r := range recs {
		st.invalidate(tokenKey{r.Issuer, r.Subject, r.Server})
	}
	if len(recs) > 0 {
		st.logger.Info("removed a deleted user's upstream connections", zap.String("user", subject), zap.Int("connections", len(recs)))
	}
	return len(recs), err
}

// PruneLocalUserConnections removes the upstream connections of issuer's users for
// whom exists is false: users removed from the config while the gateway was down, or
// between two configs, take their upstream access with them as users removed through
// the admin API do. exists must not call into the registry's store.
func (a *App) PruneLocalUserConnections(issuer string, exists func(subject string) bool) (int, error) {
	st := &a.upstreamAuth
	if st.vault == nil {
		return 0, nil
	}
	recs, err := st.vault.DeleteTokens(func(_ string, r *VaultRecord) bool {
		return r.Issuer == issuer && !exists(r.Subject)
	})
	for _, r := range recs {
		st.invalidate(tokenKey{r.Issuer, r.Subject, r.Server})
	}
	if len(recs) > 0 {
		st.logger.Info("removed the upstream connections of users who no longer exist", zap.String("issuer", issuer), zap.Int("connections", len(recs)))
	}
	return len(recs), err
}
