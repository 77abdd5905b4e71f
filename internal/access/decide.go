package access

import (
	"strings"

	"github.com/caddymcp/caddymcp/internal/jsonrpc"
	"github.com/caddymcp/caddymcp/internal/principal"
)

// Audience scopes (Config.AudienceScope).
const (
	AudiencePerServer = "per_server"
	AudienceAny       = "any"
)

// Housekeeping reports whether method is one that exposes no server data, allowed to
// any caller with a rule on the server unless the policy is strict (Config.Strict).
func Housekeeping(method string) bool {
	switch method {
	case "initialize", "ping", "logging/setLevel", "server/discover":
		return true
	}
	return strings.HasPrefix(method, "notifications/")
}

// protocolNotification reports whether method is a notification every caller with a
// rule on the server may send even in strict mode: plumbing of calls it may make.
func protocolNotification(method string) bool {
	switch method {
	case "notifications/cancelled", "notifications/progress", "notifications/roots/list_changed":
		return true
	}
	return false
}

// Strict reports whether housekeeping methods need a grant (Config.Strict).
func (st *Authenticator) Strict() bool { return st.strict }

// AllowMessage decides one client message m on server. A response (an answer to the
// server's sampling, elicitation or roots request) and housekeeping need some rule on
// the server; everything else needs a grant of its method, and of every prompt or
// resource it names: completion/complete's reference must be one the caller may get
// or read, and so must each resource a subscriptions/listen subscribes to.
func (st *Authenticator) AllowMessage(c *principal.Caller, server string, m *jsonrpc.Message) bool {
	if m.Kind == jsonrpc.KindResponse {
		return st.AnyOnServer(c, server)
	}
	if protocolNotification(m.Method) || (!st.strict && Housekeeping(m.Method)) {
		if st.AnyOnServer(c, server) {
			return true
		}
	}
	if ok, _ := c.Grant.Allow(server, m.Method, m.Name); !ok {
		return false
	}
	switch m.Ref {
	case jsonrpc.RefPrompt:
		return c.Grant.AllowPrompt(server, m.Name)
	case jsonrpc.RefResource:
		return c.Grant.AllowResource(server, m.Name)
	}
	for _, uri := range m.Resources {
		if !c.Grant.AllowResource(server, uri) {
			return false
		}
	}
	return true
}

// AudienceAllows reports whether the token of p may be used on the resource mcpURL
// (the server's public MCP URL) under Config.AudienceScope. A token from an issuer
// with its own audience list, a token naming the gateway's resource, and API keys are
// accepted on every server; with per_server, a token whose audiences are only other
// servers' MCP URLs is not (RFC 8707: it was issued for those resources).
func (st *Authenticator) AudienceAllows(p *principal.Caller, mcpURL string) bool {
	if !st.perServerAudience || p.Issuer == "" || len(st.globalAudiences[p.Issuer]) > 0 {
		return true
	}
	for _, a := range p.Audiences {
		if a == mcpURL || (st.resource != "" && strings.TrimRight(a, "/") == st.resource) {
			return true
		}
	}
	return false
}
