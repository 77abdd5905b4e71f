package mcpregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/upstreamoauth"
)

// How the gateway is a client of an upstream's authorization server when the config
// names no client_id: registered dynamically (RFC 7591), once per server and
// authorization server and redirect URI, the result sealed in the vault so every
// instance and restart reuses it; or identified by its own client ID metadata
// document (CIMD), an https URL beside the connect callback that the authorization
// server fetches.

const registrationPurpose = "upstream oauth client registration"

// cimdSuffix replaces the callback's last segment in the client ID metadata
// document's URL: <prefix>/<path>/connect/client-metadata.json.
const cimdSuffix = "/client-metadata.json"

// ClientRecord is a dynamic registration as stored.
type ClientRecord struct {
	Server       string    `json:"server"`
	AuthServer   string    `json:"as"`
	RedirectURI  string    `json:"redirect_uri"`
	RegisteredAt time.Time `json:"registered_at"`
	// Sealed is the JSON of upstreamoauth.Registration, sealed.
	Sealed []byte `json:"sealed"`
}

// registrationCache is a client's dynamic registration in memory. mu is held across
// the registration request so an instance registers once per server; it is taken on
// the connect page and on refresh, never on the hot path.
type registrationCache struct {
	mu          sync.Mutex
	reg         *upstreamoauth.Registration
	authServer  string
	redirectURI string
}

// CIMDClientID is the client_id (the metadata document's URL) the gateway uses for
// redirectURI, its connect callback.
func CIMDClientID(redirectURI string) string {
	return strings.TrimSuffix(redirectURI, "/callback") + cimdSuffix
}

// ClientMetadataDocument returns server's client ID metadata document (registration
// cimd) for the callback the request derived, and its URL; an error when server does
// not use one.
func (a *App) ClientMetadataDocument(server, derivedRedirect string) ([]byte, error) {
	cl := a.upstreamAuth.clients[server]
	if cl == nil || cl.registration != RegistrationCIMD {
		return nil, fmt.Errorf("server %q publishes no client metadata document", server)
	}
	redirect := derivedRedirect
	if cl.redirect != "" {
		redirect = cl.redirect
	}
	meta := upstreamoauth.ClientMetadata(redirect, "caddymcp gateway ("+server+")", strings.Join(cl.scopes, " "), "none")
	return json.Marshal(struct {
		ClientID string `json:"client_id"`
		oauthex.ClientRegistrationMetadata
	}{CIMDClientID(redirect), meta})
}

// clientAuth is how the gateway identifies itself at cl's authorization server ep for
// a connection whose callback is redirectURI. With dynamic registration it registers
// when no stored registration fits (register) or fails (!register).
func (st *upstreamAuthState) clientAuth(ctx context.Context, cl *oauthClient, ep *upstreamoauth.Endpoints, redirectURI string, register bool) (upstreamoauth.ClientAuth, error) {
	switch cl.registration {
	case RegistrationCIMD:
		if !ep.ClientIDMetadataDocuments {
			return upstreamoauth.ClientAuth{}, fmt.Errorf("authorization server %s does not take client ID metadata documents (client_id_metadata_document_supported); use registration dynamic or a pre-registered client_id", ep.Issuer)
		}
		id := CIMDClientID(redirectURI)
		if !strings.HasPrefix(id, "https://") {
			return upstreamoauth.ClientAuth{}, fmt.Errorf("registration cimd needs the gateway reached over https (its client_id would be %s); set redirect_uri or the auth resource to the https origin", id)
		}
		return upstreamoauth.ClientAuth{ClientID: id, Method: "none"}, nil
	case RegistrationDynamic:
		reg, err := st.registration(ctx, cl, ep, redirectURI, register)
		if err != nil {
			return upstreamoauth.ClientAuth{}, err
		}
		return reg.Auth(), nil
	}
	return cl.auth, nil
}

// registration returns cl's dynamic registration at ep: from memory, from the vault,
// or (register) made now. redirectURI "" accepts any stored one (refresh).
func (st *upstreamAuthState) registration(ctx context.Context, cl *oauthClient, ep *upstreamoauth.Endpoints, redirectURI string, register bool) (*upstreamoauth.Registration, error) {
	c := &cl.registered
	c.mu.Lock()
	defer c.mu.Unlock()
	fits := func(as, redirect string) bool {
		return as == ep.Issuer && (redirectURI == "" || redirect == redirectURI)
	}
	if c.reg != nil && fits(c.authServer, c.redirectURI) {
		return c.reg, nil
	}
	rec, err := st.vault.GetClient(cl.server)
	if err != nil && !errors.Is(err, model.ErrNotFound) {
		return nil, err
	}
	if err == nil && fits(rec.AuthServer, rec.RedirectURI) {
		plain, err := st.registrations.Open(cl.server, rec.Sealed)
		if err != nil {
			return nil, fmt.Errorf("the stored registration of %s does not open: %w", cl.server, err)
		}
		reg := new(upstreamoauth.Registration)
		err = json.Unmarshal(plain, reg)
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("the stored registration of %s is corrupt", cl.server)
		}
		if reg.SecretExpiresAt.IsZero() || st.now().Before(reg.SecretExpiresAt) {
			c.reg, c.authServer, c.redirectURI = reg, rec.AuthServer, rec.RedirectURI
			return reg, nil
		}
	}
	if !register {
		return nil, fmt.Errorf("the gateway holds no registration at the authorization server of %s", cl.server)
	}
	if ep.RegistrationEndpoint == "" {
		return nil, fmt.Errorf("authorization server %s offers no dynamic client registration (registration_endpoint); use registration cimd or a pre-registered client_id", ep.Issuer)
	}
	method := "client_secret_basic"
	if len(ep.AuthMethods) > 0 && !containsString(ep.AuthMethods, method) {
		method = "none"
	}
	reg, err := st.fetcher.Register(ctx, ep.RegistrationEndpoint, upstreamoauth.ClientMetadata(redirectURI, "caddymcp gateway ("+cl.server+")", strings.Join(cl.scopes, " "), method))
	if err != nil {
		st.logger.Warn("dynamic client registration failed", zap.String("server", cl.server), zap.Error(err))
		return nil, fmt.Errorf("registering the gateway at %s: %w", ep.Issuer, err)
	}
	plain, err := json.Marshal(reg)
	if err != nil {
		return nil, err
	}
	sealed, err := st.registrations.Seal(cl.server, plain)
	clear(plain)
	if err != nil {
		return nil, err
	}
	if err := st.vault.PutClient(cl.server, &ClientRecord{Server: cl.server, AuthServer: ep.Issuer, RedirectURI: redirectURI, RegisteredAt: st.now(), Sealed: sealed}); err != nil {
		return nil, err
	}
	st.logger.Info("registered the gateway at an upstream authorization server", zap.String("server", cl.server), zap.String("authorization_server", ep.Issuer), zap.String("client_id", reg.ClientID))
	c.reg, c.authServer, c.redirectURI = reg, ep.Issuer, redirectURI
	return reg, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
