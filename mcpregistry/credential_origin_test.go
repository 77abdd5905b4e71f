package mcpregistry

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// A credential suspended by an upstream move stays suspended across a reload: the
// origin is sealed with it, not kept in memory only.
func TestCredentialSuspensionSurvivesReload(t *testing.T) {
	db := filepath.Join(t.TempDir(), "registry.db")
	_, key := newTestKey(t)
	cfg := map[string]any{"storage": map[string]any{"path": db}, "encryption_key": key, "health": map[string]any{"disabled": true},
		"runtime_upstreams": loopbackUpstreams}
	loadConfig(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	ctx := context.Background()
	if _, err := app.PutWithCredential(ctx, &model.Server{Name: "svc", Upstream: "https://a.example/mcp", BackendAuth: model.BackendAuth{Scheme: model.BackendAuthBearer}},
		0, &Credential{Value: "tok"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Put(ctx, &model.Server{Name: "svc", Upstream: "https://b.example/mcp", BackendAuth: model.BackendAuth{Scheme: model.BackendAuthBearer}}, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	loadConfig(t, cfg)
	app = runningApp(t)
	if s := app.Server("svc"); app.BackendHeaders(s) != nil || !app.CredentialSuspended(s) {
		t.Fatal("a reload resumed the suspended credential")
	}
	if err := app.ConfirmCredential(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	loadConfig(t, cfg)
	app = runningApp(t)
	if h := app.BackendHeaders(app.Server("svc")); h.Get("Authorization") != "Bearer tok" {
		t.Fatalf("after confirmation and reload: %v", h)
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		upstream, origin string
		same             bool
	}{
		{"http://h:80/mcp", "http://h:80", true},
		{"http://H/mcp?x=1", "http://h:80", true},
		{"HTTPS://h/mcp", "https://h:443", true},
		{"http://h:8080/mcp", "http://h:80", false},
		{"https://h/mcp", "http://h:443", false},
		{"http://[::1]:3000/mcp", upstreamOrigin("http://[::1]:3000/x"), true},
		{"http://h.evil/mcp", "http://h:80", false},
		{"http://h:80@evil/mcp", "http://h:80", false},
		{"builtin:registry", "builtin:registry", true},
	} {
		if got := sameOrigin(tc.upstream, tc.origin); got != tc.same {
			t.Errorf("sameOrigin(%q, %q) = %v", tc.upstream, tc.origin, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { sameOrigin("https://mcp.example.com:8443/mcp", "https://mcp.example.com:8443") }); n != 0 {
		t.Errorf("sameOrigin allocates %v times", n)
	}
}
