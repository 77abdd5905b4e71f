package oauthserver

import (
	"context"
	"errors"
	"time"
)

// Errors a Store returns. Callers compare with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrCodeReused: the authorization code was redeemed before; RedeemCode returns the
	// code with the refresh family its first redemption produced, for revocation.
	ErrCodeReused = errors.New("authorization code already redeemed")
	// ErrRefreshReused: a refresh token that is no longer the family's current one was
	// presented; the store has revoked the whole family.
	ErrRefreshReused = errors.New("refresh token reused")
	// ErrRevoked: the refresh family was revoked or has expired.
	ErrRevoked = errors.New("refresh token revoked or expired")
)

// Store holds the authorization server's state. Every method takes and returns plain
// values so that a persistent backend (the registry's bbolt store, etcd) can implement
// it; values returned are copies the caller may keep. Secrets are never stored in the
// clear: codes and refresh tokens by their SHA-256, client secrets and passwords as
// hashes, signing keys sealed.
type Store interface {
	// CreateClient stores a dynamically registered client; ErrExists when the id is taken.
	CreateClient(ctx context.Context, c Client) error
	// GetClient returns a dynamically registered client or ErrNotFound.
	GetClient(ctx context.Context, id string) (Client, error)
	// DeleteClient removes a dynamically registered client.
	DeleteClient(ctx context.Context, id string) error

	// PutAuthRequest stores (or replaces) a pending authorization request.
	PutAuthRequest(ctx context.Context, r AuthRequest) error
	// GetAuthRequest returns an unexpired pending request or ErrNotFound.
	GetAuthRequest(ctx context.Context, id string) (AuthRequest, error)
	// DeleteAuthRequest removes a pending request.
	DeleteAuthRequest(ctx context.Context, id string) error

	// PutSession stores (or replaces) a browser session.
	PutSession(ctx context.Context, s Session) error
	// GetSession returns an unexpired session or ErrNotFound.
	GetSession(ctx context.Context, id string) (Session, error)
	// DeleteSession removes a session.
	DeleteSession(ctx context.Context, id string) error

	// PutCode stores a new authorization code (keyed by Code.Hash).
	PutCode(ctx context.Context, c Code) error
	// RedeemCode atomically marks the code redeemed and records familyID as the refresh
	// family its redemption produces. A code redeemed before yields ErrCodeReused
	// together with the stored code (whose FamilyID names what to revoke); an unknown or
	// expired code yields ErrNotFound.
	RedeemCode(ctx context.Context, hash, familyID string, now time.Time) (Code, error)

	// CreateFamily stores a new refresh-token family.
	CreateFamily(ctx context.Context, f RefreshFamily) error
	// RotateRefresh is a compare-and-swap: when presentedHash is the family's current
	// token hash and the family is live, it becomes nextHash (valid until nextExpires)
	// and the updated family is returned. A live family presented any other hash is
	// revoked and ErrRefreshReused returned; a revoked or expired family gives
	// ErrRevoked; an unknown one ErrNotFound.
	RotateRefresh(ctx context.Context, familyID, presentedHash, nextHash string, nextExpires, now time.Time) (RefreshFamily, error)
	// GetFamily returns a family (revoked ones included) or ErrNotFound.
	GetFamily(ctx context.Context, familyID string) (RefreshFamily, error)
	// RevokeFamily marks a family revoked; unknown families are not an error.
	RevokeFamily(ctx context.Context, familyID string) error

	// HasConsent reports whether user approved client for resource.
	HasConsent(ctx context.Context, user, clientID, resource string) (bool, error)
	// PutConsent remembers an approval.
	PutConsent(ctx context.Context, c Consent) error

	// GetUser returns a user held in the store or ErrNotFound.
	GetUser(ctx context.Context, name string) (User, error)
	// CreateUser adds a user; ErrExists when the name is taken.
	CreateUser(ctx context.Context, u User) error
	// UpdateUser replaces an existing user; ErrNotFound when absent.
	UpdateUser(ctx context.Context, u User) error
	// DeleteUser removes a user; ErrNotFound when absent.
	DeleteUser(ctx context.Context, name string) error
	// ListUsers returns every stored user, sorted by name.
	ListUsers(ctx context.Context) ([]User, error)

	// CreatePersonalToken stores a personal gateway token (its secret only as a hash);
	// ErrExists when the id is taken.
	CreatePersonalToken(ctx context.Context, t PersonalToken) error
	// GetPersonalToken returns a personal token by id or ErrNotFound.
	GetPersonalToken(ctx context.Context, id string) (PersonalToken, error)
	// ListPersonalTokens returns the personal tokens of user ("": of every user),
	// oldest first.
	ListPersonalTokens(ctx context.Context, user string) ([]PersonalToken, error)
	// DeletePersonalToken removes a personal token; ErrNotFound when absent.
	DeletePersonalToken(ctx context.Context, id string) error

	// ListSigningKeys returns every stored signing key, oldest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// PutSigningKey stores (or replaces) a signing key.
	PutSigningKey(ctx context.Context, k SigningKey) error
	// DeleteSigningKey removes a signing key.
	DeleteSigningKey(ctx context.Context, id string) error

	// UseAssertion records that a client assertion (by the hash of its client and jti)
	// was used; ErrExists when it was, unexpired, before. The record can go after
	// expires.
	UseAssertion(ctx context.Context, key string, expires time.Time) error

	// PutRevocation records (or replaces) an entry of the access-token revocation list.
	PutRevocation(ctx context.Context, r Revocation) error
	// ListRevocations returns the unexpired entries of the revocation list.
	ListRevocations(ctx context.Context) ([]Revocation, error)

	// LoginFailures returns the failed sign-in record of a throttling key ("user:alice",
	// "ip:192.0.2.1"); the zero value when there is none.
	LoginFailures(ctx context.Context, key string) (LoginFailures, error)
	// AddLoginFailure atomically counts one more failure at now and returns the new
	// record; a record whose last failure is older than window starts again from one.
	AddLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (LoginFailures, error)
	// ClearLoginFailures forgets a key's failures.
	ClearLoginFailures(ctx context.Context, key string) error
}

// Client is a registered OAuth client.
type Client struct {
	ID string `json:"id"`
	// SecretHash is the SHA-256 (hex) of a generated secret, or a bcrypt hash for
	// pre-registered clients; empty for public clients.
	SecretHash string `json:"secret_hash,omitempty"`
	// AuthMethod is the token endpoint auth method: none, client_secret_basic,
	// client_secret_post or private_key_jwt.
	AuthMethod      string    `json:"auth_method"`
	Name            string    `json:"name,omitempty"`
	RedirectURIs    []string  `json:"redirect_uris,omitempty"`
	GrantTypes      []string  `json:"grant_types,omitempty"`
	ApplicationType string    `json:"application_type,omitempty"`
	Scope           string    `json:"scope,omitempty"`
	ClientURI       string    `json:"client_uri,omitempty"`
	Groups          []string  `json:"groups,omitempty"`
	Created         time.Time `json:"created"`
}

// AuthRequest is an authorization request waiting for the user to sign in or consent.
type AuthRequest struct {
	ID            string `json:"id"`
	ClientID      string `json:"client_id"`
	RedirectURI   string `json:"redirect_uri"`
	State         string `json:"state,omitempty"`
	Scope         string `json:"scope,omitempty"`
	Resource      string `json:"resource"`
	CodeChallenge string `json:"code_challenge"`
	// SessionID and CSRF bind the request's forms to one browser session.
	SessionID string    `json:"session_id"`
	CSRF      string    `json:"csrf"`
	Expires   time.Time `json:"expires"`
}

// Session is a browser's sign-in session at the authorization server.
type Session struct {
	ID   string `json:"id"`
	User string `json:"user,omitempty"` // empty until signed in
	// CSRF is the token the session's own pages (sign-in, account) put in their forms.
	CSRF    string    `json:"csrf,omitempty"`
	Expires time.Time `json:"expires"`
}

// Code is an issued authorization code, keyed by the SHA-256 of its value.
type Code struct {
	Hash          string    `json:"hash"`
	ClientID      string    `json:"client_id"`
	RedirectURI   string    `json:"redirect_uri"`
	CodeChallenge string    `json:"code_challenge"`
	Resource      string    `json:"resource"`
	Scope         string    `json:"scope,omitempty"`
	Subject       string    `json:"subject"`
	Groups        []string  `json:"groups,omitempty"`
	Expires       time.Time `json:"expires"`
	Redeemed      bool      `json:"redeemed,omitempty"`
	// FamilyID is the refresh family the first redemption produced.
	FamilyID string `json:"family_id,omitempty"`
}

// RefreshFamily is the chain of refresh tokens descending from one authorization code.
// Only the current token is valid; presenting an earlier one revokes the family.
type RefreshFamily struct {
	ID          string    `json:"id"`
	ClientID    string    `json:"client_id"`
	Subject     string    `json:"subject"`
	Resource    string    `json:"resource"`
	Scope       string    `json:"scope,omitempty"`
	CurrentHash string    `json:"current_hash"`
	Expires     time.Time `json:"expires"`
	Revoked     bool      `json:"revoked,omitempty"`
	Created     time.Time `json:"created"`
}

// Consent records that a user approved a client for a resource.
type Consent struct {
	User     string    `json:"user"`
	ClientID string    `json:"client_id"`
	Resource string    `json:"resource"`
	Granted  time.Time `json:"granted"`
}

// User is a user of this server: local (a password) or signed in through an identity
// provider (federation.Provider).
type User struct {
	Name         string   `json:"name"`
	PasswordHash string   `json:"password_hash"` // bcrypt; "" for a provider's user
	Groups       []string `json:"groups,omitempty"`
	// Provider names the identity provider the user signs in with; "" for local users.
	Provider string `json:"provider,omitempty"`
	// ProviderSubject is "<provider issuer> <sub>": the identity the name is bound to.
	ProviderSubject string `json:"provider_subject,omitempty"`
	// SignedIn is the user's last sign-in through Provider.
	SignedIn time.Time `json:"signed_in,omitzero"`
}

// PersonalToken is a gateway token a user (or an admin for them) minted for a client
// that cannot do OAuth. It acts as the user with the groups the user has when it is
// used; the secret part is kept only as its SHA-256.
type PersonalToken struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Name    string    `json:"name,omitempty"` // what it is for, e.g. "ci" or "laptop curl"
	Hash    string    `json:"hash"`           // hex SHA-256 of the secret part
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// SigningKey is an ES256 key pair; the private JWK is sealed with the Sealer.
type SigningKey struct {
	ID      string    `json:"id"`
	Sealed  []byte    `json:"sealed"`
	Created time.Time `json:"created"`
	// SignUntil ends its use for new tokens; it stays published until Retire.
	SignUntil time.Time `json:"sign_until"`
	Retire    time.Time `json:"retire"`
}

// UsedAssertion remembers a client assertion until it expires, so it is used once.
type UsedAssertion struct {
	Expires time.Time `json:"expires"`
}

// LoginFailures counts failed sign-ins for one throttling key.
type LoginFailures struct {
	Count int       `json:"count"`
	Last  time.Time `json:"last"`
}
