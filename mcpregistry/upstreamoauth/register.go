package upstreamoauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// maxRegistrationResponse bounds what the gateway reads of a registration answer.
const maxRegistrationResponse = 64 << 10

// Registration is the gateway's client registration at an authorization server,
// obtained by dynamic client registration (RFC 7591). ClientSecret is a secret.
type Registration struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// AuthMethod is the token_endpoint_auth_method the server registered.
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// SecretExpiresAt is when ClientSecret expires (zero: never).
	SecretExpiresAt time.Time `json:"client_secret_expires_at,omitzero"`
}

// Auth is how the gateway authenticates at the token endpoint with r.
func (r *Registration) Auth() ClientAuth {
	m := r.AuthMethod
	if m == "" && r.ClientSecret == "" {
		m = "none"
	}
	return ClientAuth{ClientID: r.ClientID, Secret: r.ClientSecret, Method: m}
}

// ClientMetadata is what the gateway says about itself as a client: sent by dynamic
// client registration, published as its client ID metadata document (with ClientID
// set to the document's URL).
func ClientMetadata(redirectURI, name, scope, authMethod string) oauthex.ClientRegistrationMetadata {
	return oauthex.ClientRegistrationMetadata{
		RedirectURIs:            []string{redirectURI},
		TokenEndpointAuthMethod: authMethod,
		GrantTypes:              []string{GrantAuthorizationCode, GrantRefreshToken},
		ResponseTypes:           []string{"code"},
		ClientName:              name,
		Scope:                   scope,
		ApplicationType:         "web",
	}
}

// Register registers the gateway at endpoint (RFC 7591) with meta. The answer is
// bounded and never quoted in an error (it carries the client secret).
func (f *Fetcher) Register(ctx context.Context, endpoint string, meta oauthex.ClientRegistrationMetadata) (*Registration, error) {
	if err := f.check(ctx, "registration endpoint", endpoint); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("registration endpoint %q: %v", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	status, body, err := f.postForJSON(req, "registration endpoint", maxRegistrationResponse)
	if err != nil {
		return nil, err
	}
	var r struct {
		ClientID              string      `json:"client_id"`
		ClientSecret          string      `json:"client_secret"`
		AuthMethod            string      `json:"token_endpoint_auth_method"`
		ClientSecretExpiresAt json.Number `json:"client_secret_expires_at"`
		RedirectURIs          []string    `json:"redirect_uris"`
		Error                 string      `json:"error"`
		ErrorDescription      string      `json:"error_description"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("the registration answer (%d) is not a registration response", status)
	}
	if (status != http.StatusCreated && status != http.StatusOK) || r.Error != "" {
		return nil, fmt.Errorf("the registration endpoint answered %d %s: %s", status, printable(r.Error, 64), printable(r.ErrorDescription, 200))
	}
	if !validToken(r.ClientID) || len(r.ClientID) > 1024 || (r.ClientSecret != "" && !validToken(r.ClientSecret)) {
		return nil, errors.New("the registration endpoint issued an empty, oversized or malformed client id or secret")
	}
	if len(r.RedirectURIs) > 0 && (len(r.RedirectURIs) != 1 || r.RedirectURIs[0] != meta.RedirectURIs[0]) {
		return nil, errors.New("the authorization server registered other redirect URIs than the gateway's callback")
	}
	reg := &Registration{ClientID: r.ClientID, ClientSecret: r.ClientSecret, AuthMethod: r.AuthMethod}
	switch reg.AuthMethod {
	case "":
		reg.AuthMethod = meta.TokenEndpointAuthMethod
	case "client_secret_basic", "client_secret_post", "none":
	default:
		return nil, fmt.Errorf("the authorization server registered token_endpoint_auth_method %q, which the gateway does not use", printable(reg.AuthMethod, 40))
	}
	if reg.AuthMethod != "none" && reg.ClientSecret == "" {
		return nil, errors.New("the authorization server registered a confidential client without a secret")
	}
	if s := r.ClientSecretExpiresAt.String(); s != "" && s != "0" {
		secs, err := r.ClientSecretExpiresAt.Int64()
		if err != nil || secs < 0 {
			return nil, errors.New("the registration's client_secret_expires_at is not a time")
		}
		reg.SecretExpiresAt = time.Unix(secs, 0)
	}
	return reg, nil
}
