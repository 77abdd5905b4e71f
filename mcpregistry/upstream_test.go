package mcpregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"net"
	"strings"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/upstream"
)

// remoteConn is a connection that claims to be connected to remote.
type remoteConn struct {
	net.Conn
	remote net.Addr
	closed *bool
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }
func (c remoteConn) Close() error         { *c.closed = true; return c.Conn.Close() }

func TestGuardDial(t *testing.T) {
	rules := new(upstream.Rules)
	rules.Allow = []string{"169.254.10.0/24"}
	if err := rules.Provision(upstream.ListenersAt("localhost:2019")); err != nil {
		t.Fatal(err)
	}
	a := &App{RuntimeUpstreams: rules, trustedDials: upstream.TrustedTargets([]*model.Server{
		{Upstream: "http://metadata.internal.example/mcp"}, {Upstream: "builtin:registry"},
	})}
	for _, tc := range []struct {
		addr, remote string
		refused      bool
	}{
		{"mcp.example.com:443", "10.1.2.3:443", false},
		{"rebind.example:80", "169.254.169.254:80", true}, // resolved elsewhere since registration
		{"rebind.example:80", "[fd00:ec2::254]:80", true},
		{"rebind.example:80", "[::ffff:169.254.169.254]:80", true},
		{"svc.example:80", "169.254.10.7:80", false}, // allowed network
		{"localhost:2019", "127.0.0.1:2019", true},
		{"localhost:3000", "127.0.0.1:3000", true}, // loopback needs an explicit allow
		{"[fe80::1%eth0]:80", "[fe80::1%eth0]:80", true},
		{"metadata.internal.example:80", "169.254.169.254:80", false}, // a config server's own target
		{"METADATA.INTERNAL.EXAMPLE:80", "169.254.169.254:80", false},
	} {
		closed := false
		remote, err := net.ResolveTCPAddr("tcp", tc.remote)
		if err != nil {
			t.Fatal(err)
		}
		dial := a.GuardDial(func(context.Context, string, string) (net.Conn, error) {
			c, _ := net.Pipe()
			return remoteConn{Conn: c, remote: remote, closed: &closed}, nil
		})
		conn, err := dial(context.Background(), "tcp", tc.addr)
		switch {
		case tc.refused && (err == nil || !strings.Contains(err.Error(), "refused by runtime_upstreams") || !closed || conn != nil):
			t.Errorf("%s → %s: conn %v, err %v, closed %v; want refused and closed", tc.addr, tc.remote, conn, err, closed)
		case !tc.refused && (err != nil || closed):
			t.Errorf("%s → %s: %v (closed %v), want allowed", tc.addr, tc.remote, err, closed)
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
