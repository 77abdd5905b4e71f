package mcpregistry

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// DialFunc is the shape of http.Transport.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// GuardDial wraps dial so that the runtime_upstreams rules also hold for the address
// actually connected to: a host name checked at registration can later resolve
// elsewhere (DNS rebinding, a changed record), so every new connection's remote address
// is checked again, and refused connections are closed before a byte is sent. Dials to
// the host:port of a server declared in the Caddy config are the operator's and pass.
// The gateway and the health checker wrap their transports' dialers with it; a
// connection is checked once, when it is made, not per request.
func (a *App) GuardDial(dial DialFunc) DialFunc {
	rules, trusted := a.RuntimeUpstreams, a.trustedDials
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil || rules == nil || trusted[strings.ToLower(addr)] {
			return conn, err
		}
		host, port, serr := net.SplitHostPort(addr)
		tcp, ok := conn.RemoteAddr().(*net.TCPAddr)
		if serr != nil || !ok {
			return conn, nil // not a TCP dial to host:port (a unix socket, a test pipe)
		}
		ip, _ := netip.AddrFromSlice(tcp.IP)
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		if reason := rules.refuse(host, port, []netip.Addr{ip.Unmap()}); reason != "" {
			conn.Close()
			return nil, fmt.Errorf("connection to %s refused by runtime_upstreams: %s", addr, reason)
		}
		return conn, nil
	}
}

// trustedUpstream reports whether raw points at the host:port of a server declared in
// the config (the operator's own choice, exempt from runtime_upstreams).
func (a *App) trustedUpstream(raw string) bool {
	for target := range trustedDialTargets([]*Server{{Upstream: raw}}) {
		return a.trustedDials[target]
	}
	return false
}

// trustedDialTargets are the host:port dial addresses of the config's own servers.
func trustedDialTargets(declared []*Server) map[string]bool {
	out := map[string]bool{}
	for _, s := range declared {
		u, err := url.Parse(s.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		out[strings.ToLower(net.JoinHostPort(u.Hostname(), port))] = true
	}
	return out
}
