package mcpgateway

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode/gzip"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
	_ "github.com/caddyserver/caddy/v2/modules/logging"

	"github.com/caddymcp/caddymcp/internal/testenv"
	_ "github.com/caddymcp/caddymcp/mcpregistry"
)

// testCaddy describes an in-process Caddy for the tests that go through a real one: an
// mcp_registry app (no background health checks, builtin MCP server off) and one
// plain-HTTP server "gw" whose last route runs Before and then mcp_gateway. Each test
// sets only what differs; the zero value is a gateway without auth in front of an
// empty registry, logging errors only.
type testCaddy struct {
	Listen string // host:port; start picks a free one when empty
	Dir    string // Caddy's and the registry's storage; start uses t.TempDir() when empty

	Servers       []any          // the registry's servers
	Registry      map[string]any // more mcp_registry fields (encryption_key, ...)
	BuiltinServer bool           // serve the registry's builtin MCP server at /registry/mcp

	Gateway map[string]any // mcp_gateway fields beside "handler" (auth, audit, ...)
	Before  []any          // handlers in the gateway's route, before it
	Routes  []any          // routes before the gateway's
	Server  map[string]any // more fields of the HTTP server (logs, max_header_bytes, ...)

	LogFiles    map[string]string // logger name → the file it alone writes to (the default log leaves it out)
	LogEncoders map[string]any    // logger name (of LogFiles) → its log's encoder config
	TLS         map[string]any    // the tls app (certificates for a TLS listener)
}

// config is the Caddy JSON config; the same testCaddy gives the same bytes.
func (c *testCaddy) config(t *testing.T) []byte {
	t.Helper()
	defaultLog := map[string]any{"level": "ERROR"}
	logs := map[string]any{"default": defaultLog}
	if len(c.LogFiles) > 0 {
		loggers := slices.Sorted(maps.Keys(c.LogFiles))
		defaultLog["exclude"] = loggers
		for _, logger := range loggers {
			logs[logger] = map[string]any{
				"writer":  map[string]any{"output": "file", "filename": c.LogFiles[logger]},
				"include": []string{logger},
			}
			if enc, ok := c.LogEncoders[logger]; ok {
				logs[logger].(map[string]any)["encoder"] = enc
			}
		}
	}
	registry := map[string]any{
		"storage": map[string]any{"path": filepath.Join(c.Dir, "registry.db")},
		// No background health checks: these upstreams count what they receive.
		"health": map[string]any{"disabled": true},
		// The tests' upstreams, registered at runtime too, run on loopback.
		"runtime_upstreams": map[string]any{"allow": []string{"127.0.0.0/8", "::1/128"}},
	}
	if !c.BuiltinServer {
		registry["disable_builtin_server"] = true
	}
	if c.Servers != nil {
		registry["servers"] = c.Servers
	}
	maps.Copy(registry, c.Registry)
	gateway := map[string]any{"handler": "mcp_gateway"}
	maps.Copy(gateway, c.Gateway)
	server := map[string]any{
		"listen":          []string{c.Listen},
		"routes":          append(slices.Clone(c.Routes), map[string]any{"handle": append(slices.Clone(c.Before), gateway)}),
		"automatic_https": map[string]any{"disable": true},
	}
	maps.Copy(server, c.Server)
	b, err := json.Marshal(map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": logs},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(c.Dir, "caddy")},
		"apps": func() map[string]any {
			apps := map[string]any{
				"mcp_registry": registry,
				"http":         map[string]any{"servers": map[string]any{"gw": server}},
			}
			if c.TLS != nil {
				apps["tls"] = c.TLS
			}
			return apps
		}(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// start fills in Listen and Dir when empty, loads the config, stops Caddy at the end
// of the test and returns the base URL, http://Listen.
func (c *testCaddy) start(t *testing.T) string {
	t.Helper()
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	if c.Listen == "" {
		c.Listen = freeAddr(t)
	}
	if err := caddy.Load(c.config(t), true); err != nil {
		t.Fatalf("loading Caddy: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return "http://" + c.Listen
}

// reload loads the same config again, as a config change would.
func (c *testCaddy) reload(t *testing.T) {
	t.Helper()
	if err := caddy.Load(c.config(t), true); err != nil {
		t.Fatalf("reloading Caddy: %v", err)
	}
}

// freeAddr is a loopback host:port nothing listens on (a port just opened and closed):
// one to listen on, or one whose connections are refused.
func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
}
