package mcpregistry

import (
	"context"
	"net"
	"strings"
	"testing"
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
	rules := new(UpstreamRules)
	rules.Allow = []string{"169.254.10.0/24"}
	if err := rules.provision(listenersAt("localhost:2019")); err != nil {
		t.Fatal(err)
	}
	a := &App{RuntimeUpstreams: rules, trustedDials: trustedDialTargets([]*Server{
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
