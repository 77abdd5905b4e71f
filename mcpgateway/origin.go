package mcpgateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// hostPolicy decides which Host headers and Origin headers the gateway accepts. MCP
// servers must validate Origin to stop DNS rebinding; because the gateway rewrites Host
// for its upstreams, the upstreams' own checks no longer see the client's Host, so the
// gateway checks it.
type hostPolicy struct {
	hosts   []string // exact host names, "*.suffix" wildcards, or "*"
	origins []string // exact origins (scheme://host[:port]) or "*"
}

// allowHost reports whether a request with this Host header, received on a connection
// whose local address is local, may proceed. With no configured hosts, a request that
// arrived on a loopback address must name a loopback host (what a DNS-rebinding page
// cannot do); requests on other addresses pass.
func (p *hostPolicy) allowHost(host string, local net.Addr) bool {
	name := hostname(host)
	if len(p.hosts) > 0 {
		for _, h := range p.hosts {
			if h == "*" || strings.EqualFold(h, name) ||
				(strings.HasPrefix(h, "*.") && len(name) > len(h)-1 && strings.EqualFold(name[len(name)-len(h)+1:], h[1:])) {
				return true
			}
		}
		return isLoopbackName(name) && isLoopbackAddr(local)
	}
	if !isLoopbackAddr(local) {
		return true
	}
	return isLoopbackName(name)
}

// allowOrigin reports whether a request carrying Origin origin to Host host may proceed.
// Requests without Origin (non-browser clients) pass; a browser's same-origin request
// passes once its Host was accepted; other origins must be listed.
func (p *hostPolicy) allowOrigin(origin, host string) bool {
	if origin == "" {
		return true
	}
	for _, o := range p.origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	_, rest, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(rest, host)
}

func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func isLoopbackName(name string) bool {
	if strings.EqualFold(name, "localhost") || strings.HasSuffix(strings.ToLower(name), ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(name)
	return err == nil && ip.IsLoopback()
}

func isLoopbackAddr(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case nil:
		return false
	default:
		ip, err := netip.ParseAddr(hostname(a.String()))
		return err == nil && ip.IsLoopback()
	}
}

func localAddr(r *http.Request) net.Addr {
	a, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return a
}
