package oauthserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

const (
	maxURILength      = 2000
	maxClientIDLength = 512
	authNone          = "none"
	authBasic         = "client_secret_basic"
	authPost          = "client_secret_post"
)

// configuredClients builds the pre-registered clients from the config.
func (s *Server) configuredClients(repl *caddy.Replacer) (map[string]Client, error) {
	out := make(map[string]Client, len(s.Clients))
	s.clientKeys = map[string]jwk.Set{}
	for _, cc := range s.Clients {
		if cc.ID == "" || len(cc.ID) > maxClientIDLength || strings.ContainsFunc(cc.ID, isControlOrSpace) {
			return nil, fmt.Errorf("client id %q: want 1 to %d printable characters without spaces", cc.ID, maxClientIDLength)
		}
		if strings.HasPrefix(cc.ID, "https://") || strings.HasPrefix(cc.ID, "http://") {
			return nil, fmt.Errorf("client %q: a URL as client id is reserved for client metadata documents", cc.ID)
		}
		if _, dup := out[cc.ID]; dup {
			return nil, fmt.Errorf("client %q configured twice", cc.ID)
		}
		c := Client{
			ID:         cc.ID,
			Name:       cc.Name,
			AuthMethod: authNone,
			GrantTypes: []string{"authorization_code", "refresh_token"},
			Groups:     cc.Groups,
		}
		if c.Name == "" {
			c.Name = cc.ID
		}
		if cc.Secret != "" {
			secret := repl.ReplaceKnown(cc.Secret, "")
			if secret == "" {
				return nil, fmt.Errorf("client %q: secret is empty after replacing placeholders", cc.ID)
			}
			if _, err := bcrypt.Cost([]byte(secret)); err == nil {
				c.SecretHash = secret
			} else {
				c.SecretHash = hashSecret(secret)
			}
			c.AuthMethod = authBasic
			if len(cc.Groups) > 0 {
				c.GrantTypes = append(c.GrantTypes, "client_credentials")
			}
		}
		if cc.JWKS != "" {
			if cc.Secret != "" {
				return nil, fmt.Errorf("client %q: a secret and jwks: choose one way to authenticate", cc.ID)
			}
			keys, err := parseClientKeys(repl.ReplaceKnown(cc.JWKS, ""))
			if err != nil {
				return nil, fmt.Errorf("client %q: %v", cc.ID, err)
			}
			s.clientKeys[cc.ID] = keys
			c.AuthMethod = authPrivateKeyJWT
			if len(cc.Groups) > 0 {
				c.GrantTypes = append(c.GrantTypes, "client_credentials")
			}
		}
		if c.AuthMethod == authNone && len(cc.Groups) > 0 {
			return nil, fmt.Errorf("client %q: groups (client_credentials) need a secret or jwks", cc.ID)
		}
		for _, ru := range cc.RedirectURIs {
			if err := validRedirectURI(ru, ""); err != nil {
				return nil, fmt.Errorf("client %q: %v", cc.ID, err)
			}
		}
		c.RedirectURIs = cc.RedirectURIs
		out[cc.ID] = c
	}
	return out, nil
}

var errUnknownClient = errors.New("unknown client")

// client finds a client: pre-registered, then a metadata document URL, then the store.
func (s *Server) client(ctx context.Context, id string) (Client, error) {
	if id == "" || len(id) > maxClientIDLength {
		return Client{}, errUnknownClient
	}
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	if strings.HasPrefix(id, "https://") {
		if s.DisableCIMD {
			return Client{}, errUnknownClient
		}
		return s.cimd.client(ctx, id, s.now())
	}
	c, err := s.store.GetClient(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Client{}, errUnknownClient
	}
	return c, err
}

// hashSecret is how generated client secrets (32 random bytes) are stored: their
// entropy makes a slow hash pointless.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// secretMatches compares a presented secret with a stored hash in constant time.
func secretMatches(stored, presented string) bool {
	if stored == "" || presented == "" || len(presented) > 512 {
		return false
	}
	if strings.HasPrefix(stored, "sha256:") {
		return subtle.ConstantTimeCompare([]byte(stored), []byte(hashSecret(presented))) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(stored), []byte(presented)) == nil
}

// authenticateClient identifies the client of a token or revocation request: HTTP
// Basic or client_secret in the form for confidential clients, client_id alone for
// public ones. The form must already be parsed.
func (s *Server) authenticateClient(r *http.Request) (Client, *oauthError) {
	if r.PostForm.Has("client_assertion") || r.PostForm.Has("client_assertion_type") {
		return s.authenticateAssertion(r)
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return Client{}, errInvalidClient("malformed HTTP Basic credentials", true)
		}
		if formID := r.PostForm.Get("client_id"); formID != "" && formID != id {
			return Client{}, errInvalidRequest("client_id differs from the HTTP Basic user")
		}
		if r.PostForm.Has("client_secret") {
			return Client{}, errInvalidRequest("client authenticated twice (HTTP Basic and client_secret)")
		}
	} else {
		id = r.PostForm.Get("client_id")
		secret = r.PostForm.Get("client_secret")
	}
	if id == "" {
		return Client{}, errInvalidClient("client_id missing", false)
	}
	c, err := s.client(r.Context(), id)
	if err != nil {
		if !errors.Is(err, errUnknownClient) {
			s.logger.Debug("looking up client failed", zapClient(id), zapErr(err))
		}
		return Client{}, errInvalidClient("unknown client", basic)
	}
	if c.AuthMethod == authPrivateKeyJWT {
		return Client{}, errInvalidClient("this client authenticates with private_key_jwt (client_assertion)", basic)
	}
	if c.SecretHash == "" {
		if secret != "" {
			return Client{}, errInvalidClient("public client presented a secret", basic)
		}
		return c, nil
	}
	if !secretMatches(c.SecretHash, secret) {
		return Client{}, errInvalidClient("client authentication failed", basic)
	}
	return c, nil
}

// authenticateAssertion identifies a client by its private_key_jwt assertion (RFC 7523
// §2.2); no other credential may come with it.
func (s *Server) authenticateAssertion(r *http.Request) (Client, *oauthError) {
	if _, _, basic := r.BasicAuth(); basic || r.PostForm.Has("client_secret") {
		return Client{}, errInvalidRequest("client authenticated twice (client_assertion and a secret)")
	}
	if r.PostForm.Get("client_assertion_type") != jwtBearerType {
		return Client{}, errInvalidClient("client_assertion_type must be "+jwtBearerType, false)
	}
	assertion := r.PostForm.Get("client_assertion")
	id := r.PostForm.Get("client_id")
	if id == "" {
		// The client is the assertion's sub; read unverified only to find its keys.
		if tok, err := jwt.ParseInsecure([]byte(assertion)); err == nil && len(assertion) <= maxAssertionSize {
			id = tok.Subject()
		}
	}
	c, err := s.client(r.Context(), id)
	if err != nil || c.AuthMethod != authPrivateKeyJWT {
		return Client{}, errInvalidClient("unknown client, or not one that authenticates with private_key_jwt", false)
	}
	if err := s.verifyClientAssertion(r.Context(), c, assertion); err != nil {
		s.logger.Info("client assertion refused", zapClient(c.ID), zap.String("reason", err.Error()))
		return Client{}, errInvalidClient(err.Error(), false)
	}
	return c, nil
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

// validRedirectURI checks a redirect URI a client registers or sends. applicationType
// "native" allows only loopback http URIs, "web" only https; "" allows both.
func validRedirectURI(raw, applicationType string) error {
	if raw == "" {
		return errors.New("empty redirect URI")
	}
	if len(raw) > maxURILength {
		return errors.New("redirect URI too long")
	}
	if strings.ContainsFunc(raw, isControlOrSpace) || strings.ContainsAny(raw, "\\#") {
		return fmt.Errorf("redirect URI %q contains a space, control character, backslash or fragment", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("redirect URI %q is not a URL", raw)
	}
	if u.User != nil || u.Opaque != "" || u.Host == "" || strings.HasPrefix(u.Path, "//") {
		return fmt.Errorf("redirect URI %q must be an absolute URL with a host and no userinfo", raw)
	}
	host := u.Hostname()
	loopback := u.Scheme == "http" && isLoopbackRedirectHost(host)
	switch {
	case u.Scheme == "https":
		if applicationType == "native" {
			return fmt.Errorf("redirect URI %q: a native client redirects to a loopback http URI", raw)
		}
	case loopback:
		if applicationType == "web" {
			return fmt.Errorf("redirect URI %q: a web client redirects to an https URI", raw)
		}
	case u.Scheme == "http":
		return fmt.Errorf("redirect URI %q: plain http is allowed only on loopback (127.0.0.1, [::1], localhost)", raw)
	default:
		return fmt.Errorf("redirect URI %q: scheme %q is not allowed", raw, u.Scheme)
	}
	return nil
}

func isLoopbackRedirectHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}

// redirectAllowed reports whether the redirect URI of a request is one the client
// registered: exactly, or for loopback URIs on any port (RFC 8252 §7.3). A client with
// no registered URIs (a pre-registered native client) may use any loopback URI.
func redirectAllowed(c Client, requested string) bool {
	if validRedirectURI(requested, "") != nil {
		return false
	}
	ru, _ := url.Parse(requested)
	reqLoopback := ru.Scheme == "http" && isLoopbackRedirectHost(ru.Hostname())
	if len(c.RedirectURIs) == 0 {
		return reqLoopback
	}
	for _, reg := range c.RedirectURIs {
		if subtle.ConstantTimeCompare([]byte(reg), []byte(requested)) == 1 {
			return true
		}
		if !reqLoopback {
			continue
		}
		gu, err := url.Parse(reg)
		if err != nil || gu.Scheme != "http" || !isLoopbackRedirectHost(gu.Hostname()) {
			continue
		}
		if gu.Hostname() == ru.Hostname() && gu.EscapedPath() == ru.EscapedPath() && gu.RawQuery == ru.RawQuery {
			return true
		}
	}
	return false
}

func hasGrant(c Client, grant string) bool { return slices.Contains(c.GrantTypes, grant) }
