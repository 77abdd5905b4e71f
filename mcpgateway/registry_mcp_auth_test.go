package mcpgateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearerTransport adds a gateway token to every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// The registry's builtin MCP server, reached through a gateway with auth on, sees the
// caller: a readers token cannot register_server, an admin token can, and the new
// server is routed at once.
func TestRegistryMCPToolsHonourCallerScopes(t *testing.T) {
	good := startIssuer(t, false)
	up := startRecordingUpstream(t)
	all := []string{"*"}
	base := (&testCaddy{
		BuiltinServer: true,
		Gateway: map[string]any{"auth": map[string]any{
			"issuers":  []any{map[string]any{"issuer": good.url, "jwks_url": good.url + "/jwks"}},
			"resource": testResource,
			"policy": map[string]any{
				"group_mappings": map[string]any{"readers": []string{"mcp-all", "viewer"}, "admins": []string{"mcp-all", "admin"}},
				"scopes":         map[string]any{"mcp-all": []any{map[string]any{"server": "*", "methods": all, "tools": all}}},
				"ui_scopes": map[string]any{
					"viewer": map[string]any{"list_service": []string{"all"}},
					"admin":  map[string]any{"list_service": []string{"all"}, "register_service": []string{"all"}, "toggle_service": []string{"all"}},
				},
			},
		}},
	}).start(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(group string) *mcp.ClientSession {
		t.Helper()
		tok := good.token(t, testResource, group)
		client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		s, err := client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint: base + "/registry/mcp", HTTPClient: &http.Client{Transport: bearerTransport{tok}},
		}, nil)
		if err != nil {
			t.Fatalf("%s: connecting to the registry: %v", group, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	register := map[string]any{"name": "fresh", "upstream": up.srv.URL + "/json/mcp", "description": "registered over MCP"}
	text := func(res *mcp.CallToolResult) string {
		var b strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String()
	}

	readers := connect("readers")
	res, err := readers.CallTool(ctx, &mcp.CallToolParams{Name: "register_server", Arguments: register})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(text(res), "permission denied: register_service") {
		t.Fatalf("readers register_server: isError=%v %q", res.IsError, text(res))
	}
	if r := post(t, base+"/fresh/mcp", bearer(good.token(t, testResource, "admins")), call(1, "ping", "")); r.status != http.StatusNotFound {
		t.Fatalf("fresh routed after a denied registration: %d %s", r.status, r.body)
	}

	admins := connect("admins")
	res, err = admins.CallTool(ctx, &mcp.CallToolParams{Name: "register_server", Arguments: register})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("admins register_server: %s", text(res))
	}
	before := up.count()
	r := post(t, base+"/fresh/mcp", bearer(good.token(t, testResource, "readers")), call(7, "ping", ""))
	if r.status != http.StatusOK || up.count() != before+1 {
		t.Fatalf("request to the new server: %d %s (upstream requests %d → %d)", r.status, r.body, before, up.count())
	}
	if last := up.last(t); last.path != "/json/mcp" || !strings.Contains(last.body, `"ping"`) {
		t.Errorf("upstream got %s %s", last.path, last.body)
	}

	// Readers can list it now, but not toggle it.
	res, err = readers.CallTool(ctx, &mcp.CallToolParams{Name: "toggle_server", Arguments: map[string]any{"name": "fresh", "enabled": false}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(text(res), "toggle_service") {
		t.Fatalf("readers toggle_server: isError=%v %q", res.IsError, text(res))
	}
}
