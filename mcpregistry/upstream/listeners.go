package upstream

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ListenSet is the set of TCP addresses this Caddy accepts connections on: its admin
// endpoint wherever it is configured, and every listener of its HTTP servers. An
// upstream that reaches one of them makes the gateway call itself, so a user allowed
// to register servers could drive the admin API (stop Caddy, load a config) through the
// health checker or the proxy.
type ListenSet struct {
	exact   map[netip.AddrPort]bool
	anyAddr map[uint16]bool // wildcard listeners (0.0.0.0, ::, no host): every local address at that port
}

func newListenSet() *ListenSet {
	return &ListenSet{exact: map[netip.AddrPort]bool{}, anyAddr: map[uint16]bool{}}
}

// reaches reports whether a connection to a:port lands on one of the listeners. A
// wildcard listener answers on every address of this machine; local decides whether a
// is one.
func (l *ListenSet) reaches(a netip.Addr, port uint16, local func(netip.Addr) bool) bool {
	a = a.Unmap().WithZone("")
	if l.exact[netip.AddrPortFrom(a, port)] {
		return true
	}
	return l.anyAddr[port] && (a.IsLoopback() || a.IsUnspecified() || local(a))
}

// addNetworkAddress adds a Caddy listen address ("localhost:2019", ":443",
// "10.0.0.1:8000-8010", "tcp6/[::1]:2019"). Host names count with every address they
// resolve to; unix sockets and other non-IP networks cannot be dialled by an http(s)
// upstream and are left out.
func (l *ListenSet) addNetworkAddress(ctx context.Context, raw string, resolve func(context.Context, string) ([]netip.Addr, error)) {
	na, err := caddy.ParseNetworkAddress(raw)
	if err != nil || na.IsUnixNetwork() || na.IsFdNetwork() {
		return
	}
	var addrs []netip.Addr
	switch a, err := netip.ParseAddr(na.Host); {
	case na.Host == "":
	case err == nil:
		addrs = []netip.Addr{a}
	default:
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		addrs, _ = resolve(rctx, na.Host)
		cancel()
		if na.Host == "localhost" || len(addrs) == 0 {
			addrs = append(addrs, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback())
		}
	}
	for p := na.StartPort; p <= na.EndPort && p <= 65535; p++ {
		if len(addrs) == 0 {
			l.anyAddr[uint16(p)] = true
		}
		for _, a := range addrs {
			if a = a.Unmap().WithZone(""); a.IsUnspecified() {
				l.anyAddr[uint16(p)] = true
			} else {
				l.exact[netip.AddrPortFrom(a, uint16(p))] = true
			}
		}
	}
}

// ListenersAt returns the listener set of fixed Caddy listen addresses, for rules
// provisioned outside a running config.
func ListenersAt(addrs ...string) func() *ListenSet {
	return func() *ListenSet {
		l := newListenSet()
		for _, a := range addrs {
			l.addNetworkAddress(context.Background(), a, Resolve)
		}
		return l
	}
}

// CaddyListeners collects the listen addresses of the config ctx belongs to: the admin
// endpoint (local and remote) and every server of the http app. It runs once the apps
// are provisioned (they are when any app starts).
func CaddyListeners(ctx caddy.Context, resolve func(context.Context, string) ([]netip.Addr, error)) *ListenSet {
	l := newListenSet()
	for _, addr := range adminListenAddrs(ctx) {
		l.addNetworkAddress(ctx, addr, resolve)
	}
	if app, err := ctx.AppIfConfigured("http"); err == nil {
		if httpApp, ok := app.(*caddyhttp.App); ok {
			for _, srv := range httpApp.Servers {
				for _, addr := range srv.Listen {
					l.addNetworkAddress(ctx, addr, resolve)
				}
			}
		}
	}
	return l
}

// adminListenAddrs returns where this config's admin endpoint listens. Caddy keeps the
// running config's admin settings to itself, so they are read from the context's
// config by reflection; TestAdminListenAddrs pins the layout it relies on. With no
// admin config, the endpoint is at DefaultAdminListen.
func adminListenAddrs(ctx caddy.Context) []string {
	cfg := reflect.ValueOf(ctx).FieldByName("cfg")
	if !cfg.IsValid() || cfg.Kind() != reflect.Pointer || cfg.IsNil() {
		return []string{caddy.DefaultAdminListen}
	}
	admin := cfg.Elem().FieldByName("Admin")
	if !admin.IsValid() || admin.IsNil() {
		return []string{caddy.DefaultAdminListen}
	}
	admin = admin.Elem()
	if admin.FieldByName("Disabled").Bool() {
		return nil
	}
	out := []string{caddy.DefaultAdminListen}
	if listen := admin.FieldByName("Listen").String(); listen != "" {
		out[0] = listen
	}
	if remote := admin.FieldByName("Remote"); remote.IsValid() && !remote.IsNil() {
		listen := remote.Elem().FieldByName("Listen").String()
		if listen == "" {
			listen = caddy.DefaultRemoteAdminListen
		}
		out = append(out, listen)
	}
	return out
}

// isLocalAddr reports whether a is an address of one of this machine's interfaces.
func isLocalAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: treat as local, so a wildcard listener is refused
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap() == a {
			return true
		}
	}
	return false
}
