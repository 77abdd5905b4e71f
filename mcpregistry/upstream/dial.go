package upstream

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// DialFunc is the shape of http.Transport.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Guard wraps dial so that rules also hold for the address
// actually connected to: a host name checked at registration can later resolve
// elsewhere (DNS rebinding, a changed record), so every new connection's remote address
// is checked again, and refused connections are closed before a byte is sent. Dials to
// a host:port in trusted (those of the servers declared in the Caddy config: the
// operator's own) pass. A connection is checked once, when it is made, not per request.
func Guard(rules *Rules, trusted map[string]bool, dial DialFunc) DialFunc {
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
		if reason := rules.Refuse(host, port, []netip.Addr{ip.Unmap()}); reason != "" {
			conn.Close()
			return nil, fmt.Errorf("connection to %s refused by runtime_upstreams: %s", addr, reason)
		}
		return conn, nil
	}
}

// TrustedTargets are the host:port dial addresses of the config's own servers.
func TrustedTargets(declared []*model.Server) map[string]bool {
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
