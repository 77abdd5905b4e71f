package mcpregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymcp/caddymcp/internal/testenv"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func init() { caddy.RegisterModule(eventRecorder{}) }

// eventRecorder is an events.handlers module that records every event it is given, so
// the test observes server_health_changed through the real caddyevents app.
type eventRecorder struct{}

type recordedEvent struct {
	name, origin, server, status, previous string
}

var (
	recordedMu     sync.Mutex
	recordedEvents []recordedEvent
	// recordedFull keeps every event with its whole data, in order (events_test.go).
	recordedFull []fullEvent
)

type fullEvent struct {
	name, origin string
	data         map[string]any
}

func (eventRecorder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "events.handlers.mcp_registry_test_recorder", New: func() caddy.Module { return new(eventRecorder) }}
}

func (eventRecorder) Handle(_ context.Context, e caddy.Event) error {
	r := recordedEvent{name: e.Name()}
	if o := e.Origin(); o != nil {
		r.origin = string(o.CaddyModule().ID)
	}
	r.server, _ = e.Data["server"].(string)
	r.status, _ = e.Data["status"].(string)
	r.previous, _ = e.Data["previous"].(string)
	recordedMu.Lock()
	recordedEvents = append(recordedEvents, r)
	recordedFull = append(recordedFull, fullEvent{r.name, r.origin, maps.Clone(e.Data)})
	recordedMu.Unlock()
	return nil
}

func sawEvent(want recordedEvent) bool {
	recordedMu.Lock()
	defer recordedMu.Unlock()
	return slices.Contains(recordedEvents, want)
}

func loadWithEvents(t *testing.T, registry map[string]any) {
	t.Helper()
	loadConfigApps(t, map[string]any{
		"mcp_registry": registry,
		"events": map[string]any{"subscriptions": []map[string]any{{
			"events":   []string{EventServerHealthChanged, EventServerToolsChanged, EventServerRegistered, EventServerUpdated, EventServerRemoved},
			"handlers": []map[string]any{{"handler": "mcp_registry_test_recorder"}},
		}}},
	})
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func toolNames(h model.ServerHealth) []string {
	var names []string
	for _, t := range h.Tools {
		names = append(names, t.Name)
	}
	return names
}

// TestHealthChecksRealServers registers three real MCP servers (go-sdk everything-server
// stateful and stateless, npm server-everything over legacy SSE), lets the loop find them
// healthy with their tools, kills one, restarts it, and reloads from the store.
func TestHealthChecksRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three MCP server processes; runs without -short")
	}
	var stateful, stateless, sse *testenv.Process
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); stateful = testenv.StartEverythingServer(t, true) }()
	go func() { defer wg.Done(); stateless = testenv.StartEverythingServer(t, false) }()
	go func() { defer wg.Done(); sse = testenv.StartServerEverythingNPM(t, testenv.NPMSSE) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	db := filepath.Join(t.TempDir(), "registry.db")
	servers := []map[string]any{
		{"name": "full", "upstream": stateful.URL},
		{"name": "lite", "upstream": stateless.URL},
		{"name": "legacy", "upstream": sse.URL, "transport": "sse"},
		{"name": "off", "upstream": "http://127.0.0.1:9/mcp", "disabled": true},
	}
	loadWithEvents(t, map[string]any{
		"storage": map[string]any{"path": db},
		"health":  map[string]any{"interval": int64(200 * time.Millisecond), "timeout": int64(3 * time.Second)},
		"servers": servers,
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)

	healthy := func(name string) func() bool {
		return func() bool { h, _ := app.Health(name); return h.Status == model.HealthHealthy }
	}
	for _, name := range []string{"full", "lite", "legacy"} {
		waitFor(t, name+" healthy", 15*time.Second, func() bool {
			ok := healthy(name)()
			if !ok {
				h, _ := app.Health(name)
				t.Logf("%s: %s %s", name, h.Status, h.LastError)
			}
			return ok
		})
	}
	for name, want := range map[string]string{"full": "test_simple_text", "lite": "test_simple_text", "legacy": "echo"} {
		h, _ := app.Health(name)
		if !slices.Contains(toolNames(h), want) {
			t.Errorf("%s: tools %v lack %q", name, toolNames(h), want)
		}
		if h.ProtocolVersion == "" || h.CheckedAt.IsZero() || h.LatencyMS <= 0 || h.LastError != "" {
			t.Errorf("%s: incomplete health %+v", name, h)
		}
		var schema bool
		for _, tool := range h.Tools {
			schema = schema || strings.Contains(string(tool.InputSchema), `"type"`)
		}
		if !schema {
			t.Errorf("%s: no tool carries an input schema", name)
		}
		t.Logf("%s: protocol %s, %d tools, %d prompts, %d resources, %.1f ms", name, h.ProtocolVersion, len(h.Tools), len(h.Prompts), len(h.Resources), h.LatencyMS)
	}
	if h, _ := app.Health("lite"); h.ProtocolVersion != "2026-07-28" {
		t.Errorf("stateless server: protocol %q, want 2026-07-28", h.ProtocolVersion)
	}
	if h, _ := app.Health("legacy"); len(h.Prompts) == 0 || len(h.Resources) == 0 {
		t.Errorf("legacy: prompts %v resources %v", h.Prompts, h.Resources)
	}
	if h, ok := app.Health("off"); !ok || h.Status != model.HealthUnknown {
		t.Errorf("disabled server must stay unknown: %+v", h)
	}
	if h, ok := app.Health("registry"); !ok || h.Status != model.HealthHealthy || !slices.Contains(toolNames(h), "server_health") {
		t.Errorf("builtin registry: %+v", h)
	}
	if _, ok := app.Health("nope"); ok {
		t.Error("Health of an unknown name must say so")
	}
	if hits := app.Search("test_simple_text", 10); len(hits) == 0 || hits[0].Tool != "test_simple_text" {
		t.Errorf("discovered tools are not searchable: %v", hits)
	}
	if !sawEvent(recordedEvent{EventServerHealthChanged, "mcp_registry", "full", "healthy", "unknown"}) {
		t.Errorf("no unknown→healthy event for full: %v", recordedEvents)
	}

	// All three announce listChanged and can notify (GET stream, 2026-07-28
	// subscriptions/listen, SSE): each gets a watch session.
	waitFor(t, "watch sessions on the real servers", 10*time.Second, func() bool { return app.watchSessions() == 3 })

	// A crash: marked unhealthy with a reason, tools kept, still routed.
	stateful.Kill()
	waitFor(t, "full unhealthy", 10*time.Second, func() bool { h, _ := app.Health("full"); return h.Status == model.HealthUnhealthy })
	h, _ := app.Health("full")
	if h.LastError == "" || len(h.LastError) > maxLastErrorLen+len("…") || h.ConsecutiveFailures < 1 || len(h.Tools) == 0 {
		t.Errorf("unhealthy record: %+v", h)
	}
	t.Logf("full while down: %s", h.LastError)
	if s := app.Lookup("full"); s == nil || !s.Enabled {
		t.Error("an unhealthy server must stay routable")
	}
	// The event follows the recorded status; give its handler a moment.
	waitFor(t, "healthy→unhealthy event", 5*time.Second, func() bool {
		return sawEvent(recordedEvent{EventServerHealthChanged, "mcp_registry", "full", "unhealthy", "healthy"})
	})

	stateful.Restart()
	waitFor(t, "full healthy again", 10*time.Second, healthy("full"))
	waitFor(t, "unhealthy→healthy event", 5*time.Second, func() bool {
		return sawEvent(recordedEvent{EventServerHealthChanged, "mcp_registry", "full", "healthy", "unhealthy"})
	})

	// Manual refresh.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if h, err := app.RefreshNow(ctx, "legacy"); err != nil || h.Status != model.HealthHealthy {
		t.Errorf("RefreshNow legacy: %+v %v", h, err)
	}
	if _, err := app.RefreshNow(ctx, "nope"); err == nil {
		t.Error("RefreshNow of an unknown name must fail")
	}

	// Server records are untouched by status writes.
	var rev uint64
	app.store.View(func(tx store.Tx) error { s, err := tx.Get("lite"); rev = s.Revision; return err })
	if rev != 1 {
		t.Errorf("status writes changed the server record: revision %d", rev)
	}

	// Restart from the store with the checks off: the last known state is shown.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	loadWithEvents(t, map[string]any{
		"storage": map[string]any{"path": db},
		"health":  map[string]any{"disabled": true},
		"servers": servers,
	})
	app = runningApp(t)
	for _, name := range []string{"full", "lite", "legacy"} {
		if h, _ := app.Health(name); h.Status != model.HealthHealthy || len(h.Tools) == 0 {
			t.Errorf("%s after restart: %+v", name, h)
		}
	}
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

// TestHealthDownFromStart: a server that never answers becomes unhealthy without
// delaying anything else, and the error names no query string.
func TestHealthDownFromStart(t *testing.T) {
	port := testenv.FreePort(t)
	db := filepath.Join(t.TempDir(), "registry.db")
	loadWithEvents(t, map[string]any{
		"storage": map[string]any{"path": db},
		"health":  map[string]any{"interval": int64(100 * time.Millisecond), "timeout": int64(time.Second), "jitter": 0},
		"servers": []map[string]any{{"name": "down", "upstream": fmt.Sprintf("http://127.0.0.1:%d/mcp?key=s3cret", port)}},
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	waitFor(t, "down unhealthy", 5*time.Second, func() bool { h, _ := app.Health("down"); return h.Status == model.HealthUnhealthy })
	h, _ := app.Health("down")
	if strings.Contains(h.LastError, "s3cret") || h.LastError == "" {
		t.Errorf("last error: %q", h.LastError)
	}
	if app.Lookup("down") == nil {
		t.Error("unhealthy server not routed")
	}
}

func TestHealthCaddyfile(t *testing.T) {
	app := new(App)
	err := app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`mcp_registry {
		health {
			interval 45s
			timeout 5s
			concurrency 8
			jitter 0.5
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	hc := app.HealthChecks
	if hc.Interval != caddy.Duration(45*time.Second) || hc.Timeout != caddy.Duration(5*time.Second) || hc.Concurrency != 8 || *hc.Jitter != 0.5 || hc.Disabled {
		t.Fatalf("%+v", hc)
	}
	for _, off := range []string{"health off", "health {\n interval off\n}", "health {\n interval 0\n}"} {
		app := new(App)
		if err := app.UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_registry {\n" + off + "\n}")); err != nil || !app.HealthChecks.Disabled {
			t.Errorf("%q: %v %+v", off, err, app.HealthChecks)
		}
	}
	for _, bad := range []string{
		"health on", "health {\n interval -1s\n}", "health {\n timeout 0\n}", "health {\n concurrency 0\n}",
		"health {\n jitter 2\n}", "health {\n jitter 150%\n}", "health {\n bogus 1\n}", "health {\n interval\n}",
		"health\nhealth",
	} {
		if err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_registry {\n" + bad + "\n}")); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}

	// Defaults and validation.
	hc = new(HealthConfig)
	hc.provision()
	if hc.Interval != caddy.Duration(30*time.Second) || hc.Timeout != caddy.Duration(10*time.Second) || hc.Concurrency != 4 || *hc.Jitter != 0.2 || hc.validate() != nil {
		t.Errorf("defaults: %+v", hc)
	}
	j := 1.5
	if err := (&HealthConfig{Interval: 1, Timeout: 1, Concurrency: 1, Jitter: &j}).validate(); err == nil {
		t.Error("jitter 1.5 accepted")
	}
}

func TestDescribeCheckError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("calling \"initialize\": %w", context.DeadlineExceeded), "connect: timed out"},
		{&net.OpError{Op: "dial", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}, "connect: connection refused"},
		{&net.DNSError{Err: "no such host", Name: "secret-host.internal"}, "connect: the upstream's host name does not resolve"},
		{errors.New(`sending "initialize": rejected by transport: Post "http://10.0.0.5/mcp?key=abc": Unauthorized`), "connect: the upstream answered HTTP 401 Unauthorized"},
		{errors.New(`Post "http://10.0.0.5/mcp": connection to 10.0.0.5:80 refused by runtime_upstreams: …`), "connect: the upstream's address is refused by runtime_upstreams"},
		{fmt.Errorf("calling: %w", &jsonrpc.Error{Code: -32001, Message: "token s3cret is wrong"}), "connect: the server answered with JSON-RPC error -32001"},
		{errors.New("garbage: token s3cret at http://10.0.0.5"), "connect: the upstream's answer is not a valid MCP response"},
	} {
		if got := describeCheckError("connect", tc.err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
	if got := bound(strings.Repeat("é", 600), maxLastErrorLen); len(got) > maxLastErrorLen+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("bound: %d bytes", len(got))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
