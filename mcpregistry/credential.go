package mcpregistry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// ErrConfigManaged is matched (errors.Is) when a runtime write targets something the
// Caddy config owns: the next config load would silently undo it.
var ErrConfigManaged = errors.New("managed by the Caddy config")

// Credential is a backend credential given at runtime (REST API): the secret of the
// server's backend_auth (a bearer token or an API key) and extra headers. It is
// write-only: sealed at once, never returned.
type Credential struct {
	// Value is the bearer token (backend_auth bearer) or API key (backend_auth api_key).
	Value string `json:"value,omitempty"`
	// Headers are extra headers sent to the upstream, values secret too.
	Headers map[string]string `json:"headers,omitempty"`
}

// errNoEncryptionKey refuses a runtime credential the registry could not seal.
var errNoEncryptionKey = &model.FieldError{Field: "credential", Reason: "the registry has no encryption_key, and credentials are only stored encrypted: set encryption_key in the mcp_registry options"}

// Limits on a runtime credential.
const (
	maxCredentialHeaders = 32
	maxCredentialBytes   = 8 << 10
)

// plain validates c against auth and returns what is sealed. Errors are *FieldError
// under "credential".
func (c *Credential) plain(auth model.BackendAuth) (*credentialPlain, error) {
	p := &credentialPlain{Scheme: auth.Scheme, Header: auth.Header, Value: c.Value}
	switch auth.Scheme {
	case model.BackendAuthBearer, model.BackendAuthAPIKey:
		if c.Value == "" {
			return nil, &model.FieldError{Field: "credential.value", Reason: fmt.Sprintf("required: backend_auth %s sends it to the upstream", auth.Scheme)}
		}
	default:
		if c.Value != "" {
			return nil, &model.FieldError{Field: "credential.value", Reason: "backend_auth is none, so there is nothing to send it in: set backend_auth bearer, or api_key with a header"}
		}
	}
	if len(c.Value) > maxCredentialBytes || !validHeaderValue(c.Value) {
		return nil, &model.FieldError{Field: "credential.value", Reason: fmt.Sprintf("must be at most %d bytes without control characters", maxCredentialBytes)}
	}
	if len(c.Headers) > maxCredentialHeaders {
		return nil, &model.FieldError{Field: "credential.headers", Reason: fmt.Sprintf("at most %d headers", maxCredentialHeaders)}
	}
	if len(c.Headers) > 0 {
		p.Headers = make(map[string]string, len(c.Headers))
	}
	for name, v := range c.Headers {
		canon := http.CanonicalHeaderKey(name)
		switch {
		case !model.ValidHeaderName(name):
			return nil, &model.FieldError{Field: "credential.headers", Reason: fmt.Sprintf("%q is not a valid header name", name)}
		case hopOrProtocolHeader(canon):
			return nil, &model.FieldError{Field: "credential.headers", Reason: fmt.Sprintf("%s is set by the gateway and cannot be a backend header", canon)}
		case len(v) > maxCredentialBytes || !validHeaderValue(v):
			return nil, &model.FieldError{Field: "credential.headers", Reason: fmt.Sprintf("the value of %s must be at most %d bytes without control characters", canon, maxCredentialBytes)}
		}
		p.Headers[canon] = v
	}
	if len(p.Headers) == 0 && p.Value == "" {
		return nil, nil
	}
	return p, nil
}

// hopOrProtocolHeader are headers a backend credential must not override: the proxy
// and the MCP transport own them.
func hopOrProtocolHeader(canon string) bool {
	switch canon {
	case "Host", "Content-Length", "Content-Type", "Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer",
		"Accept", "Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name", "Last-Event-Id":
		return true
	}
	return false
}

// SetCredential replaces (c nil: removes) the backend credential of the named runtime
// server: sealed with the registry's encryption key in one store transaction, then used
// by every request that starts after it returns. It does not change the server record
// or its revision (credentials live apart from records; see credentials.go). Errors:
// ErrNotFound, ErrConfigManaged for servers of the Caddy config, *FieldError for a bad
// credential or when the registry has no encryption_key.
func (a *App) SetCredential(ctx context.Context, name string, c *Credential) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cur := a.Server(name)
	if cur == nil {
		return model.ErrNotFound
	}
	if cur.Source == model.SourceConfig {
		return fmt.Errorf("server %q: its credential is %w (backend_credential)", name, ErrConfigManaged)
	}
	cw, err := a.sealCredential(cur, c)
	if err != nil {
		return err
	}
	err = a.store.Batch(func(tx store.Tx) error {
		s, err := tx.Get(name)
		if err != nil {
			return err
		}
		if s.BackendAuth != cur.BackendAuth || upstreamOrigin(s.Upstream) != upstreamOrigin(cur.Upstream) {
			// The record changed under us: what we validated and bound it to is gone.
			return &model.RevisionMismatchError{Name: name, Expected: cur.Revision, Current: s.Revision}
		}
		if cw.sealed == nil {
			return tx.DeleteCredential(name)
		}
		return tx.PutCredential(name, cw.sealed)
	})
	if err != nil {
		return err
	}
	a.setCredential(name, cw.bound)
	what := "backend credential replaced"
	if cw.sealed == nil {
		what = "backend credential removed"
	}
	a.logger.Info(what, actor(ctx), zap.String("server", name))
	return nil
}

// HasCredential reports whether the named server has a backend credential, in use or
// suspended.
func (a *App) HasCredential(name string) bool {
	a.creds.mu.RLock()
	defer a.creds.mu.RUnlock()
	return a.creds.headers[name].headers != nil
}

// CredentialSuspended reports whether s has a backend credential that was given for
// another upstream origin than s's: it is not sent until confirmed.
func (a *App) CredentialSuspended(s *model.Server) bool {
	return a.HasCredential(s.Name) && a.BackendHeaders(s) == nil
}

// ConfirmCredential binds the named server's suspended backend credential to its
// current upstream origin, so the gateway and the health checker send it there: the
// step that someone allowed to set credentials takes after the upstream moved. It
// is a no-op for a credential already bound there. Errors: ErrNotFound (no server, or
// no credential), ErrConfigManaged for config servers (their credential follows the
// config), and the store's.
func (a *App) ConfirmCredential(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cur := a.Server(name)
	if cur == nil {
		return model.ErrNotFound
	}
	if cur.Source == model.SourceConfig {
		return fmt.Errorf("server %q: its credential is %w (backend_credential)", name, ErrConfigManaged)
	}
	if a.creds.keys == nil {
		return errNoEncryptionKey
	}
	origin := upstreamOrigin(cur.Upstream)
	var bound boundHeaders
	err := a.store.Batch(func(tx store.Tx) error {
		s, err := tx.Get(name)
		if err != nil {
			return err
		}
		if s.Upstream != cur.Upstream {
			return &model.RevisionMismatchError{Name: name, Expected: cur.Revision, Current: s.Revision}
		}
		raw, err := tx.GetCredential(name)
		if err != nil {
			return err
		}
		c, _, err := a.creds.keys.open(name, raw)
		if err != nil {
			return err
		}
		c.Origin = origin
		sealed, err := a.creds.keys.seal(name, c)
		if err != nil {
			return err
		}
		bound = c.bound()
		return tx.PutCredential(name, sealed)
	})
	if err != nil {
		return err
	}
	a.setCredential(name, bound)
	a.logger.Info("backend credential confirmed for the server's upstream", actor(ctx), zap.String("server", name),
		zap.String("origin", origin))
	if cur.Enabled {
		a.kickHealth(name)
	}
	return nil
}

// PutWithCredential is Put that, when setCred, also replaces the server's backend
// credential (c nil or empty: removes it) in the same store transaction.
func (a *App) PutWithCredential(ctx context.Context, s *model.Server, expectedRevision uint64, c *Credential, setCred bool) (*model.Server, error) {
	if !setCred {
		return a.Put(ctx, s, expectedRevision)
	}
	return a.put(ctx, s, expectedRevision, func(rec *model.Server) (*credentialWrite, error) {
		return a.sealCredential(rec, c)
	})
}

// sealCredential validates c against rec's backend_auth and seals it for rec.Name.
func (a *App) sealCredential(rec *model.Server, c *Credential) (*credentialWrite, error) {
	if c == nil {
		return &credentialWrite{}, nil
	}
	p, err := c.plain(rec.BackendAuth)
	if err != nil || p == nil {
		return &credentialWrite{}, err
	}
	p.Origin = upstreamOrigin(rec.Upstream)
	if a.creds.keys == nil {
		return nil, errNoEncryptionKey
	}
	sealed, err := a.creds.keys.seal(rec.Name, p)
	if err != nil {
		return nil, err
	}
	return &credentialWrite{sealed: sealed, bound: p.bound()}, nil
}

// CanList reports whether the context's caller may list s.
func (a *App) CanList(ctx context.Context, s *model.Server) bool {
	return Allowed(ctx, policy.ListService, s.Name)
}
