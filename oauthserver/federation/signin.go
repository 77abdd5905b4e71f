package federation

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/mcpregistry/upstreamoauth"
)

// discoveryRetry is how long a failed discovery is remembered before the next sign-in
// tries again, so a down provider is not asked on every click.
const discoveryRetry = 10 * time.Second

// Client signs users in at one provider.
type Client struct {
	p         Provider
	http      *http.Client
	tokens    *upstreamoauth.Fetcher
	validator *authn.Validator

	mu        sync.Mutex
	ep        *endpoints
	epErr     error
	epErrTime time.Time
}

// New returns a Client for p (with its defaults filled in). ctx bounds the background
// refresh of the provider's keys: the config's lifetime.
func New(ctx context.Context, p Provider, client *http.Client) (*Client, error) {
	p, err := p.WithDefaults()
	if err != nil {
		return nil, err
	}
	v, err := authn.NewValidator(ctx, authn.Config{
		Issuers:    []authn.IssuerConfig{{Issuer: p.Issuer, Audiences: []string{p.ClientID}, GroupsClaim: p.GroupsClaim}},
		HTTPClient: client,
		CacheSize:  -1, // each ID token is used once
	})
	if err != nil {
		return nil, fmt.Errorf("identity provider %s: %v", p.Name, err)
	}
	return &Client{p: p, http: client, validator: v, tokens: &upstreamoauth.Fetcher{HTTP: client}}, nil
}

// Provider returns the provider's settings, defaults filled in.
func (c *Client) Provider() Provider { return c.p }

// endpoints discovers the provider's endpoints once. The lock is held across the
// fetch on purpose: sign-ins arriving meanwhile wait for that one discovery (bounded
// by the client's timeout) instead of each asking the provider.
func (c *Client) endpoints(ctx context.Context) (*endpoints, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep != nil {
		return c.ep, nil
	}
	if c.epErr != nil && time.Since(c.epErrTime) < discoveryRetry {
		return nil, c.epErr
	}
	ep, err := discover(ctx, c.http, c.p.Issuer)
	if err != nil {
		c.epErr, c.epErrTime = err, time.Now()
		return nil, err
	}
	c.ep = ep
	return ep, nil
}

// Pending is what a sign-in keeps between sending the browser to the provider and
// its return: kept by the caller where only that browser can present it.
type Pending struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
}

// NewPending returns fresh random state, nonce and PKCE verifier.
func NewPending() Pending {
	return Pending{State: upstreamoauth.RandomString(24), Nonce: upstreamoauth.RandomString(24), Verifier: upstreamoauth.RandomString(32)}
}

// AuthorizeURL is where the browser is sent to sign in at the provider; it comes back
// to redirectURI.
func (c *Client) AuthorizeURL(ctx context.Context, redirectURI string, p Pending) (string, error) {
	ep, err := c.endpoints(ctx)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(ep.authorization)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", c.p.ClientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("scope", strings.Join(c.p.Scopes, " "))
	q.Set("state", p.State)
	q.Set("nonce", p.Nonce)
	q.Set("code_challenge", challenge(p.Verifier))
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Identity is who signed in.
type Identity struct {
	// Subject is the provider's sub: stable, never reassigned.
	Subject string
	// Username is the name on this server (Provider.UsernameClaim, else email, else sub).
	Username string
	// Groups are the user's groups, renamed by Provider.GroupMap.
	Groups []string
}

// NotAllowedError: the provider signed the user in, but they are in none of the
// provider's allowed_groups.
type NotAllowedError struct{ User string }

func (e *NotAllowedError) Error() string {
	return e.User + " is in none of the groups allowed to sign in here; ask the platform team for access"
}

// RefusedError is the provider's own refusal (error= in the callback): the user
// cancelled, or the provider does not let them use this client.
type RefusedError struct{ Code, Description string }

func (e *RefusedError) Error() string {
	if e.Description != "" {
		return "the identity provider refused the sign-in: " + e.Code + ": " + e.Description
	}
	return "the identity provider refused the sign-in: " + e.Code
}

// Finish completes a sign-in from the provider's callback query: it checks state and
// iss, redeems the code with the PKCE verifier, and verifies the ID token (signature,
// issuer, audience, expiry, nonce, azp). The errors name what failed, never a token.
func (c *Client) Finish(ctx context.Context, redirectURI string, p Pending, callback url.Values) (Identity, error) {
	if subtle.ConstantTimeCompare([]byte(callback.Get("state")), []byte(p.State)) != 1 || p.State == "" {
		return Identity{}, errors.New("the sign-in's state does not match this browser's; start again")
	}
	if code := callback.Get("error"); code != "" {
		return Identity{}, &RefusedError{Code: printable(code, 64), Description: printable(callback.Get("error_description"), 200)}
	}
	ep, err := c.endpoints(ctx)
	if err != nil {
		return Identity{}, err
	}
	if iss, ok := callback["iss"]; ok || ep.issParameter {
		if !ok || len(iss) != 1 || iss[0] != c.p.Issuer {
			return Identity{}, errors.New("the authorization response's iss is not the identity provider's issuer")
		}
	}
	code := callback.Get("code")
	if code == "" || len(code) > 4096 {
		return Identity{}, errors.New("the identity provider returned no usable code")
	}
	tok, err := c.tokens.Token(ctx, &upstreamoauth.Endpoints{Issuer: c.p.Issuer, TokenEndpoint: ep.token},
		upstreamoauth.ClientAuth{ClientID: c.p.ClientID, Secret: c.p.ClientSecret},
		url.Values{"grant_type": {upstreamoauth.GrantAuthorizationCode}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {p.Verifier}})
	if err != nil {
		return Identity{}, fmt.Errorf("redeeming the code at the identity provider: %v", err)
	}
	if tok.IDToken == "" {
		return Identity{}, errors.New("the identity provider issued no ID token; is openid among the scopes?")
	}
	return c.identity(ctx, tok.IDToken, p.Nonce)
}

// identity verifies an ID token and reads the user from it.
func (c *Client) identity(ctx context.Context, idToken, nonce string) (Identity, error) {
	caller, err := c.validator.Validate(ctx, idToken)
	if err != nil {
		return Identity{}, fmt.Errorf("the ID token is not valid: %v", err)
	}
	claims, err := payload(idToken)
	if err != nil {
		return Identity{}, err
	}
	if got, _ := stringClaim(claims, "nonce"); subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return Identity{}, errors.New("the ID token's nonce is not this sign-in's")
	}
	if len(caller.Audiences) > 1 {
		if azp, _ := stringClaim(claims, "azp"); azp != c.p.ClientID {
			return Identity{}, errors.New("the ID token has several audiences and its azp is not this client")
		}
	}
	if caller.Subject == "" {
		return Identity{}, errors.New("the ID token has no sub")
	}
	id := Identity{Subject: caller.Subject, Username: c.username(claims, caller.Subject)}
	if id.Username == "" {
		return Identity{}, fmt.Errorf("none of the ID token's %s, email and sub is a usable user name (letters, digits, . _ @ -, at most 64)", c.p.UsernameClaim)
	}
	if c.p.GroupsClaim == NoGroups {
		return id, nil
	}
	if caller.Groups == nil {
		if names, ok := claims["_claim_names"]; ok && strings.Contains(string(names), `"`+c.p.GroupsClaim+`"`) {
			return Identity{}, fmt.Errorf("the identity provider left the %s claim out of the ID token (too many groups: Entra ID's overage); have it send only the groups assigned to the application", c.p.GroupsClaim)
		}
	}
	for _, g := range caller.Groups {
		if to, ok := c.p.GroupMap[g]; ok {
			g = to
		}
		id.Groups = append(id.Groups, g)
	}
	if len(c.p.AllowedGroups) > 0 && !slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(c.p.AllowedGroups, g) }) {
		return Identity{}, &NotAllowedError{User: id.Username}
	}
	return id, nil
}

// username is the first usable of the username claim, email and sub; "" when none is.
// An email counts only when the provider says it verified it: otherwise anyone could
// claim a colleague's address at a provider that lets users set their own (Entra's
// email claim is one such) and take their name here first.
func (c *Client) username(claims map[string]json.RawMessage, sub string) string {
	for _, name := range []string{c.p.UsernameClaim, "email"} {
		if name == "email" && string(claims["email_verified"]) != "true" {
			continue
		}
		if v, ok := stringClaim(claims, name); ok && UsableName(v) {
			return v
		}
	}
	if UsableName(sub) {
		return sub
	}
	return ""
}

// usableName is what the server's admin endpoint can address a user by.
var usableName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// UsableName reports whether s can name a user here: 1 to 64 letters, digits, '.',
// '_', '@' and '-', starting with a letter or digit (what the admin endpoint takes).
func UsableName(s string) bool { return usableName.MatchString(s) }

func payload(jwt string) (map[string]json.RawMessage, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("the ID token is not a JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(b, &claims)
	}
	if err != nil {
		return nil, fmt.Errorf("the ID token's claims are malformed: %v", err)
	}
	return claims, nil
}

func stringClaim(claims map[string]json.RawMessage, name string) (string, bool) {
	var s string
	raw, ok := claims[name]
	if !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// challenge is the PKCE S256 challenge of verifier (RFC 7636 §4.2).
func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// printable keeps the provider's words in an error page safe: printable ASCII, cut at n.
func printable(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		if s[i] >= 0x20 && s[i] < 0x7f {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
