package mcpregistry

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// A backend credential is sealed together with the upstream origin (scheme, host and
// port) it was given for, and is sent only to that origin. Whoever may edit a server
// could otherwise point it at a host of their own and receive the stored secret with
// the next health check or proxied request; a credential whose server now points
// elsewhere is suspended until someone allowed to set credentials confirms it for the
// new origin (ConfirmCredential, or a new credential).

// boundHeaders are a server's decrypted backend headers and the origin they are for.
type boundHeaders struct {
	origin  string
	headers http.Header
}

// upstreamOrigin is the origin a credential for upstream is bound to:
// "scheme://host:port" in lower case with the default port made explicit, or the
// upstream itself when it is not an http(s) URL (builtin:…).
func upstreamOrigin(upstream string) string {
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return upstream
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// sameOrigin reports whether upstream is at origin (as upstreamOrigin makes it). It
// does not allocate: the gateway asks on every request.
func sameOrigin(upstream, origin string) bool {
	scheme, rest, ok := strings.Cut(upstream, "://")
	if !ok {
		return upstream == origin
	}
	oScheme, oRest, ok := strings.Cut(origin, "://")
	if !ok || !strings.EqualFold(scheme, oScheme) {
		return false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	host, port := splitAuthority(rest)
	if port == "" {
		port = defaultPort(strings.ToLower(scheme))
	}
	oHost, oPort := splitAuthority(oRest)
	return port == oPort && strings.EqualFold(host, oHost)
}

// splitAuthority splits host[:port] ("[::1]:80", "h", "h:8080") without allocating.
func splitAuthority(a string) (host, port string) {
	colon := strings.LastIndexByte(a, ':')
	if colon < 0 || colon < strings.LastIndexByte(a, ']') {
		return a, ""
	}
	return a[:colon], a[colon+1:]
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}
