package mcpregistry

import (
	"path/filepath"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func TestMCPAudience(t *testing.T) {
	loadConfig(t, map[string]any{
		"storage": map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"health":  map[string]any{"disabled": true},
		"servers": []any{
			map[string]any{"name": "gh", "path": "github", "upstream": "http://127.0.0.1:3001/mcp"},
			map[string]any{"name": "old", "upstream": "http://127.0.0.1:3002/sse", "transport": "sse"},
		},
	})
	app := runningApp(t)
	if app.MCPAudience("", "/servers") != nil {
		t.Error("a check without a resource")
	}
	match := app.MCPAudience("https://mcp.example.com/", "/servers")
	for aud, want := range map[string]bool{
		"https://mcp.example.com/servers/github/mcp":  true,
		"https://mcp.example.com/servers/old/sse":     true,
		"https://mcp.example.com/servers/old/mcp":     false, // sse servers are reached at /sse
		"https://mcp.example.com/servers/gh/mcp":      false, // the path, not the name
		"https://mcp.example.com/servers/github/mcp/": false,
		"https://mcp.example.com/servers/runtime/mcp": false,
		"https://mcp.example.com/github/mcp":          false,
		"https://evil.example.com/servers/github/mcp": false,
		"https://mcp.example.com/servers/github":      false,
	} {
		if got := match(aud); got != want {
			t.Errorf("%s: %v, want %v", aud, got, want)
		}
	}
	if _, err := app.Put(t.Context(), &model.Server{Name: "runtime", Upstream: "http://127.0.0.1:3003/mcp", Enabled: true}, 0); err != nil {
		t.Fatal(err)
	}
	if !match("https://mcp.example.com/servers/runtime/mcp") {
		t.Error("a server registered at runtime is not an accepted audience")
	}
}
