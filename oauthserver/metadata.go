package oauthserver

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// metadataPaths are where clients look for the metadata of an issuer with path p
// (RFC 8414 §3 path insertion, OpenID discovery with insertion, and OpenID's appended
// form); at the root the plain well-known paths.
func metadataPaths(p string) map[string]bool {
	return map[string]bool{
		"/.well-known/oauth-authorization-server" + p: true,
		"/.well-known/openid-configuration" + p:       true,
		p + "/.well-known/openid-configuration":       true,
	}
}

func (s *Server) metadataJSON() ([]byte, error) {
	grants := []string{"authorization_code", "refresh_token"}
	for _, c := range s.clients {
		if slices.Contains(c.GrantTypes, "client_credentials") {
			grants = append(grants, "client_credentials")
			break
		}
	}
	authMethods := []string{"none", "client_secret_basic", "client_secret_post"}
	var signingAlgs []string
	if len(s.clientKeys) > 0 {
		authMethods = append(authMethods, authPrivateKeyJWT)
		signingAlgs = assertionAlgorithmNames()
	}
	m := oauthex.AuthServerMeta{
		Issuer:                                     s.Issuer,
		AuthorizationEndpoint:                      s.endpointURL("authorize"),
		TokenEndpoint:                              s.endpointURL("token"),
		JWKSURI:                                    s.endpointURL("jwks"),
		RevocationEndpoint:                         s.endpointURL("revoke"),
		ScopesSupported:                            s.ScopesSupported,
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        grants,
		TokenEndpointAuthMethodsSupported:          authMethods,
		CodeChallengeMethodsSupported:              []string{"S256"},
		ClientIDMetadataDocumentSupported:          !s.DisableCIMD,
		AuthorizationResponseIssParameterSupported: true,
		RevocationEndpointAuthMethodsSupported:     authMethods,
		TokenEndpointAuthSigningAlgValuesSupported: signingAlgs,
	}
	if !s.DisableRegistration {
		m.RegistrationEndpoint = s.endpointURL("register")
	}
	return json.Marshal(m)
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if !allowCORS(w, r, "GET, HEAD, OPTIONS") {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(s.metadata)
}

// allowCORS sets the headers that let browser-based clients call a public endpoint
// (no cookies involved) and answers preflights; it reports whether to go on.
func allowCORS(w http.ResponseWriter, r *http.Request, methods string) bool {
	if r.Header.Get("Origin") == "" {
		return true
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}
