package mcpregistry

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/upstreamoauth"
)

// Grants of backend_auth oauth.
const (
	// OAuthGrantAuthorizationCode: each user connects their own account once, in the
	// browser (the gateway's connect page); the gateway sends that user's token.
	OAuthGrantAuthorizationCode = "authorization_code"
	// OAuthGrantClientCredentials: one token of the gateway's own (a machine
	// credential), shared by every caller.
	OAuthGrantClientCredentials = "client_credentials"
	// OAuthGrantTokenExchange: the caller's own gateway token is exchanged (RFC 8693)
	// for one whose audience is the upstream.
	OAuthGrantTokenExchange = "token_exchange"
)

// UpstreamOAuthConfig is backend_auth oauth of one server: the gateway is an OAuth
// client of the upstream's authorization server. Secrets are placeholders
// ({env.*}, {file.*}) resolved when the config loads; tokens obtained are kept only in
// memory and, for per-user grants, sealed in the registry's store (the vault), which
// needs the registry's encryption_key.
type UpstreamOAuthConfig struct {
	// Grant is how tokens are obtained: authorization_code (default; each user
	// connects once through the connect page), client_credentials (one machine token
	// for every caller) or token_exchange (the caller's gateway token exchanged for one
	// whose audience is the upstream, RFC 8693).
	Grant string `json:"grant,omitempty"`

	// AuthorizationServer is the issuer URL of the upstream's authorization server.
	// Default: the first one the upstream lists in its protected-resource metadata
	// (RFC 9728). Its metadata (RFC 8414, or OpenID discovery) is read either way.
	AuthorizationServer string `json:"authorization_server,omitempty"`

	// TokenEndpoint, when set, is used instead of the one the metadata lists (e.g. an
	// Entra tenant's v2.0 token endpoint for token_exchange); with it, no metadata is
	// read for client_credentials and token_exchange.
	TokenEndpoint string `json:"token_endpoint,omitempty"`

	// Registration is how the gateway becomes a client of that authorization server
	// when no ClientID is configured (authorization_code only): "dynamic" registers it
	// by dynamic client registration (RFC 7591) on the first connection, the result
	// kept sealed in the store (so restarts and other instances reuse it); "cimd" uses
	// the gateway's own client ID metadata document as client_id:
	// <gateway origin><prefix>/<path>/connect/client-metadata.json, served by the
	// gateway, which must be reached over https. Empty: ClientID is pre-registered.
	Registration string `json:"registration,omitempty"`

	// ClientID is the gateway's client id at that authorization server (registered
	// there beforehand; for authorization_code with redirect URI RedirectURI).
	// Required unless Registration is set.
	ClientID string `json:"client_id,omitempty"`

	// ClientSecret authenticates the gateway at the token endpoint
	// (client_secret_basic unless TokenEndpointAuthMethod says otherwise).
	ClientSecret string `json:"client_secret,omitempty"`

	// TokenEndpointAuthMethod is client_secret_basic (default with a secret),
	// client_secret_post, private_key_jwt (with PrivateKey) or none (a public client).
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`

	// PrivateKey is the PEM private key (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or
	// SEC 1) that signs private_key_jwt client assertions, normally {file.*}.
	PrivateKey string `json:"private_key,omitempty"`

	// PrivateKeyID is the kid put in client assertions' headers, as registered with
	// the authorization server.
	PrivateKeyID string `json:"private_key_id,omitempty"`

	// Scopes requested (space-separated in the request).
	Scopes []string `json:"scopes,omitempty"`

	// Resource is the resource indicator (RFC 8707) sent with every request, and the
	// audience a JWT access token must name. Default: the server's upstream URL.
	Resource string `json:"resource,omitempty"`

	// RedirectURI is the redirect URI registered for the gateway at the authorization
	// server: the gateway's connect callback, <gateway origin><prefix>/<path>/connect/callback.
	// Default: that URL as derived from the request that opens the connect page.
	RedirectURI string `json:"redirect_uri,omitempty"`

	// Audience is token exchange's audience parameter (the upstream's logical name),
	// when the authorization server wants one besides the resource.
	Audience string `json:"audience,omitempty"`

	// Profile shapes the token exchange request: rfc8693 (default: subject_token of
	// type access_token) or entra_obo (Entra's on-behalf-of: grant jwt-bearer,
	// assertion, requested_token_use on_behalf_of, scopes such as api://upstream/.default).
	Profile string `json:"profile,omitempty"`
}

// Registrations of backend_auth oauth clients.
const (
	RegistrationDynamic = "dynamic"
	RegistrationCIMD    = "cimd"
)

// Profiles of token_exchange.
const (
	TokenExchangeRFC8693  = "rfc8693"
	TokenExchangeEntraOBO = "entra_obo"
)

// oauthClient is one server's provisioned UpstreamOAuthConfig.
type oauthClient struct {
	server     string
	grant      string
	issuer     string // configured authorization server, or ""
	tokenURL   string
	resource   string
	redirect   string
	scopes     []string
	audience   string
	profile    string
	auth       upstreamoauth.ClientAuth
	discovered discoveryCache
	// registration is RegistrationDynamic, RegistrationCIMD or "" (pre-registered).
	registration string
	// registered is the dynamic registration in use (registration.go).
	registered registrationCache
}

// provisionOAuthClient resolves c for server s.
func provisionOAuthClient(s *model.Server, c *UpstreamOAuthConfig) (*oauthClient, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("server %q: backend_auth oauth: %s", s.Name, fmt.Sprintf(format, args...))
	}
	if c == nil {
		return nil, fail("needs its block (client_id, and the rest of the OAuth client registration)")
	}
	repl := caddy.NewReplacer()
	resolve := func(v string) string { return trimNewline(strings.TrimSpace(repl.ReplaceKnown(v, ""))) }
	cl := &oauthClient{
		server:       s.Name,
		grant:        c.Grant,
		issuer:       strings.TrimSuffix(resolve(c.AuthorizationServer), "/"),
		tokenURL:     resolve(c.TokenEndpoint),
		resource:     resolve(c.Resource),
		redirect:     resolve(c.RedirectURI),
		scopes:       slices.Clone(c.Scopes),
		audience:     resolve(c.Audience),
		profile:      c.Profile,
		registration: c.Registration,
		auth: upstreamoauth.ClientAuth{
			ClientID: resolve(c.ClientID),
			Secret:   resolve(c.ClientSecret),
			Method:   c.TokenEndpointAuthMethod,
		},
	}
	if cl.grant == "" {
		cl.grant = OAuthGrantAuthorizationCode
	}
	switch cl.grant {
	case OAuthGrantAuthorizationCode, OAuthGrantClientCredentials, OAuthGrantTokenExchange:
	default:
		return nil, fail("grant %q is not one of authorization_code, client_credentials, token_exchange", c.Grant)
	}
	if cl.resource == "" {
		cl.resource = s.Upstream
	}
	if strings.HasPrefix(s.Upstream, model.BuiltinScheme+":") {
		return nil, fail("a builtin server takes no upstream credential")
	}
	switch cl.registration {
	case "":
		if cl.auth.ClientID == "" {
			return nil, fail("client_id is required (is its placeholder set?), or registration dynamic|cimd")
		}
	case RegistrationDynamic, RegistrationCIMD:
		if cl.grant != OAuthGrantAuthorizationCode {
			return nil, fail("registration %s is for grant authorization_code", cl.registration)
		}
		if cl.auth.ClientID != "" || cl.auth.Secret != "" || c.PrivateKey != "" || c.TokenEndpointAuthMethod != "" {
			return nil, fail("registration %s takes no client_id, client_secret, private_key or token_endpoint_auth_method: the registration provides them", cl.registration)
		}
	default:
		return nil, fail("registration %q is not one of dynamic, cimd", cl.registration)
	}
	for what, v := range map[string]string{"authorization_server": cl.issuer, "token_endpoint": cl.tokenURL, "resource": cl.resource, "redirect_uri": cl.redirect} {
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			return nil, fail("%s %q must be an absolute http(s) URL without fragment", what, v)
		}
	}
	switch cl.auth.Method {
	case "":
	case "client_secret_basic", "client_secret_post":
		if cl.auth.Secret == "" {
			return nil, fail("%s needs client_secret (is its placeholder set?)", cl.auth.Method)
		}
	case "none":
		if cl.auth.Secret != "" {
			return nil, fail("token_endpoint_auth_method none takes no client_secret")
		}
	case "private_key_jwt":
		key, err := parsePrivateKey(resolve(c.PrivateKey))
		if err != nil {
			return nil, fail("private_key: %v", err)
		}
		if cl.auth.Assertion, err = upstreamoauth.AssertionSigner(cl.auth.ClientID, resolve(c.PrivateKeyID), key); err != nil {
			return nil, fail("private_key: %v", err)
		}
	default:
		return nil, fail("token_endpoint_auth_method %q is not one of client_secret_basic, client_secret_post, private_key_jwt, none", cl.auth.Method)
	}
	if cl.auth.Method != "private_key_jwt" && c.PrivateKey != "" {
		return nil, fail("private_key needs token_endpoint_auth_method private_key_jwt")
	}
	if cl.grant != OAuthGrantAuthorizationCode && cl.auth.Secret == "" && cl.auth.Assertion == nil {
		return nil, fail("grant %s needs a client_secret or private_key_jwt", cl.grant)
	}
	if cl.registration == RegistrationCIMD && cl.redirect != "" && !strings.HasPrefix(cl.redirect, "https://") {
		return nil, fail("registration cimd needs an https redirect_uri: its client ID metadata document is served beside it")
	}
	switch cl.profile {
	case "":
		if cl.grant == OAuthGrantTokenExchange {
			cl.profile = TokenExchangeRFC8693
		}
	case TokenExchangeRFC8693, TokenExchangeEntraOBO:
		if cl.grant != OAuthGrantTokenExchange {
			return nil, fail("profile is for grant token_exchange")
		}
	default:
		return nil, fail("profile %q is not one of rfc8693, entra_obo", cl.profile)
	}
	return cl, nil
}

// parsePrivateKey reads a PEM private key.
func parsePrivateKey(p string) (crypto.Signer, error) {
	if p == "" {
		return nil, fmt.Errorf("private_key_jwt needs private_key (PEM, e.g. {file./run/secrets/key.pem})")
	}
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, fmt.Errorf("not PEM")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("not an RSA, ECDSA or Ed25519 private key in PKCS#8, PKCS#1 or SEC 1 form")
}
