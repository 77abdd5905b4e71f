package registryapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry"
)

// noAdmin keeps tests from listening on the admin port or autosaving their config.
var noAdmin = map[string]any{"disabled": true, "config": map[string]any{"persist": false}}

// loadConfig runs a config whose only app is mcp_registry.
func loadConfig(t *testing.T, registry map[string]any) {
	t.Helper()
	loadConfigApps(t, map[string]any{"mcp_registry": registry})
}

func loadConfigApps(t *testing.T, apps map[string]any) {
	t.Helper()
	loadJSON(t, map[string]any{"admin": noAdmin, "apps": apps})
}

func loadJSON(t *testing.T, cfg map[string]any) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- caddy.Load(mustJSON(t, cfg), true) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("loading config: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("loading config hung")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runningApp(t *testing.T) *mcpregistry.App {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("mcp_registry")
	if err != nil {
		t.Fatalf("mcp_registry not running: %v", err)
	}
	return app.(*mcpregistry.App)
}

// loopbackUpstreams lets tests register the real servers they start on loopback
// (runtime registrations may not reach loopback by default).
var loopbackUpstreams = map[string]any{"allow": []string{"127.0.0.0/8", "::1/128"}}
