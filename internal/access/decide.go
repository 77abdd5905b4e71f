package access

import "strings"

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

// AllowMessage decides one client message (kind: "request", "notification" or
// "response") naming method and name (tool, prompt or resource URI) on server. A
// response (an answer to the server's sampling, elicitation or roots request) and
// housekeeping need some rule on the server; everything else needs a grant.
func (st *Authenticator) AllowMessage(c *Caller, server, method, name string, response bool) bool {
	if response {
		return st.AnyOnServer(c, server)
	}
	if protocolNotification(method) || (!st.strict && Housekeeping(method)) {
		if st.AnyOnServer(c, server) {
			return true
		}
	}
	ok, _ := c.Grant.Allow(server, method, name)
	return ok
}
