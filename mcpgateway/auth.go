package mcpgateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/access"
	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/jsonrpc"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// AuthConfig turns on authentication and authorization in mcp_gateway (see
// access.Config; mcp_registry_api takes the same block). Absent, the gateway proxies
// every request as before.
type AuthConfig = access.Config

// AuthIssuer is one trusted token issuer (see access.Issuer).
type AuthIssuer = access.Issuer

// AuthAPIKey is one machine key (see access.APIKey).
type AuthAPIKey = access.APIKey

// authState is the gateway's use of an access.Authenticator: JSON-RPC challenges and
// denials on top of the shared authentication.
type authState struct {
	*access.Authenticator
	logger *zap.Logger
}

// provisionAuth builds the auth state. Accepted audiences (for issuers without their
// own list): the resource, and the MCP URL of any server the registry (nil in some
// tests) routes at the time of the request.
func provisionAuth(ctx context.Context, a *AuthConfig, logger *zap.Logger, prefix string, registry *mcpregistry.App) (*authState, error) {
	var mcpURLs func(string) bool
	var local *authn.LocalIssuers
	if registry != nil {
		mcpURLs = registry.MCPAudience(a.Resource, prefix)
		local = registry.LocalIssuers()
	}
	au, err := access.New(ctx, logger, a, mcpURLs, local)
	if err != nil {
		return nil, err
	}
	return &authState{Authenticator: au, logger: logger}, nil
}

// authenticate checks the request's credentials. It answers the request itself (401,
// 503) and returns nil when the request must stop.
func (st *authState) authenticate(w http.ResponseWriter, r *http.Request, server *model.Server, mcpPath string, repl *caddy.Replacer) *principal.Caller {
	composite := server.GatewayTokenHeader == model.GatewayTokenXAuthorization
	p, err := st.Identify(r, composite)
	if err == nil && !st.AudienceAllows(p, st.Resource()+mcpPath) {
		err = &authn.InvalidTokenError{Reason: authn.ReasonWrongAudience}
	}
	if err != nil {
		prm := access.HeaderValue(st.PRMURL(r, mcpPath))
		switch {
		case errors.Is(err, authn.ErrKeysUnavailable):
			st.logger.Warn("token signing keys unavailable", zap.String("server", server.Name), zap.Error(err))
			w.Header().Set("Retry-After", "10")
			writeRPCError(w, http.StatusServiceUnavailable, "", codeAuthUnavailable, "the token issuer's signing keys are unavailable; retry later")
		case errors.Is(err, authn.ErrNoToken):
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+prm+`", scope="`+access.HeaderValue(strings.Join(st.ScopesFor(server.Name), " "))+`"`)
			writeRPCError(w, http.StatusUnauthorized, "", codeUnauthorized, "authentication required: send a bearer token")
		default:
			reason := authn.Reason(err)
			if reason == "" {
				reason = authn.ReasonMalformed
			}
			st.logger.Debug("rejected token", zap.String("server", server.Name), zap.Error(err))
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+access.HeaderValue(reason)+`", resource_metadata="`+prm+`"`)
			writeRPCError(w, http.StatusUnauthorized, "", codeUnauthorized, "invalid token: "+reason)
		}
		return nil
	}
	c := st.Resolve(p)
	repl.Set("http.mcp.auth.subject", p.Subject)
	repl.Set("http.mcp.auth.groups", strings.Join(p.Groups, ","))
	repl.Set("http.mcp.auth.client_id", p.ClientID)
	repl.Set(callerKey, &callerIdentity{issuer: p.Issuer, subject: p.Subject, clientID: p.ClientID, groups: p.Groups})
	// No token passthrough: the gateway's credentials never reach an upstream. In
	// composite mode the client's own Authorization is meant for the upstream.
	if composite {
		r.Header.Del("X-Authorization")
	} else {
		r.Header.Del("Authorization")
	}
	r.Header.Del("X-Api-Key")
	return c
}

// authorize checks every message of an inspected POST body (access.AllowMessage):
// responses to the server's requests and housekeeping need some rule on the server,
// everything else a grant of its method and tool, prompt or resource. It answers 403
// and returns false on the first denied message.
func (st *authState) authorize(w http.ResponseWriter, r *http.Request, c *principal.Caller, server *model.Server, mcpPath string, in *jsonrpc.Inspection) bool {
	for i := range in.Messages {
		m := &in.Messages[i]
		response := m.Kind == jsonrpc.KindResponse
		if st.AllowMessage(c, server.Name, m) {
			continue
		}
		id := m.ID
		if in.Batch {
			id = ""
		}
		if response {
			st.deny(w, r, server, mcpPath, st.ScopesFor(server.Name), id, "this caller may send nothing to MCP server "+quote(server.Name)+", not even a response to its requests")
			return false
		}
		what := "method " + quote(m.Method)
		switch m.Method {
		case "tools/call":
			what = "tool " + quote(m.Name)
		case "prompts/get":
			what = "prompt " + quote(m.Name)
		case "resources/read", "resources/subscribe", "resources/unsubscribe":
			what = m.Method + " of resource " + quote(m.Name)
		case "completion/complete":
			what = "completion of " + quote(m.Name)
		case "subscriptions/listen":
			if len(m.Resources) > 0 {
				what = "subscriptions/listen to resources " + quote(strings.Join(m.Resources, " "))
			}
		}
		st.deny(w, r, server, mcpPath, st.ScopesAllowing(server.Name, m.Method, m.Name), id, what+" on MCP server "+quote(server.Name)+" is not allowed for this caller")
		return false
	}
	return true
}

// allowStream decides a GET or DELETE: allowed if the caller may use the server at all.
func (st *authState) allowStream(w http.ResponseWriter, r *http.Request, c *principal.Caller, server *model.Server, mcpPath string) bool {
	if st.AnyOnServer(c, server.Name) {
		return true
	}
	st.deny(w, r, server, mcpPath, st.ScopesFor(server.Name), "", "MCP server "+quote(server.Name)+" is not allowed for this caller")
	return false
}

// deny answers 403. The step-up challenge (RFC 6750 insufficient_scope) is sent only
// when some scope would cure the denial and names those scopes; a denial nothing cures
// is the JSON-RPC error alone, so clients do not loop asking for an empty scope.
func (st *authState) deny(w http.ResponseWriter, r *http.Request, server *model.Server, mcpPath string, scopes []string, id, msg string) {
	if len(scopes) == 0 {
		writeRPCError(w, http.StatusForbidden, id, codeInsufficientScope, msg+"; no scope of the policy grants it")
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+access.HeaderValue(strings.Join(scopes, " "))+`", resource_metadata="`+access.HeaderValue(st.PRMURL(r, mcpPath))+`"`)
	writeRPCError(w, http.StatusForbidden, id, codeInsufficientScope, msg)
}
