package upstream

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Rules restrict the upstream URLs of servers registered at runtime (the REST
// API, the registry's register_server tool, sync). A registration is a request to make
// the gateway send traffic somewhere, so an unchecked one is a server-side request
// forgery: cloud metadata services hand out instance credentials, and Caddy's own admin
// endpoint reconfigures the server. Servers declared in the Caddy config are the
// operator's own choice and are not checked.
type Rules struct {
	// Schemes are the URL schemes allowed. Default: http and https. Add "builtin" to
	// let callers register in-process servers.
	Schemes []string `json:"schemes,omitempty"`

	// Allow exempts networks (CIDR, e.g. 169.254.10.0/24, or one address) and host
	// names from the blocked ranges, for a service you do mean to register there.
	Allow []string `json:"allow,omitempty"`

	// Deny refuses further networks (CIDR or address) and host names, e.g. a
	// sensitive internal range. An address in Deny is refused even if Allow lists it.
	Deny []string `json:"deny,omitempty"`

	// ResolveTimeout bounds the DNS lookup of an upstream's host name. Default 3s.
	ResolveTimeout caddy.Duration `json:"resolve_timeout,omitempty"`

	allow, deny         []netip.Prefix
	allowHost, denyHost []string
	// listeners returns this process's listening addresses; isLocal says whether an
	// address belongs to this machine. Tests replace them.
	listeners func() *ListenSet
	isLocal   func(netip.Addr) bool
}

// blockedNetworks are refused unless allowed: link-local (where the cloud metadata
// services live, 169.254.169.254 and fd00:ec2::254 included), other metadata
// addresses, unspecified, multicast and broadcast addresses.
var blockedNetworks = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),      // AWS IMDS over IPv6
	netip.MustParsePrefix("100.100.100.200/32"),     // Alibaba Cloud metadata
	netip.MustParsePrefix("0.0.0.0/8"),              // "this host" / unspecified
	netip.MustParsePrefix("::/128"),                 // unspecified
	netip.MustParsePrefix("224.0.0.0/4"),            // multicast
	netip.MustParsePrefix("ff00::/8"),               // multicast
	netip.MustParsePrefix("255.255.255.255/32"),     // broadcast
	netip.MustParsePrefix("64:ff9b::a9fe:a9fe/128"), // NAT64 form of 169.254.169.254
}

// blockedHosts are metadata service names.
var blockedHosts = []string{"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}

// Provision parses the rules and sets defaults. listeners returns the addresses this
// Caddy listens on (admin endpoint, sites), which no upstream may reach whatever
// Allow says.
func (u *Rules) Provision(listeners func() *ListenSet) error {
	if len(u.Schemes) == 0 {
		u.Schemes = []string{"http", "https"}
	}
	for i, sc := range u.Schemes {
		sc = strings.ToLower(sc)
		if sc != "http" && sc != "https" && sc != model.BuiltinScheme {
			return fmt.Errorf("runtime_upstreams: scheme %q is not one of http, https, builtin", sc)
		}
		u.Schemes[i] = sc
	}
	if u.ResolveTimeout <= 0 {
		u.ResolveTimeout = caddy.Duration(3 * time.Second)
	}
	parse := func(list []string, what string) ([]netip.Prefix, []string, error) {
		var nets []netip.Prefix
		var hosts []string
		for _, v := range list {
			v = strings.TrimSpace(v)
			if p, err := netip.ParsePrefix(v); err == nil {
				nets = append(nets, p.Masked())
				continue
			}
			if a, err := netip.ParseAddr(v); err == nil {
				nets = append(nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			if v == "" || strings.ContainsAny(v, "/ :") {
				return nil, nil, fmt.Errorf("runtime_upstreams: %s %q is neither a CIDR, an address nor a host name", what, v)
			}
			hosts = append(hosts, strings.ToLower(strings.TrimSuffix(v, ".")))
		}
		return nets, hosts, nil
	}
	var err error
	if u.allow, u.allowHost, err = parse(u.Allow, "allow"); err != nil {
		return err
	}
	if u.deny, u.denyHost, err = parse(u.Deny, "deny"); err != nil {
		return err
	}
	u.listeners = listeners
	u.isLocal = isLocalAddr
	return nil
}

// Check reports why raw may not be registered at runtime, as a *FieldError on field.
func (u *Rules) Check(ctx context.Context, field, raw string, lookup func(context.Context, string) ([]netip.Addr, error)) error {
	fail := func(format string, args ...any) error {
		return &model.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	parsed, err := url.Parse(raw)
	if err != nil {
		return fail("%q is not a URL", raw)
	}
	scheme := strings.ToLower(parsed.Scheme)
	if !slices.Contains(u.Schemes, scheme) {
		return fail("scheme %q is not allowed for servers registered at runtime (allowed: %s)", parsed.Scheme, strings.Join(u.Schemes, ", "))
	}
	if scheme == model.BuiltinScheme {
		return nil
	}
	host := strings.ToLower(strings.TrimSuffix(parsed.Hostname(), "."))
	port := parsed.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fail("%q names an IPv6 address with a zone (%%%s): zoned addresses reach interface-local networks and are refused", raw, a.Zone())
		}
		addrs = []netip.Addr{a}
	} else if !slices.Contains(u.denyHost, host) && (slices.Contains(u.allowHost, host) || !slices.Contains(blockedHosts, host)) {
		lctx, cancel := context.WithTimeout(ctx, time.Duration(u.ResolveTimeout))
		addrs, err = lookup(lctx, host)
		cancel()
		if err != nil || len(addrs) == 0 {
			return fail("host %q does not resolve, so it cannot be checked; register it once its DNS name exists", host)
		}
	}
	if reason := u.Refuse(host, port, addrs); reason != "" {
		return fail("%s", reason)
	}
	return nil
}

// Refuse says why a connection to host:port at addrs is refused ("" when allowed).
func (u *Rules) Refuse(host, port string, addrs []netip.Addr) string {
	if slices.Contains(u.denyHost, host) {
		return fmt.Sprintf("host %q is denied by runtime_upstreams", host)
	}
	hostAllowed := slices.Contains(u.allowHost, host)
	if !hostAllowed && slices.Contains(blockedHosts, host) {
		return fmt.Sprintf("host %q is a cloud metadata service; registering it needs runtime_upstreams allow %s", host, host)
	}
	portNum, _ := strconv.ParseUint(port, 10, 16)
	var own *ListenSet // looked up once, and only for addresses of this machine
	for _, a := range addrs {
		if a.Zone() != "" {
			return fmt.Sprintf("host %q resolves to the zoned address %s, which is refused", host, a)
		}
		a = a.Unmap()
		if containsAddr(u.deny, a) {
			return fmt.Sprintf("host %q (%s) is in a network denied by runtime_upstreams", host, a)
		}
		if u.listeners != nil && (a.IsLoopback() || a.IsUnspecified() || u.isLocal(a)) {
			if own == nil {
				own = u.listeners()
			}
			if own.reaches(a, uint16(portNum), u.isLocal) {
				return fmt.Sprintf("%s is this Caddy's own listener (its admin endpoint or a site) and can never be an MCP upstream", net.JoinHostPort(host, port))
			}
		}
		if hostAllowed || containsAddr(u.allow, a) {
			continue
		}
		if containsAddr(blockedNetworks, a) {
			return fmt.Sprintf("host %q is %s: link-local, metadata, unspecified and multicast addresses are refused (allow them with runtime_upstreams allow followed by the network in CIDR form)", host, a)
		}
		if a.IsLoopback() {
			return fmt.Sprintf("host %q is the loopback address %s: servers registered at runtime may not reach this machine's own services unless runtime_upstreams allow lists it (e.g. allow 127.0.0.1/32 ::1/128)", host, a)
		}
	}
	return ""
}

func containsAddr(nets []netip.Prefix, a netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve is the default DNS lookup of the upstream checks.
func Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
