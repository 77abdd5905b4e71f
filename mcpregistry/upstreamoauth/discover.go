package upstreamoauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Endpoints are what the gateway needs of an authorization server.
type Endpoints struct {
	// Issuer is the authorization server's issuer identifier.
	Issuer string
	// AuthorizationEndpoint is where the browser is sent (never called by the gateway).
	AuthorizationEndpoint string
	// TokenEndpoint is called by the gateway.
	TokenEndpoint string
	// IssParameter: the server returns iss in authorization responses (RFC 9207), so a
	// response without it, or with another, is refused (mix-up defence).
	IssParameter bool
	// Scopes the server supports, for information.
	Scopes []string
	// RegistrationEndpoint is where dynamic client registration (RFC 7591) is done; ""
	// when the server offers none.
	RegistrationEndpoint string
	// ClientIDMetadataDocuments: the server takes an https URL as client_id and
	// fetches the client's metadata from it (client_id_metadata_document_supported).
	ClientIDMetadataDocuments bool
	// AuthMethods are its token_endpoint_auth_methods_supported.
	AuthMethods []string
}

// Fetcher fetches metadata and calls token endpoints.
type Fetcher struct {
	// HTTP makes the requests. Its transport should refuse forbidden addresses at dial
	// time, and its CheckRedirect refuse redirects (NoRedirects).
	HTTP *http.Client
	// CheckURL refuses a URL the gateway may not call (nil: every URL passes). It is
	// applied to every metadata document's URL and to the token endpoint.
	CheckURL func(ctx context.Context, raw string) error
}

// NoRedirects is the CheckRedirect of a Fetcher's client: an authorization server
// that answers a back-channel request with a redirect is refused, not followed.
func NoRedirects(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("the authorization server redirected to %s; redirects are not followed", req.URL.Redacted())
}

func (f *Fetcher) check(ctx context.Context, what, raw string) error {
	if f.CheckURL == nil {
		return nil
	}
	if err := f.CheckURL(ctx, raw); err != nil {
		return fmt.Errorf("%s %s is refused: %v", what, raw, err)
	}
	return nil
}

// ProtectedResourceMetadataURL is where RFC 9728 puts the metadata of resource:
// https://h/p → https://h/.well-known/oauth-protected-resource/p.
func ProtectedResourceMetadataURL(resource string) (string, error) {
	u, err := url.Parse(resource)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("resource %q is not an absolute URL", resource)
	}
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + p, nil
}

// Discover finds the authorization server of resource: issuer when given (the
// config's authorization_server), else the first one of resource's protected-resource
// metadata; then that server's RFC 8414 metadata (OpenID discovery as a fallback).
func (f *Fetcher) Discover(ctx context.Context, resource, issuer string) (*Endpoints, error) {
	if issuer == "" {
		prmURL, err := ProtectedResourceMetadataURL(resource)
		if err != nil {
			return nil, err
		}
		if err := f.check(ctx, "protected-resource metadata", prmURL); err != nil {
			return nil, err
		}
		prm, err := oauthex.GetProtectedResourceMetadata(ctx, prmURL, resource, f.HTTP)
		if err != nil {
			return nil, fmt.Errorf("reading the upstream's protected-resource metadata: %v", err)
		}
		if len(prm.AuthorizationServers) == 0 {
			return nil, fmt.Errorf("the upstream's protected-resource metadata (%s) names no authorization server; configure authorization_server", prmURL)
		}
		issuer = prm.AuthorizationServers[0]
	}
	var errs []error
	for _, metaURL := range metadataURLs(issuer) {
		if err := f.check(ctx, "authorization server metadata", metaURL); err != nil {
			return nil, err
		}
		asm, err := oauthex.GetAuthServerMeta(ctx, metaURL, issuer, f.HTTP)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if asm == nil {
			continue // 4xx: try the next well-known location
		}
		if asm.TokenEndpoint == "" || asm.AuthorizationEndpoint == "" {
			return nil, fmt.Errorf("authorization server %s lists no token or authorization endpoint", issuer)
		}
		if err := f.check(ctx, "token endpoint", asm.TokenEndpoint); err != nil {
			return nil, err
		}
		if !supportsS256(asm.CodeChallengeMethodsSupported) {
			return nil, fmt.Errorf("authorization server %s does not support PKCE S256", issuer)
		}
		return &Endpoints{
			Issuer:                    asm.Issuer,
			AuthorizationEndpoint:     asm.AuthorizationEndpoint,
			TokenEndpoint:             asm.TokenEndpoint,
			IssParameter:              asm.AuthorizationResponseIssParameterSupported,
			Scopes:                    asm.ScopesSupported,
			RegistrationEndpoint:      asm.RegistrationEndpoint,
			ClientIDMetadataDocuments: asm.ClientIDMetadataDocumentSupported,
			AuthMethods:               asm.TokenEndpointAuthMethodsSupported,
		}, nil
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("reading the metadata of authorization server %s: %w", issuer, errors.Join(errs...))
	}
	return nil, fmt.Errorf("authorization server %s publishes no metadata at its well-known locations", issuer)
}

func supportsS256(methods []string) bool {
	for _, m := range methods {
		if m == "S256" {
			return true
		}
	}
	return false
}

// metadataURLs are the discovery locations of issuer, in the order MCP clients try
// them: RFC 8414 with the path inserted, OpenID with the path inserted, OpenID with
// the path appended.
func metadataURLs(issuer string) []string {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return []string{strings.TrimSuffix(issuer, "/") + "/.well-known/oauth-authorization-server"}
	}
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	origin := u.Scheme + "://" + u.Host
	out := []string{origin + "/.well-known/oauth-authorization-server" + p, origin + "/.well-known/openid-configuration" + p}
	if p != "" {
		out = append(out, origin+p+"/.well-known/openid-configuration")
	}
	return out
}
