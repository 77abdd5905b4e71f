package registryapi

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/access"
	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

// provisionAuth sets up the REST API's authentication from h.Auth; the accepted
// audiences are the resource and the MCP URLs of the servers, as in mcp_gateway, so
// one token serves both.
func (h *RegistryAPI) provisionAuth(ctx context.Context) error {
	if h.Auth == nil {
		return nil
	}
	au, err := access.New(ctx, h.logger, h.Auth, h.app.MCPAudience(h.Auth.Resource, h.GatewayPrefix), h.app.LocalIssuers())
	if err != nil {
		return err
	}
	h.auth = au
	return nil
}

// authenticate finds the caller of a REST request and puts it in the returned context
// (principal.Caller). Without auth configured the caller is anonymous: no caller in the
// context, reads allowed, writes only with anonymous_writes. It answers 401/503 itself
// and returns ok=false when the request must stop.
func (h *RegistryAPI) authenticate(w http.ResponseWriter, r *http.Request) (context.Context, bool) {
	if h.auth == nil {
		return r.Context(), true
	}
	p, err := h.auth.Identify(r, false)
	if err != nil {
		prm := access.HeaderValue(h.auth.PRMURL(r, ""))
		switch {
		case errors.Is(err, authn.ErrKeysUnavailable):
			h.logger.Warn("token signing keys unavailable", zap.Error(err))
			w.Header().Set("Retry-After", "10")
			restError(w, http.StatusServiceUnavailable, "unavailable", "", "the token issuer's signing keys are unavailable; retry later")
		case errors.Is(err, authn.ErrNoToken):
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+prm+`"`)
			restError(w, http.StatusUnauthorized, "unauthorized", "", "authentication required: send a bearer token (Authorization: Bearer …) or an API key (X-API-Key)")
		default:
			reason := authn.Reason(err)
			if reason == "" {
				reason = authn.ReasonMalformed
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+access.HeaderValue(reason)+`", resource_metadata="`+prm+`"`)
			restError(w, http.StatusUnauthorized, "unauthorized", "", "invalid token: "+reason)
		}
		return nil, false
	}
	return principal.WithCaller(r.Context(), h.auth.Resolve(p)), true
}

// callerMay reports whether the context's caller holds perm on server. Anonymous
// callers (no auth configured) may read; they may change things only with
// anonymous_writes.
func (h *RegistryAPI) callerMay(ctx context.Context, perm policy.UIPermission, server string) bool {
	if _, ok := principal.FromContext(ctx); !ok && h.auth == nil && perm != policy.ListService {
		return h.AnonymousWrites
	}
	return mcpregistry.Allowed(ctx, perm, server)
}

// deniedMessage explains a 403.
func (h *RegistryAPI) deniedMessage(ctx context.Context, perm policy.UIPermission, server string) string {
	if _, ok := principal.FromContext(ctx); !ok && h.auth == nil {
		return "the registry API has no auth configured, so it is read-only; configure auth in mcp_registry_api (or anonymous_writes for a local setup)"
	}
	return mcpregistry.DeniedError(perm, server).Error()
}
