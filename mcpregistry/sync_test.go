package mcpregistry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

func TestUnmarshalCaddyfileSync(t *testing.T) {
	d := caddyfile.NewTestDispenser(`mcp_registry {
		sync https://registry.modelcontextprotocol.io {
			interval 30m
			name_prefix official-
		}
		sync https://other.example.com
	}`)
	var a App
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := []SyncConfig{
		{From: "https://registry.modelcontextprotocol.io", Interval: caddy.Duration(30 * time.Minute), NamePrefix: "official-"},
		{From: "https://other.example.com"},
	}
	if fmt.Sprint(a.Sync) != fmt.Sprint(want) {
		t.Errorf("sync: %+v", a.Sync)
	}
	for _, bad := range []string{
		`mcp_registry {
			sync
		}`,
		`mcp_registry {
			sync https://a https://b
		}`,
		`mcp_registry {
			sync https://a {
				interval soon
			}
		}`,
		`mcp_registry {
			sync https://a {
				colour blue
			}
		}`,
		`mcp_registry {
			sync https://a {
				name_prefix
			}
		}`,
	} {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

// A fake registry: paging, packages-only entries, a failing page, an oversized page.
func TestSyncPagesAndFailures(t *testing.T) {
	var mu sync.Mutex
	fail := ""
	entry := func(name, status string, body string) string {
		return fmt.Sprintf(`{"server": {"name": %q, "description": "d", "version": "1.0.0", %s},
			"_meta": {"io.modelcontextprotocol.registry/official": {"status": %q, "updatedAt": "2025-10-01T00:00:00Z", "isLatest": true}}}`, name, body, status)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		f := fail
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch cursor := r.URL.Query().Get("cursor"); {
		case cursor == "":
			fmt.Fprintf(w, `{"servers": [%s, %s], "metadata": {"nextCursor": "p2", "count": 2}}`,
				entry("com.fake/remote-one", "active", `"remotes": [{"type": "streamable-http", "url": "http://127.0.0.1:6101/mcp"}]`),
				entry("com.fake/local", "active", `"packages": [{"registryType": "npm", "identifier": "x", "transport": {"type": "stdio"}}]`))
		case f == "500":
			http.Error(w, `{"error": "boom"}`, http.StatusInternalServerError)
		case f == "big":
			w.Write([]byte(`{"servers": [`))
			w.Write([]byte(strings.Repeat(" ", syncMaxPageBytes)))
			w.Write([]byte(`]}`))
		case f == "garbage":
			w.Write([]byte(`<html>`))
		default:
			fmt.Fprintf(w, `{"servers": [%s], "metadata": {"count": 1}}`,
				entry("com.fake/remote-two", "active", `"remotes": [{"type": "sse", "url": "http://127.0.0.1:6102/sse", "headers": [{"name": "Authorization", "isRequired": true}]}]`))
		}
	}))
	defer ts.Close()

	loadConfig(t, map[string]any{
		"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "target.db")},
		"runtime_upstreams": loopbackUpstreams,
		"health":            map[string]any{"disabled": true},
	})
	t.Cleanup(func() { caddy.Stop() })
	target := runningApp(t)
	ctx := context.Background()

	for _, f := range []string{"500", "big", "garbage"} {
		mu.Lock()
		fail = f
		mu.Unlock()
		res, err := target.SyncFrom(ctx, SyncOptions{From: ts.URL})
		if err == nil || res == nil || res.Pages != 1 || res.Error == "" || !strings.Contains(err.Error(), "page 2") {
			t.Fatalf("%s: %+v %v", f, res, err)
		}
		if target.Server("remote-one") == nil {
			t.Fatalf("%s: the first page was not kept", f)
		}
		t.Logf("%s: %v", f, err)
	}
	mu.Lock()
	fail = ""
	mu.Unlock()
	res, err := target.SyncFrom(ctx, SyncOptions{From: ts.URL})
	if err != nil || res.Pages != 2 || res.Created != 1 || res.Unchanged != 1 || res.Skipped != 1 || len(res.Warnings) != 1 {
		t.Fatalf("full: %+v %v", res, err)
	}
	if !strings.Contains(res.Skips[0].Reason, "packages") || res.Skips[0].Name != "com.fake/local" {
		t.Errorf("packages-only skip: %+v", res.Skips)
	}
	if !strings.Contains(res.Warnings[0], "Authorization") {
		t.Errorf("header warning: %v", res.Warnings)
	}
	if s := target.Lookup("remote-two"); s == nil || s.Transport != model.TransportSSE {
		t.Errorf("remote-two: %+v", s)
	}

	for _, from := range []string{"ftp://x", "not a url", "http://u:p@host", "http://host/?q=1", ""} {
		if _, err := target.SyncFrom(ctx, SyncOptions{From: from}); err == nil {
			t.Errorf("from %q: want an error", from)
		}
	}
	if _, err := target.SyncFrom(ctx, SyncOptions{From: ts.URL, NamePrefix: "-x"}); err == nil {
		t.Error("bad name prefix: want an error")
	}
}

func TestProvisionSyncDefaults(t *testing.T) {
	a := &App{Sync: []SyncConfig{{From: "https://registry.example.com/"}}}
	if err := a.provisionSync(); err != nil || a.Sync[0].From != "https://registry.example.com" || time.Duration(a.Sync[0].Interval) != DefaultSyncInterval {
		t.Errorf("defaults: %+v %v", a.Sync, err)
	}
}
