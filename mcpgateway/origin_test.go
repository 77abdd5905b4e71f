package mcpgateway

import (
	"net"
	"testing"
)

func TestAllowHost(t *testing.T) {
	loop := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080}
	loop6 := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 8080}
	public := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 443}
	defaults := hostPolicy{}
	listed := hostPolicy{hosts: []string{"mcp.example.com", "*.corp.example.com"}}
	tests := []struct {
		p     hostPolicy
		host  string
		local net.Addr
		want  bool
	}{
		{defaults, "localhost:8080", loop, true},
		{defaults, "127.0.0.1:8080", loop, true},
		{defaults, "[::1]:8080", loop6, true},
		{defaults, "app.localhost", loop, true},
		{defaults, "evil.example.com:8080", loop, false},
		{defaults, "evil.example.com", loop6, false},
		{defaults, "mcp.example.com", public, true},
		{defaults, "anything", nil, true},
		{listed, "mcp.example.com", public, true},
		{listed, "MCP.example.com:443", public, true},
		{listed, "a.corp.example.com", public, true},
		{listed, "corp.example.com", public, false},
		{listed, "evil.com", public, false},
		{listed, "localhost:8080", loop, true},
		{listed, "localhost:8080", public, false},
		{hostPolicy{hosts: []string{"*"}}, "evil.com", loop, true},
	}
	for _, tc := range tests {
		if got := tc.p.allowHost(tc.host, tc.local); got != tc.want {
			t.Errorf("allowHost(%v, %q, %v) = %v; want %v", tc.p.hosts, tc.host, tc.local, got, tc.want)
		}
	}
}

func TestAllowOrigin(t *testing.T) {
	p := hostPolicy{origins: []string{"https://app.example.com"}}
	tests := []struct {
		origin, host string
		want         bool
	}{
		{"", "localhost:8080", true},
		{"http://localhost:8080", "localhost:8080", true},
		{"https://app.example.com", "mcp.example.com", true},
		{"https://APP.example.com", "mcp.example.com", true},
		{"https://evil.example.com", "mcp.example.com", false},
		{"http://localhost:9999", "localhost:8080", false},
		{"null", "localhost:8080", false},
	}
	for _, tc := range tests {
		if got := p.allowOrigin(tc.origin, tc.host); got != tc.want {
			t.Errorf("allowOrigin(%q, %q) = %v; want %v", tc.origin, tc.host, got, tc.want)
		}
	}
	if !(&hostPolicy{origins: []string{"*"}}).allowOrigin("https://x", "y") {
		t.Error("* must allow any origin")
	}
}
