package mcpgateway

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Headers on the way to an upstream. Both proxy paths (ReverseProxy's Rewrite and the
// hijacked stream's outbound request) call prepareOutbound on their own copy of the
// headers, never on the client's request: Caddy's access log reads that one, and the
// backend credential must not show up there.

// callerKey is the replacer variable under which authenticate leaves the caller's
// identity for prepareOutbound.
const callerKey = "mcp_gateway.caller"

// callerIdentity is the authenticated caller, as forwarded to upstreams that opt in.
type callerIdentity struct {
	issuer, subject, clientID string
	groups                    []string
}

// String keeps the value harmless if someone uses {mcp_gateway.caller} in a log.
func (c *callerIdentity) String() string { return c.subject }

// prepareOutbound finishes the headers h of the request that in is forwarded as:
//  1. the gateway's own token is removed (authenticate already did; this is the
//     backstop), and in composite mode X-Authorization instead of Authorization;
//  2. client-sent identity headers (the default names and the server's own) are
//     removed, and set from the authenticated caller for a server with forward_identity;
//  3. the server's backend credential and extra headers are set, replacing any
//     client-sent value of the same name.
func (g *Gateway) prepareOutbound(in *http.Request, h http.Header) {
	repl, _ := in.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	var server *model.Server
	if repl != nil {
		if name, ok := repl.GetString("http.mcp.server"); ok && g.registry != nil {
			server = g.registry.Server(name)
		}
	}
	if g.auth != nil {
		h.Del("X-Api-Key")
		if server != nil && server.GatewayTokenHeader == model.GatewayTokenXAuthorization {
			h.Del("X-Authorization")
		} else {
			h.Del("Authorization")
		}
	}
	stripMethodOverrides(h)
	// The client's session id is the sealed one; the upstream gets its own back
	// (checkSession unwrapped it, session.go).
	if g.sessions != nil {
		h.Del("Mcp-Session-Id")
		if sid := upstreamSessionOf(in); sid != "" {
			h.Set("Mcp-Session-Id", sid)
		}
	}
	// Client-sent identity headers never pass: the default names always go, a
	// server's own names below.
	h.Del(model.DefaultUserHeader)
	h.Del(model.DefaultGroupsHeader)
	if server == nil {
		delete(h, "Cookie")
		return
	}
	stripClientCredentials(h, "", forwardClientCredentials(server))
	if fi := server.ForwardIdentity; fi != nil {
		h.Del(fi.UserHeader)
		h.Del(fi.GroupsHeader)
		var c *callerIdentity
		if repl != nil {
			v, _ := repl.Get(callerKey)
			c, _ = v.(*callerIdentity)
		}
		if c != nil {
			if c.subject != "" && safeHeaderValue(c.subject) {
				h.Set(fi.UserHeader, c.subject)
			}
			if groups := joinGroups(c.groups); groups != "" {
				h.Set(fi.GroupsHeader, groups)
			}
		}
	}
	for k, v := range g.registry.BackendHeaders(server) {
		h[k] = v[:len(v):len(v)] // shared: capped so an append elsewhere copies
	}
	if server.BackendAuth.Scheme == model.BackendAuthOAuth {
		// Only the token looked up for this caller (upstream_auth.go); the client's
		// own Authorization never passes to an oauth upstream.
		h.Del("Authorization")
		if repl != nil {
			if v, _ := repl.Get(upstreamAuthKey); v != nil {
				if s, ok := v.(upstreamSecret); ok && s != "" {
					h.Set("Authorization", string(s))
				}
			}
		}
	}
}

// joinGroups comma-joins the groups that can travel in a header; a group with a comma
// or a control character is dropped rather than split or mangled.
func joinGroups(groups []string) string {
	var b strings.Builder
	for _, g := range groups {
		if g == "" || strings.IndexByte(g, ',') >= 0 || !safeHeaderValue(g) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(g)
	}
	return b.String()
}

// safeHeaderValue reports whether s has no control characters (CR, LF, NUL, …).
func safeHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
