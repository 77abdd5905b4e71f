package mcpgateway

import "testing"

func TestSplitRoute(t *testing.T) {
	tests := []struct {
		path, prefix string
		seg, sub     string
		ep           endpoint
		ok           bool
	}{
		{"/everything/mcp", "", "everything", "", endpointMCP, true},
		{"/everything/mcp/", "", "everything", "/", endpointMCP, true},
		{"/everything/mcp/a/b", "", "everything", "/a/b", endpointMCP, true},
		{"/everything/sse", "", "everything", "", endpointSSE, true},
		{"/everything/message", "", "everything", "", endpointMessage, true},
		{"/servers/gh/mcp", "/servers", "gh", "", endpointMCP, true},
		{"/serversx/gh/mcp", "/servers", "", "", 0, false},
		{"/servers/gh/mcpx", "/servers", "", "", 0, false},
		{"/gh/mcp", "/servers", "", "", 0, false},
		{"/", "", "", "", 0, false},
		{"/mcp", "", "", "", 0, false},
		{"//mcp", "", "", "", 0, false},
		{"/gh", "", "", "", 0, false},
		{"/gh/", "", "", "", 0, false},
		{"/gh/other", "", "", "", 0, false},
		{"/api/servers", "", "", "", 0, false},
	}
	for _, tc := range tests {
		seg, sub, ep, ok := splitRoute(tc.path, tc.prefix)
		if seg != tc.seg || sub != tc.sub || ep != tc.ep || ok != tc.ok {
			t.Errorf("splitRoute(%q, %q) = %q %q %v %v; want %q %q %v %v", tc.path, tc.prefix, seg, sub, ep, ok, tc.seg, tc.sub, tc.ep, tc.ok)
		}
	}
}

func TestJoinQuery(t *testing.T) {
	for _, tc := range [][3]string{{"", "", ""}, {"a=1", "", "a=1"}, {"", "b=2", "b=2"}, {"a=1", "b=2", "a=1&b=2"}} {
		if got := joinQuery(tc[0], tc[1]); got != tc[2] {
			t.Errorf("joinQuery(%q, %q) = %q; want %q", tc[0], tc[1], got, tc[2])
		}
	}
}
