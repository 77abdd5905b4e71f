// Package oauthserver is the built-in OAuth 2.1 authorization server of the gateway: the
// mcp_oauth_server HTTP handler. It publishes RFC 8414 metadata (and its OpenID discovery
// twin) at the issuer's well-known paths and serves the authorize, token (authorization
// code with PKCE S256, refresh with rotation, client credentials), register (RFC 7591),
// revoke (RFC 7009) and jwks endpoints under the issuer's path.
//
// Clients are pre-registered in the config, registered dynamically, or identified by the
// URL of their metadata document (CIMD). Users sign in on a plain server-rendered page
// against local users (config or store) and approve each client once per resource.
// Access tokens are RFC 9068 JWTs signed with ES256 keys the server generates, keeps
// sealed in its Store and rotates with an overlap.
//
// State lives behind the Store interface, kept in the mcp_registry app's store
// (Collections "oauth.*"): registrations, codes, refresh-token families, consents,
// store-held users, throttling records and the sealed signing keys survive restarts,
// travel with the registry's backups, and are shared by instances sharing the store.
package oauthserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/oauthserver/federation"
)

func init() {
	caddy.RegisterModule(new(Server))
}

// Server is the mcp_oauth_server handler. Requests for its metadata and endpoints are
// answered; every other request goes to the next handler.
type Server struct {
	// Issuer is the issuer identifier, exactly as clients and tokens name it, e.g.
	// https://mcp.example.com/oauth. https is required except on loopback hosts. The
	// endpoints are served under its path (<issuer>/authorize, /token, /register,
	// /revoke, /jwks) and its metadata at the RFC 8414 well-known paths. Required.
	Issuer string `json:"issuer,omitempty"`

	// Resource is the gateway's resource identifier (RFC 8707), e.g.
	// https://mcp.example.com. Clients may ask for it or for any URL under it (the exact
	// MCP URL); the token's aud is what they asked for. Requests without resource get
	// this one. Default: the issuer's origin.
	Resource string `json:"resource,omitempty"`

	// Clients are pre-registered clients.
	Clients []ClientConfig `json:"clients,omitempty"`

	// Users are local users who may sign in, besides those held in the store.
	Users []UserConfig `json:"users,omitempty"`

	// FirstUser is created in the store when the server starts and finds no user at
	// all (none configured, none stored): the first administrator of a new
	// installation, who then adds the others.
	FirstUser *FirstUserConfig `json:"first_user,omitempty"`

	// ScopesSupported, when set, lists the scopes clients may request (advertised in
	// the metadata); other scopes are refused with invalid_scope. Unset: any scope.
	ScopesSupported []string `json:"scopes_supported,omitempty"`

	// AccessTokenLifetime is how long an access token is valid. Default 1h, at most
	// 24h.
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`

	// RefreshTokenLifetime is how long a refresh token is valid; each use issues a new
	// one for this long. Default 30d.
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`

	// PersonalTokenMaxLifetime caps the lifetime of personal gateway tokens (minted on
	// the admin endpoint for clients that cannot do OAuth): a longer-lived one is not
	// honoured. Default 90d.
	PersonalTokenMaxLifetime caddy.Duration `json:"personal_token_max_lifetime,omitempty"`

	// KeyRotation is how long one signing key signs tokens. The next key is published
	// in the JWKS ahead of its use, and a retired key stays published until the tokens
	// it signed have expired. Default 30d.
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`

	// SigningKeyEncryptionKey seals the signing keys in the store (AES-256-GCM): 32
	// bytes in hex or base64, normally from {env.*} or {file.*}. Default: the
	// mcp_registry app's encryption_key (and its previous_encryption_keys), so the keys
	// rotate with it. One of the two is required: signing keys are never stored in the
	// clear. Changing this key makes the stored signing keys unreadable: the config is
	// refused until it is restored or those keys are deleted.
	SigningKeyEncryptionKey string `json:"signing_key_encryption_key,omitempty"`

	// DisableRegistration turns dynamic client registration (RFC 7591) off.
	DisableRegistration bool `json:"disable_registration,omitempty"`

	// RegistrationRate bounds dynamic registrations per client IP per minute. Default 10.
	RegistrationRate int `json:"registration_rate,omitempty"`

	// DisableCIMD turns client ID metadata documents off: client_ids that are https
	// URLs are then unknown.
	DisableCIMD bool `json:"disable_cimd,omitempty"`

	// CIMDAllow lists networks (CIDR) a client metadata document may be fetched from
	// although they are private, loopback or link-local. Default: none.
	CIMDAllow []string `json:"cimd_allow,omitempty"`

	// IdentityProviders are OpenID providers users sign in with (the company's IdP),
	// each a button on the sign-in pages. Their users are recorded in the store on
	// their first sign-in, with the groups the provider gives them.
	IdentityProviders []federation.Provider `json:"identity_providers,omitempty"`

	// DisablePasswordSignIn hides the password form: users sign in only through the
	// identity providers (at least one is then required).
	DisablePasswordSignIn bool `json:"disable_password_sign_in,omitempty"`

	store   Store
	sealer  Sealer
	keys    *keyRing
	cimd    *cimdFetcher
	dcrRate *rateLimiter
	// revocations is this instance's copy of the access-token revocation list.
	revocations revocations
	logger      *zap.Logger
	now         func() time.Time

	issuerURL  *url.URL
	issuerPath string // issuer path without trailing slash; "" at the root
	clients    map[string]Client
	clientKeys map[string]jwk.Set // private_key_jwt clients' public keys
	users      map[string]User
	dummyHash  []byte
	metadata   []byte
	metaPaths  map[string]bool
	// withdraw removes this server from the registry's local issuers (Cleanup).
	withdraw func()
	// idps are the identity providers by name; idpOrder as configured.
	idps     map[string]*federation.Client
	idpOrder []*federation.Client
}

// ClientConfig is a pre-registered client.
type ClientConfig struct {
	// ID is the client_id.
	ID string `json:"id"`
	// Secret makes the client confidential: a bcrypt hash of its secret, or the secret
	// itself through a placeholder ({env.*}, {file.*}). Absent: a public client (PKCE).
	Secret string `json:"secret,omitempty"`
	// JWKS makes the client confidential with private_key_jwt (RFC 7523): its public
	// keys, as a JWK Set or one JWK in JSON, normally from {file.*}. The client signs a
	// short-lived assertion (RS*, PS*, ES*, EdDSA; at most 5 minutes, each jti once) for
	// every token request. Not together with Secret.
	JWKS string `json:"jwks,omitempty"`
	// RedirectURIs are the allowed redirect URIs, matched exactly (loopback ones on any
	// port). Absent: any loopback redirect URI (a native client on a random port).
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// Name is shown on the consent page. Default: the ID.
	Name string `json:"name,omitempty"`
	// Groups are the groups of tokens the client obtains for itself with the
	// client_credentials grant (confidential clients, with a secret or keys). Absent:
	// the grant is refused.
	Groups []string `json:"groups,omitempty"`
}

// UserConfig is a local user.
type UserConfig struct {
	// Name is the user name typed on the login page; it becomes the token's sub.
	Name string `json:"name"`
	// PasswordHash is a bcrypt hash of the password.
	PasswordHash string `json:"password_hash"`
	// Groups are the user's groups, carried in tokens' groups claim.
	Groups []string `json:"groups,omitempty"`
}

// FirstUserConfig is the user made on a first start.
type FirstUserConfig struct {
	// Name is the user name. Default admin.
	Name string `json:"name,omitempty"`
	// Groups are the user's groups: those the policy grants everything to.
	Groups []string `json:"groups,omitempty"`
	// Password is the initial password, normally a placeholder such as
	// {env.MCP_ADMIN_PASSWORD}. Empty, or resolving to nothing: a random password,
	// written once to the log (at warn level) when the user is created.
	Password string `json:"password,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*Server) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_oauth_server",
		New: func() caddy.Module { return new(Server) },
	}
}

const (
	codeLifetime            = 60 * time.Second
	authRequestLifetime     = 10 * time.Minute
	sessionLifetime         = time.Hour
	defaultAccessLifetime   = time.Hour
	defaultRefreshLifetime  = 30 * 24 * time.Hour
	defaultKeyRotation      = 30 * 24 * time.Hour
	defaultRegistrationRate = 10
)

// sealerPurpose labels the registry sealer of the signing keys.
const sealerPurpose = "mcp_oauth_server signing key"

// Provision sets defaults, resolves secrets and prepares keys and clients. State goes to
// the mcp_registry app's store, whose expired records are purged every sweepInterval
// until the config is unloaded.
func (s *Server) Provision(ctx caddy.Context) error {
	app, err := ctx.App("mcp_registry")
	if err != nil {
		return fmt.Errorf("loading the mcp_registry app for the authorization server's state: %v", err)
	}
	reg, ok := app.(*mcpregistry.App)
	if !ok {
		return fmt.Errorf("mcp_registry app is a %T", app)
	}
	db, err := reg.CollectionStore()
	if err != nil {
		return err
	}
	var sealer Sealer
	if s.SigningKeyEncryptionKey == "" {
		regSealer, err := reg.Sealer(sealerPurpose)
		if errors.Is(err, mcpregistry.ErrNoEncryptionKey) {
			return errors.New("signing keys are stored only encrypted: set encryption_key in mcp_registry " +
				"or signing_key_encryption_key in mcp_oauth_server (32 bytes, e.g. {env.MCP_REGISTRY_KEY}; generate one with: openssl rand -base64 32)")
		}
		if err != nil {
			return err
		}
		sealer = regSealer
	}
	st := newRegistryStore(db)
	if err := s.provision(ctx, ctx.Logger(), st, sealer, nil); err != nil {
		return err
	}
	go st.sweepEvery(ctx, sweepInterval, s.logger)
	// Trusted by this config's gateway and registry API with no line of theirs: the
	// registry app is the config's shared state, and they look issuers up there when
	// a token arrives (so provisioning order does not matter).
	if err := s.pruneConnections(ctx, reg); err != nil {
		return err
	}
	withdrawKeys := reg.LocalIssuers().Set(s.Issuer, s.keys.jwksJSON)
	withdrawTokens := reg.LocalIssuers().SetOpaque(personalTokenPrefix, s.resolvePersonalToken)
	withdrawSignIn := reg.LocalIssuers().SetSignIn(s.Issuer, s)
	withdrawRevocations := reg.LocalIssuers().SetRevocations(s.Issuer, s.revocations.revoked)
	s.withdraw = func() { withdrawKeys(); withdrawTokens(); withdrawSignIn(); withdrawRevocations() }
	return nil
}

// pruneConnections removes the upstream connections (backend_auth oauth) of users of
// this issuer who exist no more: those removed from the config since they connected.
func (s *Server) pruneConnections(ctx context.Context, reg *mcpregistry.App) error {
	stored, err := s.store.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("listing users: %v", err)
	}
	names := make(map[string]bool, len(s.users)+len(stored))
	for name := range s.users {
		names[name] = true
	}
	for _, u := range stored {
		names[u.Name] = true
	}
	_, err = reg.PruneLocalUserConnections(s.Issuer, func(sub string) bool { return names[sub] })
	return err
}

// Cleanup withdraws the server from the issuers this config trusts.
func (s *Server) Cleanup() error {
	if s.withdraw != nil {
		s.withdraw()
	}
	return nil
}

// provision does the work of Provision; tests pass their own store and CIMD roots. A nil
// store is a MemoryStore, which alone may go without a sealer (a random per-process
// key: its keys die with it anyway); signing_key_encryption_key overrides sealer.
func (s *Server) provision(ctx context.Context, logger *zap.Logger, store Store, sealer Sealer, cimdRoots *cimdTLS) error {
	s.logger = logger
	if s.now == nil {
		s.now = time.Now
	}
	repl := caddy.NewReplacer()
	s.Issuer = repl.ReplaceKnown(s.Issuer, "")
	s.Resource = strings.TrimRight(repl.ReplaceKnown(s.Resource, ""), "/")
	if s.AccessTokenLifetime == 0 {
		s.AccessTokenLifetime = caddy.Duration(defaultAccessLifetime)
	}
	if s.RefreshTokenLifetime == 0 {
		s.RefreshTokenLifetime = caddy.Duration(defaultRefreshLifetime)
	}
	if s.PersonalTokenMaxLifetime == 0 {
		s.PersonalTokenMaxLifetime = caddy.Duration(defaultPersonalTokenMaxLifetime)
	}
	if s.KeyRotation == 0 {
		s.KeyRotation = caddy.Duration(defaultKeyRotation)
	}
	if s.RegistrationRate == 0 {
		s.RegistrationRate = defaultRegistrationRate
	}
	iu, err := parseIssuer(s.Issuer)
	if err != nil {
		return fmt.Errorf("issuer: %v", err)
	}
	s.issuerURL = iu
	s.issuerPath = iu.Path
	if s.Resource == "" {
		s.Resource = iu.Scheme + "://" + iu.Host
	}
	if _, err := parseResource(s.Resource); err != nil {
		return fmt.Errorf("resource: %v", err)
	}

	if s.SigningKeyEncryptionKey != "" {
		key, err := parseKey32(repl.ReplaceKnown(s.SigningKeyEncryptionKey, ""))
		if err != nil {
			return fmt.Errorf("signing_key_encryption_key: %v", err)
		}
		if s.sealer, err = NewAESGCMSealer(key); err != nil {
			return err
		}
	} else if sealer != nil {
		s.sealer = sealer
	} else if store == nil {
		key := make([]byte, 32)
		rand.Read(key)
		s.sealer, _ = NewAESGCMSealer(key)
	} else {
		return errors.New("a persistent store needs a sealer for the signing keys")
	}
	if store == nil {
		store = NewMemoryStore()
	}
	s.store = store

	if s.clients, err = s.configuredClients(repl); err != nil {
		return err
	}
	s.users = make(map[string]User, len(s.Users))
	for _, u := range s.Users {
		if _, dup := s.users[u.Name]; dup {
			return fmt.Errorf("user %q configured twice", u.Name)
		}
		if err := validUserName(u.Name); err != nil {
			return err
		}
		hash := repl.ReplaceKnown(u.PasswordHash, "")
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("user %q: password hash is not a bcrypt hash", u.Name)
		}
		s.users[u.Name] = User{Name: u.Name, PasswordHash: hash, Groups: u.Groups}
	}
	if err := s.provisionIdentityProviders(ctx, repl); err != nil {
		return err
	}
	if err := s.createFirstUser(ctx, repl); err != nil {
		return err
	}
	// Unknown users are checked against this hash so that they cost what a real user costs.
	s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte(rand.Text()), bcrypt.DefaultCost)

	nets, err := parseCIDRs(s.CIMDAllow)
	if err != nil {
		return fmt.Errorf("cimd_allow: %v", err)
	}
	s.cimd = newCIMDFetcher(nets, cimdRoots)
	s.dcrRate = newRateLimiter(s.RegistrationRate, time.Minute)

	s.keys = &keyRing{
		store:    s.store,
		sealer:   s.sealer,
		rotation: time.Duration(s.KeyRotation),
		overlap:  time.Duration(s.AccessTokenLifetime) + 5*time.Minute,
	}
	if _, err := s.keys.signer(ctx, s.now()); err != nil {
		return fmt.Errorf("preparing signing keys: %v", err)
	}
	if err := s.reloadRevocations(ctx); err != nil {
		return fmt.Errorf("reading the access-token revocation list: %v", err)
	}
	go s.refreshRevocations(ctx)
	if s.metadata, err = s.metadataJSON(); err != nil {
		return err
	}
	s.metaPaths = metadataPaths(s.issuerPath)
	return nil
}

// Validate checks the configuration.
func (s *Server) Validate() error {
	if s.AccessTokenLifetime < 0 || s.RefreshTokenLifetime < 0 || s.KeyRotation < 0 {
		return errors.New("lifetimes must not be negative")
	}
	if s.RegistrationRate < 0 {
		return errors.New("registration_rate must not be negative")
	}
	if time.Duration(s.AccessTokenLifetime) > maxAccessTokenLifetime {
		return fmt.Errorf("access_token_lifetime must be at most %s: access tokens are short-lived, refresh tokens keep clients signed in", maxAccessTokenLifetime)
	}
	if time.Duration(s.KeyRotation) < time.Hour {
		return errors.New("key_rotation must be at least 1h")
	}
	return nil
}

// parseIssuer accepts an absolute https URL (http only on loopback hosts) without query,
// fragment, userinfo or trailing slash.
func parseIssuer(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return nil, fmt.Errorf("%q must be an https URL", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(u.Path, "/") || u.RawPath != "" {
		return nil, fmt.Errorf("%q: want scheme://host[/path] with no query, fragment, credentials or trailing slash", s)
	}
	return u, nil
}

// parseResource accepts an absolute http(s) URL without fragment or userinfo.
func parseResource(s string) (*url.URL, error) {
	if len(s) > maxURILength {
		return nil, errors.New("too long")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(s, "#") {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL without fragment", s)
	}
	return u, nil
}

// allowedResource reports whether the resource a client asked for is the gateway's or
// a URL under it.
func (s *Server) allowedResource(res string) bool {
	if _, err := parseResource(res); err != nil {
		return false
	}
	if res == s.Resource {
		return true
	}
	rest, ok := strings.CutPrefix(res, s.Resource+"/")
	return ok && !strings.Contains(rest, "..") && !strings.ContainsAny(rest, "\\?#")
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func parseCIDRs(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, c := range list {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", c)
		}
		out = append(out, n)
	}
	return out, nil
}

// ServeHTTP answers the metadata and endpoint paths and passes other requests on.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.Path
	if s.metaPaths[path] {
		s.serveMetadata(w, r)
		return nil
	}
	endpoint, ok := strings.CutPrefix(path, s.issuerPath+"/")
	if !ok {
		return next.ServeHTTP(w, r)
	}
	switch endpoint {
	case "authorize":
		s.serveAuthorize(w, r)
	case "token":
		s.serveToken(w, r)
	case "register":
		s.serveRegister(w, r)
	case "revoke":
		s.serveRevoke(w, r)
	case "jwks":
		s.serveJWKS(w, r)
	case "login":
		s.serveLogin(w, r)
	case "logout":
		s.serveLogout(w, r)
	case "account":
		s.serveAccount(w, r)
	default:
		if rest, ok := strings.CutPrefix(endpoint, "login/"); ok && len(s.idps) > 0 {
			s.serveFederated(w, r, rest)
			return nil
		}
		return next.ServeHTTP(w, r)
	}
	return nil
}

func (s *Server) endpointURL(name string) string {
	return s.Issuer + "/" + name
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Server)(nil)
	_ caddy.CleanerUpper          = (*Server)(nil)
	_ caddy.Validator             = (*Server)(nil)
	_ caddyhttp.MiddlewareHandler = (*Server)(nil)
)
