package mcpgateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry"
)

// A server registered, disabled and removed at runtime through the registry's App is
// routed accordingly by the very next request through a real Caddy: no reload.
func TestRegistryLiveRouting(t *testing.T) {
	var hits atomic.Int32
	up := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage":                map[string]any{"path": filepath.Join(dir, "registry.db")},
				"health":                 map[string]any{"disabled": true},
				"disable_builtin_server": true,
			},
			"http": map[string]any{"servers": map[string]any{"gw": map[string]any{
				"listen":          []string{listen},
				"routes":          []any{map[string]any{"handle": []any{map[string]any{"handler": "mcp_gateway"}}}},
				"automatic_https": map[string]any{"disable": true},
			}}},
		},
	})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	app, err := caddy.ActiveContext().AppIfConfigured("mcp_registry")
	if err != nil {
		t.Fatal(err)
	}
	reg := app.(*mcpregistry.App)

	client := &http.Client{Timeout: 5 * time.Second}
	post := func(seg string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+listen+"/"+seg+"/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	if code := post("live"); code != http.StatusNotFound {
		t.Fatalf("before registration: %d", code)
	}
	ctx := context.Background()
	s, err := reg.Put(ctx, &mcpregistry.Server{Name: "live", Upstream: up + "/mcp", Enabled: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if code := post("live"); code != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("after registration: %d, upstream hits %d", code, hits.Load())
	}
	s, err = reg.SetEnabled(ctx, "live", false, s.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if code := post("live"); code != http.StatusServiceUnavailable || hits.Load() != 1 {
		t.Fatalf("after disabling: %d, upstream hits %d", code, hits.Load())
	}
	if err := reg.Delete(ctx, "live", s.Revision); err != nil {
		t.Fatal(err)
	}
	if code := post("live"); code != http.StatusNotFound {
		t.Fatalf("after removal: %d", code)
	}
}
