package mcpregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/caddyserver/caddy/v2"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
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
	var u UpstreamRules
	u.Allow = []string{"169.254.10.0/24", "allowed-ll.example"}
	u.Deny = []string{"10.9.0.0/16", "secret.example"}
	if err := u.provision(listenersAt("localhost:2019")); err != nil {
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
		err := u.check(context.Background(), "upstream", tc.upstream, lookup)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.upstream, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: accepted, want an error with %q", tc.upstream, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: error %q does not mention %q", tc.upstream, err, tc.want)
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "upstream") {
			t.Errorf("%s: %T is not a FieldError on upstream", tc.upstream, err)
		}
	}

	withBuiltin := UpstreamRules{Schemes: []string{"http", "builtin"}}
	if err := withBuiltin.provision(listenersAt("localhost:2019")); err != nil {
		t.Fatal(err)
	}
	if err := withBuiltin.check(context.Background(), "upstream", "builtin:registry", lookup); err != nil {
		t.Errorf("builtin allowed by schemes: %v", err)
	}
	for _, bad := range []UpstreamRules{{Schemes: []string{"gopher"}}, {Allow: []string{"a b"}}, {Deny: []string{"10.0.0.0/33"}}} {
		if err := bad.provision(listenersAt("localhost:2019")); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestUpstreamRulesRefuseOwnListeners runs a config whose admin endpoint and site
// listen at non-default addresses and checks, with loopback explicitly allowed, that
// every address reaching them is refused — by address, by a name resolving to them, on
// a wildcard listener's every local address — while another loopback port is allowed.
func TestUpstreamRulesRefuseOwnListeners(t *testing.T) {
	ports := freePorts(t, 3)
	adminPort, sitePort, freePort := ports[0], ports[1], ports[2]
	cfg, err := json.Marshal(map[string]any{
		"admin": map[string]any{"listen": fmt.Sprintf("localhost:%d", adminPort), "config": map[string]any{"persist": false}},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
				"health":            map[string]any{"disabled": true},
				"runtime_upstreams": map[string]any{"allow": []string{"127.0.0.0/8", "::1/128", "localhost"}},
			},
			"http": map[string]any{"servers": map[string]any{"site": map[string]any{
				"listen": []string{fmt.Sprintf(":%d", sitePort)},
				"routes": []any{map[string]any{"handle": []any{map[string]any{"handler": "static_response", "body": "site"}}}},
			}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	if got := adminListenAddrs(caddy.ActiveContext()); len(got) != 1 || got[0] != fmt.Sprintf("localhost:%d", adminPort) {
		t.Fatalf("adminListenAddrs = %q: Caddy's config layout changed; the admin endpoint is not found", got)
	}
	for _, tc := range []struct {
		upstream string
		refused  bool
	}{
		{fmt.Sprintf("http://127.0.0.1:%d/stop", adminPort), true},
		{fmt.Sprintf("http://localhost:%d/load", adminPort), true}, // an allowed name, still the admin API
		{fmt.Sprintf("http://[::1]:%d/config/", adminPort), true},
		{fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/stop", adminPort), true},
		{fmt.Sprintf("http://127.0.0.1:%d/mcp", sitePort), true},
		{fmt.Sprintf("http://127.0.0.2:%d/mcp", sitePort), true}, // wildcard listener: every local address
		{fmt.Sprintf("http://[::1]:%d/mcp", sitePort), true},
		{fmt.Sprintf("http://127.0.0.1:%d/mcp", freePort), false},
	} {
		err := app.CheckRuntimeUpstream(context.Background(), tc.upstream)
		if tc.refused && (err == nil || !strings.Contains(err.Error(), "own listener")) {
			t.Errorf("%s: got %v, want a refusal naming our own listener", tc.upstream, err)
		}
		if !tc.refused && err != nil {
			t.Errorf("%s: refused: %v", tc.upstream, err)
		}
	}
}

// listenersAt is a listener set of the given Caddy listen addresses.
func listenersAt(addrs ...string) func() *listenSet {
	return func() *listenSet {
		l := newListenSet()
		for _, a := range addrs {
			l.addNetworkAddress(context.Background(), a, resolveHost)
		}
		return l
	}
}

// freePorts returns n TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// loopbackUpstreams lets tests register the real servers they start on loopback
// (runtime registrations may not reach loopback by default).
var loopbackUpstreams = map[string]any{"allow": []string{"127.0.0.0/8", "::1/128"}}
