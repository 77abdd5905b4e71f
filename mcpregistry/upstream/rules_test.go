package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/caddyserver/caddy/v2"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func TestUpstreamRules(t *testing.T) {
	dns := map[string][]string{
		"mcp.internal.example": {"10.1.2.3"},
		"rebind.example":       {"10.1.2.3", "169.254.169.254"},
		"v6meta.example":       {"fd00:ec2::254"},
		"mapped.example":       {"::ffff:169.254.169.254"},
		"allowed-ll.example":   {"169.254.7.7"},
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		addrs, ok := dns[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		var out []netip.Addr
		for _, a := range addrs {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
	var u Rules
	u.Allow = []string{"169.254.10.0/24", "allowed-ll.example"}
	u.Deny = []string{"10.9.0.0/16", "secret.example"}
	if err := u.Provision(listenersAt("localhost:2019")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		upstream string
		want     string // "" = accepted; else a substring of the error
	}{
		{"http://127.0.0.1:3000/mcp", "loopback"}, // loopback only when allowed
		{"http://[::1]:8080/mcp", "loopback"},
		{"http://[fe80::1%25eth0]:80/mcp", "zone"},
		{"https://mcp.internal.example/mcp", ""},
		{"http://169.254.10.5/mcp", ""}, // allowed network
		{"http://allowed-ll.example/mcp", ""},
		{"http://169.254.169.254/latest/meta-data", "link-local, metadata"},
		{"http://[fd00:ec2::254]/", "link-local, metadata"},
		{"http://[fe80::1]:80/mcp", "link-local"},
		{"http://[::ffff:169.254.169.254]/", "link-local"},
		{"http://100.100.100.200/", "metadata"},
		{"http://0.0.0.0:3000/mcp", "unspecified"},
		{"http://224.0.0.1/mcp", "multicast"},
		{"http://rebind.example/mcp", "169.254.169.254"},
		{"http://v6meta.example/mcp", "fd00:ec2::254"},
		{"http://mapped.example/mcp", "169.254.169.254"},
		{"http://metadata.google.internal/computeMetadata/v1/", "metadata service"},
		{"http://METADATA.GOOGLE.INTERNAL./", "metadata service"},
		{"http://localhost:2019/load", "does not resolve"}, // our fake DNS knows no localhost
		{"http://127.0.0.1:2019/load", "own listener"},
		{"http://[::1]:2019/config/", "own listener"},
		{"http://10.9.1.1/mcp", "denied"},
		{"http://secret.example/mcp", "denied"},
		{"http://nowhere.example/mcp", "does not resolve"},
		{"ftp://127.0.0.1/mcp", `scheme "ftp" is not allowed`},
		{"builtin:registry", `scheme "builtin" is not allowed`},
	} {
		err := u.Check(context.Background(), "upstream", tc.upstream, lookup)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.upstream, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: accepted, want an error with %q", tc.upstream, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: error %q does not mention %q", tc.upstream, err, tc.want)
		}
		var fe *model.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "upstream") {
			t.Errorf("%s: %T is not a FieldError on upstream", tc.upstream, err)
		}
	}

	withBuiltin := Rules{Schemes: []string{"http", "builtin"}}
	if err := withBuiltin.Provision(listenersAt("localhost:2019")); err != nil {
		t.Fatal(err)
	}
	if err := withBuiltin.Check(context.Background(), "upstream", "builtin:registry", lookup); err != nil {
		t.Errorf("builtin allowed by schemes: %v", err)
	}
	for _, bad := range []Rules{{Schemes: []string{"gopher"}}, {Allow: []string{"a b"}}, {Deny: []string{"10.0.0.0/33"}}} {
		if err := bad.Provision(listenersAt("localhost:2019")); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// listenersAt is a listener set of the given Caddy listen addresses.
func listenersAt(addrs ...string) func() *ListenSet { return ListenersAt(addrs...) }

// TestAdminListenAddrs pins what adminListenAddrs reads from Caddy's config by
// reflection: a Caddy release that moves it fails here, not silently in production.
func TestAdminListenAddrs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, _ := json.Marshal(map[string]any{"admin": map[string]any{"listen": addr, "config": map[string]any{"persist": false}}})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		off, _ := json.Marshal(map[string]any{"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}}})
		caddy.Load(off, true)
		caddy.Stop()
	})
	if got := adminListenAddrs(caddy.ActiveContext()); len(got) != 1 || got[0] != addr {
		t.Fatalf("adminListenAddrs = %q, want [%s]: Caddy's config layout changed", got, addr)
	}
	if own := CaddyListeners(caddy.ActiveContext(), Resolve); !own.reaches(netip.MustParseAddrPort(addr).Addr(), netip.MustParseAddrPort(addr).Port(), isLocalAddr) {
		t.Fatal("the admin endpoint is not among Caddy's listeners")
	}
}
