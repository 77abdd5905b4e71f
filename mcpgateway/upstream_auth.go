package mcpgateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/jsonrpc"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// backend_auth oauth on the hot path: before a request is forwarded, the token the
// upstream gets for this caller is looked up (a cache hit in the registry), and left in
// the replacer for prepareOutbound, which sets it as the upstream's Authorization. A
// caller without one is answered the way MCP provides: URL-mode elicitation
// (URLElicitationRequiredError, -32042) pointing at the connect page when the client
// declared elicitation.url, else a tool error (tools/call) or a JSON-RPC error carrying
// the same link.

// upstreamAuthKey is the replacer variable holding the upstream Authorization value.
const upstreamAuthKey = "mcp_gateway.upstream_authorization"

// upstreamHandshakeKey is set when a handshake of a caller without a token was sent
// upstream without one.
const upstreamHandshakeKey = "mcp_gateway.upstream_handshake"

// isHandshake reports whether in is one initialize or notifications/initialized: they
// carry no user data, and a client needs them answered to get a session at all.
func isHandshake(in *jsonrpc.Inspection) bool {
	if in == nil || in.Batch || len(in.Messages) != 1 {
		return false
	}
	m := in.Messages[0].Method
	return m == "initialize" || m == "notifications/initialized"
}

// upstreamRefusedKey is the replacer variable set when the upstream answered 401 to
// the token the gateway sent for the caller.
const upstreamRefusedKey = "mcp_gateway.upstream_refused"

// errUpstreamRefusedToken: the upstream answered 401 to the caller's upstream token.
// The 401 never reaches the client, which would take it for the gateway's own and try
// to sign in to the gateway again; the caller is answered as an unconnected one.
var errUpstreamRefusedToken = errors.New("the upstream refused the token the gateway sent (401)")

// upstreamRefusedToken returns errUpstreamRefusedToken for a 401 answer to a request
// that carried a backend_auth oauth token.
func upstreamRefusedToken(res *http.Response) error {
	if res.StatusCode != http.StatusUnauthorized || res.Request == nil {
		return nil
	}
	repl, _ := res.Request.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return nil
	}
	if v, _ := repl.Get(upstreamAuthKey); v == nil {
		return nil
	}
	return errUpstreamRefusedToken
}

// answerUpstreamRefused forgets the token the upstream refused and answers the caller:
// a per-user connection is gone, so like a user who never connected (elicitation or
// the link); a machine or exchanged token is fetched again on the next call.
func (g *Gateway) answerUpstreamRefused(w http.ResponseWriter, r *http.Request, caller *principal.Caller, server *model.Server, segment, subjectToken string, in *jsonrpc.Inspection, body []byte) {
	uc := mcpregistry.UpstreamCaller{Token: subjectToken}
	if caller != nil {
		uc.Issuer, uc.Subject = caller.Issuer, caller.Subject
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return
	}
	if v, _ := repl.Get(upstreamHandshakeKey); v == true {
		// A handshake sent without a token: the upstream wants one from the start.
		g.answerConnectRequired(w, r, server, segment, uc, "you have not connected your account at "+server.Name+" yet", in, body)
		return
	}
	g.registry.ForgetUpstreamToken(server.Name, uc)
	g.logger.Warn("the upstream refused the caller's token; forgotten", zap.String("server", server.Name), zap.String("user", uc.Subject))
	if g.registry.UpstreamGrant(server.Name) == mcpregistry.OAuthGrantAuthorizationCode {
		g.answerConnectRequired(w, r, server, segment, uc, "your authorization at "+server.Name+" was revoked or has expired", in, body)
		return
	}
	w.Header().Set("Retry-After", "1")
	writeRPCError(w, http.StatusBadGateway, firstID(in), codeUpstreamAuthFailed, "MCP server "+quote(server.Name)+" refused the gateway's token for you; retry")
}

// retryAfterRefresh is asked when the upstream refused the caller's stored token (401)
// before the token expired. When a refresh renews it, the request is made ready to be
// sent once more (the new token in place, its inspected body rewound) and true
// returned; the second refusal, if any, is answered as refused.
func (g *Gateway) retryAfterRefresh(r *http.Request, repl *caddy.Replacer, caller *principal.Caller, server *model.Server, body []byte) bool {
	if caller == nil || g.registry.UpstreamGrant(server.Name) != mcpregistry.OAuthGrantAuthorizationCode {
		return false
	}
	if v, _ := repl.Get(upstreamHandshakeKey); v == true {
		return false // sent without a token: nothing to refresh
	}
	if r.Method == http.MethodPost && body == nil {
		return false // a body the gateway does not hold cannot be sent again
	}
	sent, _ := repl.Get(upstreamAuthKey)
	uc := mcpregistry.UpstreamCaller{Issuer: caller.Issuer, Subject: caller.Subject}
	if s, _ := sent.(upstreamSecret); !g.registry.RefreshRefusedToken(r.Context(), server, uc, string(s)) {
		return false
	}
	v, err := g.registry.UpstreamAuthorization(r.Context(), server, uc)
	if err != nil {
		return false
	}
	repl.Set(upstreamAuthKey, upstreamSecret(v))
	repl.Set(upstreamRefusedKey, false)
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return true
}

// codeURLElicitationRequired is MCP's URLElicitationRequiredError (2025-11-25).
const codeURLElicitationRequired = -32042

// upstreamSecret keeps the value harmless if someone puts the variable in a log.
type upstreamSecret string

func (upstreamSecret) String() string { return "[REDACTED]" }

// elicitCaps remembers, per caller and server, whether the client declared URL-mode
// elicitation in its last initialize, for the requests after it (which do not repeat
// capabilities).
type elicitCaps struct{ m sync.Map } // capKey → bool

type capKey struct{ issuer, subject, server string }

// subjectTokenOf is the caller's bearer token as sent, for a token exchange.
func subjectTokenOf(r *http.Request, server *model.Server) string {
	h := r.Header.Get("Authorization")
	if server.GatewayTokenHeader == model.GatewayTokenXAuthorization {
		h = r.Header.Get("X-Authorization")
	}
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// upstreamAuthorization finds the caller's upstream token for server and leaves it
// for prepareOutbound. It answers the request itself and returns false when there is
// none (or it cannot be had now). in is the inspected POST body (nil for GET/DELETE).
func (g *Gateway) upstreamAuthorization(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, caller *principal.Caller, server *model.Server, segment, subjectToken string, in *jsonrpc.Inspection, body []byte) bool {
	grant := g.registry.UpstreamGrant(server.Name)
	if grant == "" {
		writeRPCError(w, http.StatusBadGateway, firstID(in), codeUpstreamAuthFailed, "MCP server "+quote(server.Name)+" has backend_auth oauth but no OAuth client in the config")
		return false
	}
	if caller == nil && grant != mcpregistry.OAuthGrantClientCredentials {
		writeRPCError(w, http.StatusBadGateway, firstID(in), codeUpstreamAuthFailed, "MCP server "+quote(server.Name)+" takes each caller's own authorization, which needs the gateway's auth")
		return false
	}
	uc := mcpregistry.UpstreamCaller{Token: subjectToken}
	if caller != nil {
		uc.Issuer, uc.Subject = caller.Issuer, caller.Subject
	}
	if in != nil && grant == mcpregistry.OAuthGrantAuthorizationCode && len(in.Messages) > 0 && in.Messages[0].Method == "initialize" {
		// Later requests of the session do not repeat the capabilities.
		g.caps.m.Store(capKey{uc.Issuer, uc.Subject, server.Name}, declaresURLElicitation(body))
	}
	v, err := g.registry.UpstreamAuthorization(r.Context(), server, uc)
	if err == nil {
		repl.Set(upstreamAuthKey, upstreamSecret(v))
		return true
	}
	var cr *mcpregistry.ConnectRequiredError
	if errors.As(err, &cr) && grant == mcpregistry.OAuthGrantAuthorizationCode && isHandshake(in) {
		// The handshake goes to the upstream without a token, so that a client gets its
		// session where the upstream allows that; the first call that needs the user's
		// token elicits. An upstream that refuses it (401) gets the elicitation answer
		// here instead (answerUpstreamRefused).
		repl.Set(upstreamAuthKey, upstreamSecret(""))
		repl.Set(upstreamHandshakeKey, true)
		return true
	}
	var refused *mcpregistry.ExchangeRefusedError
	if errors.As(err, &refused) {
		writeRPCError(w, http.StatusForbidden, firstID(in), codeExchangeRefused, "the authorization server of MCP server "+quote(server.Name)+
			" does not accept your identity for it (token exchange refused: "+refused.Reason+"); ask its administrators to trust your sign-in")
		return false
	}
	if !errors.As(err, &cr) {
		g.logger.Warn("no upstream token", zap.String("server", server.Name), zap.String("user", uc.Subject), zap.Error(err))
		w.Header().Set("Retry-After", "10")
		writeRPCError(w, http.StatusBadGateway, firstID(in), codeUpstreamAuthFailed, "the gateway cannot obtain its authorization at MCP server "+quote(server.Name)+" right now; retry later")
		return false
	}
	g.answerConnectRequired(w, r, server, segment, uc, cr.Reason, in, body)
	return false
}

// answerConnectRequired tells the caller to connect their account at server.
func (g *Gateway) answerConnectRequired(w http.ResponseWriter, r *http.Request, server *model.Server, segment string, c mcpregistry.UpstreamCaller, reason string, in *jsonrpc.Inspection, body []byte) {
	id := firstID(in)
	if _, ok := g.signInOf(c.Issuer); !ok {
		writeRPCError(w, http.StatusForbidden, id, codeConnectRequired, "MCP server "+quote(server.Name)+" needs your own authorization at its service: "+externalIssuerConnect)
		return
	}
	link, eid, err := g.registry.NewConnectLink(server.Name, c.Issuer, c.Subject)
	if err != nil {
		g.logger.Error("making a connect link", zap.String("server", server.Name), zap.Error(err))
		writeRPCError(w, http.StatusInternalServerError, id, codeUpstreamAuthFailed, "the gateway cannot make a connect link for MCP server "+quote(server.Name))
		return
	}
	u := g.connectURL(r, segment, link)
	msg := "Connect your account at " + server.Name + " to use it through the gateway (" + reason + ")."
	method := ""
	if in != nil && len(in.Messages) > 0 && !in.Batch {
		method = in.Messages[0].Method
	}
	urlMode := body != nil && declaresURLElicitation(body)
	if v, ok := g.caps.m.Load(capKey{c.Issuer, c.Subject, server.Name}); ok && !urlMode {
		urlMode = v.(bool)
	}
	noteRPCError(w, codeConnectRequired)
	switch {
	case id != "" && urlMode && r.Header.Get("Mcp-Protocol-Version") >= "2026-07-28" &&
		(method == "tools/call" || method == "resources/read" || method == "prompts/get"):
		// 2026-07-28: the input-required result (multi round-trip requests) carrying a
		// URL-mode elicitation; the client retries the request once the user connected.
		writeJSONRPC(w, id, "result", map[string]any{
			"resultType": "input_required",
			"inputRequests": map[string]any{"connect": map[string]any{
				"method": "elicitation/create",
				"params": map[string]string{"mode": "url", "elicitationId": eid, "url": u, "message": msg},
			}},
		})
	case id != "" && urlMode:
		type elicitation struct {
			Mode          string `json:"mode"`
			ElicitationID string `json:"elicitationId"`
			URL           string `json:"url"`
			Message       string `json:"message"`
		}
		writeJSONRPC(w, id, "error", map[string]any{
			"code": codeURLElicitationRequired, "message": msg,
			"data": map[string]any{"elicitations": []elicitation{{Mode: "url", ElicitationID: eid, URL: u, Message: msg}}},
		})
	case id != "" && method == "tools/call":
		writeJSONRPC(w, id, "result", map[string]any{
			"content": []map[string]string{{"type": "text", "text": msg + " Open " + u + " then call the tool again."}},
			"isError": true,
		})
	default:
		writeRPCError(w, http.StatusForbidden, id, codeConnectRequired, msg+" Open "+u+" then retry.")
	}
}

// writeJSONRPC answers 200 with one JSON-RPC response whose member is result or error.
func writeJSONRPC(w http.ResponseWriter, id, member string, v any) {
	inner, err := json.Marshal(v)
	if err != nil {
		writeRPCError(w, http.StatusInternalServerError, id, jsonrpc.CodeInternalError, "encoding the answer failed")
		return
	}
	body := make([]byte, 0, len(inner)+len(id)+40)
	body = append(body, `{"jsonrpc":"2.0","id":`...)
	body = append(body, id...)
	body = append(body, `,"`...)
	body = append(body, member...)
	body = append(body, `":`...)
	body = append(body, inner...)
	body = append(body, '}')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// firstID is the id of the single request in, or "" (batches, notifications, GET).
func firstID(in *jsonrpc.Inspection) string {
	if in == nil || in.Batch || len(in.Messages) == 0 || in.Messages[0].Kind != jsonrpc.KindRequest {
		return ""
	}
	return in.Messages[0].ID
}

// declaresURLElicitation reports whether a request body declares the client's
// capability elicitation.url: in initialize's params.capabilities (2025-11-25), or in
// the per-request params._meta client capabilities (2026-07-28).
func declaresURLElicitation(body []byte) bool {
	type caps struct {
		Elicitation map[string]json.RawMessage `json:"elicitation"`
	}
	var m struct {
		Params struct {
			Capabilities caps `json:"capabilities"`
			Meta         struct {
				Capabilities caps `json:"io.modelcontextprotocol/clientCapabilities"`
			} `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	_, ok := m.Params.Capabilities.Elicitation["url"]
	_, ok2 := m.Params.Meta.Capabilities.Elicitation["url"]
	return ok || ok2
}
