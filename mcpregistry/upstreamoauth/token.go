package upstreamoauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Grant types and token types the gateway uses.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
)

// maxTokenResponse bounds what the gateway reads of a token endpoint's answer.
const maxTokenResponse = 64 << 10

// maxTokenLength bounds an access or refresh token the gateway will store and send.
const maxTokenLength = 16 << 10

// Token is what a token endpoint issued.
type Token struct {
	AccessToken  string
	RefreshToken string
	// ExpiresAt is zero when the server gave no expires_in.
	ExpiresAt time.Time
	// Scope is the granted scope (space-separated), as the server reported it.
	Scope string
	// IDToken is the OpenID Connect ID token, when the server issued one (unverified).
	IDToken string
}

// Error is an OAuth error response (RFC 6749 §5.2) from a token endpoint.
type Error struct {
	Status      int
	Code        string
	Description string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("token endpoint answered %d %s", e.Status, e.Code)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// InvalidGrant reports whether err says the grant itself is dead (revoked, expired,
// used): the user has to go through the authorization again.
func InvalidGrant(err error) bool {
	var oe *Error
	return errors.As(err, &oe) && (oe.Code == "invalid_grant" || oe.Code == "unauthorized_client")
}

// PKCE returns a fresh code verifier and its S256 challenge (RFC 7636).
func PKCE() (verifier, challenge string) {
	verifier = RandomString(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// RandomString is n random bytes in unpadded base64url.
func RandomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// AuthorizeRequest is the authorization request the browser is sent with.
type AuthorizeRequest struct {
	ClientID, RedirectURI, State, CodeChallenge, Resource string
	Scopes                                                []string
}

// AuthorizeURL is ep's authorization endpoint with r's parameters (response_type code,
// PKCE S256, resource per RFC 8707).
func AuthorizeURL(ep *Endpoints, r AuthorizeRequest) (string, error) {
	u, err := url.Parse(ep.AuthorizationEndpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("authorization endpoint %q is not an http(s) URL", ep.AuthorizationEndpoint)
	}
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", r.ClientID)
	q.Set("redirect_uri", r.RedirectURI)
	q.Set("state", r.State)
	q.Set("code_challenge", r.CodeChallenge)
	q.Set("code_challenge_method", "S256")
	if r.Resource != "" {
		q.Set("resource", r.Resource)
	}
	if len(r.Scopes) > 0 {
		q.Set("scope", strings.Join(r.Scopes, " "))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// ClientAuth is how the gateway authenticates at a token endpoint.
type ClientAuth struct {
	ClientID string
	// Method is client_secret_basic (default with a Secret), client_secret_post,
	// private_key_jwt (with Assertion) or none.
	Method string
	Secret string
	// Assertion signs a client assertion (RFC 7523) for the token endpoint audience;
	// used with private_key_jwt.
	Assertion func(audience string) (string, error)
}

// Token calls ep's token endpoint with form (grant_type and its parameters), the
// client authenticated as auth, and returns the token issued. The answer is bounded,
// must be JSON, and must carry a Bearer access token.
func (f *Fetcher) Token(ctx context.Context, ep *Endpoints, auth ClientAuth, form url.Values) (*Token, error) {
	if err := f.check(ctx, "token endpoint", ep.TokenEndpoint); err != nil {
		return nil, err
	}
	form = cloneValues(form)
	method := auth.Method
	if method == "" {
		method = "client_secret_basic"
		if auth.Secret == "" {
			method = "none"
		}
	}
	var basicUser, basicPass string
	switch method {
	case "client_secret_basic":
		// RFC 6749 §2.3.1: form-urlencode both before Basic.
		basicUser, basicPass = url.QueryEscape(auth.ClientID), url.QueryEscape(auth.Secret)
	case "client_secret_post":
		form.Set("client_id", auth.ClientID)
		form.Set("client_secret", auth.Secret)
	case "private_key_jwt":
		if auth.Assertion == nil {
			return nil, errors.New("private_key_jwt needs a signing key")
		}
		a, err := auth.Assertion(ep.TokenEndpoint)
		if err != nil {
			return nil, fmt.Errorf("signing the client assertion: %v", err)
		}
		form.Set("client_id", auth.ClientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
	case "none":
		form.Set("client_id", auth.ClientID)
	default:
		return nil, fmt.Errorf("unknown token endpoint auth method %q", method)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("token endpoint %q: %v", ep.TokenEndpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	status, body, err := f.postForJSON(req, "token endpoint", maxTokenResponse)
	if err != nil {
		return nil, err
	}
	var tr struct {
		AccessToken      string      `json:"access_token"`
		TokenType        string      `json:"token_type"`
		ExpiresIn        json.Number `json:"expires_in"`
		RefreshToken     string      `json:"refresh_token"`
		Scope            string      `json:"scope"`
		Error            string      `json:"error"`
		ErrorDescription string      `json:"error_description"`
		IssuedTokenType  string      `json:"issued_token_type"`
		IDToken          string      `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("the token endpoint's answer is not a token response: %v", err)
	}
	if status != http.StatusOK || tr.Error != "" {
		return nil, &Error{Status: status, Code: printable(tr.Error, 64), Description: printable(tr.ErrorDescription, 200)}
	}
	if !strings.EqualFold(tr.TokenType, "bearer") && !(tr.TokenType == "N_A" && tr.IssuedTokenType == TokenTypeAccessToken) {
		return nil, fmt.Errorf("the token endpoint issued a %q token; only Bearer tokens are supported", printable(tr.TokenType, 32))
	}
	if !validToken(tr.AccessToken) || (tr.RefreshToken != "" && !validToken(tr.RefreshToken)) || (tr.IDToken != "" && !validToken(tr.IDToken)) {
		return nil, errors.New("the token endpoint issued an empty, oversized or malformed token")
	}
	t := &Token{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, Scope: printable(tr.Scope, 1024), IDToken: tr.IDToken}
	if tr.ExpiresIn != "" {
		secs, err := tr.ExpiresIn.Int64()
		if err != nil || secs < 0 {
			return nil, fmt.Errorf("the token endpoint's expires_in %q is not a number of seconds", printable(tr.ExpiresIn.String(), 32))
		}
		t.ExpiresAt = time.Now().Add(time.Duration(secs) * time.Second)
	}
	return t, nil
}

// validToken: a token the gateway can put in a header: printable ASCII, bounded.
func validToken(s string) bool {
	if s == "" || len(s) > maxTokenLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// printable bounds and cleans text an authorization server sent, for logs and errors.
func printable(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v)+4)
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
