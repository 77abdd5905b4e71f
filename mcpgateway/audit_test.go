package mcpgateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddymcp/caddymcp/internal/jsonrpc"
)

// auditUpstream answers POSTs with a JSON result and GETs with an event stream that
// stays open until the client goes away.
func auditUpstream(t *testing.T) string {
	return httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, ": open\n\n")
			_ = http.NewResponseController(w).Flush()
			<-r.Context().Done()
			return
		}
		body, _ := io.ReadAll(r.Body)
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.Unmarshal(body, &m)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Mcp-Session-Id", "sess-1")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{}}`)
	})
}

// auditCaddy is a gateway with audit (arguments included) and auth on, /metrics in
// front, the audit logger writing to auditLog alone, and the servers "everything" (at
// upstream) and "dead" (connections refused); its storage and policy file are in dir.
func auditCaddy(t *testing.T, dir, upstream, auditLog string) *testCaddy {
	t.Helper()
	policyFile := filepath.Join(dir, "scopes.yml")
	if err := os.WriteFile(policyFile, []byte(`group_mappings:
  readers: [s]
s:
- server: everything
  methods: [initialize, tools/list, tools/call]
  tools: [echo]
- server: dead
  methods: [tools/list]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(testAPIKey))
	return &testCaddy{
		Dir:      dir,
		LogFiles: map[string]string{AuditLoggerName: auditLog},
		Servers: []any{
			map[string]any{"name": "everything", "upstream": upstream + "/mcp"},
			map[string]any{"name": "dead", "upstream": "http://" + freeAddr(t) + "/mcp"},
		},
		Routes: []any{map[string]any{
			"match":    []any{map[string]any{"path": []string{"/metrics"}}},
			"handle":   []any{map[string]any{"handler": "metrics"}},
			"terminal": true,
		}},
		Gateway: map[string]any{
			"audit": map[string]any{"include_arguments": true},
			"auth": map[string]any{
				"resource":    testResource,
				"policy_file": policyFile,
				"api_keys":    []any{map[string]any{"sha256": hex.EncodeToString(sum[:]), "groups": []string{"readers"}}},
			},
		},
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue finds the sample line "name{labels} value" (labels in the exposition's
// sorted order) and returns its value, or "" when absent.
func metricValue(scraped, series string) string {
	for _, line := range strings.Split(scraped, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

func readAuditLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// Through a real Caddy: one audit entry per MCP request on logger http.handlers.mcp_gateway.audit, routed by
// the logging config's include; metrics for allow, deny, unauthenticated and upstream
// errors; open_streams up while a GET stream is open (hijacked and ReverseProxy paths)
// and back down; a reload registers the metrics again without panicking.
func TestAuditAndMetricsThroughCaddy(t *testing.T) {
	dir := t.TempDir()
	auditLog := filepath.Join(dir, "audit.log")
	c := auditCaddy(t, dir, auditUpstream(t), auditLog)
	base := c.start(t)
	key := bearer(testAPIKey)

	allow := post(t, base+"/everything/mcp", key, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`)
	if allow.status != 200 {
		t.Fatalf("allowed call: %d %s", allow.status, allow.body)
	}
	if r := post(t, base+"/everything/mcp", key, call(8, "tools/call", "delete_repo")); r.status != 403 {
		t.Fatalf("denied call: %d %s", r.status, r.body)
	}
	if r := post(t, base+"/everything/mcp", nil, call(9, "tools/list", "")); r.status != 401 {
		t.Fatalf("no token: %d %s", r.status, r.body)
	}
	if r := post(t, base+"/dead/mcp", key, call(10, "tools/list", "")); r.status != 502 {
		t.Fatalf("dead upstream: %d %s", r.status, r.body)
	}
	if r := post(t, base+"/everything/mcp", key, `{"jsonrpc":"2.0","id":11,"method":"vendor/thing"}`); r.status != 403 {
		t.Fatalf("unknown method: %d %s", r.status, r.body)
	}

	m := scrape(t, base)
	for series, want := range map[string]string{
		`caddy_mcp_requests_total{decision="allow",method="tools/call",server="everything"}`:      "1",
		`caddy_mcp_requests_total{decision="deny",method="tools/call",server="everything"}`:       "1",
		`caddy_mcp_requests_total{decision="unauthenticated",method="other",server="everything"}`: "1", // not inspected before authentication
		`caddy_mcp_requests_total{decision="error",method="tools/list",server="dead"}`:            "1",
		`caddy_mcp_requests_total{decision="deny",method="other",server="everything"}`:            "1",
		`caddy_mcp_upstream_errors_total{kind="unreachable",server="dead"}`:                       "1",
		`caddy_mcp_request_duration_seconds_count{method="tools/call",server="everything"}`:       "2",
	} {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if strings.Contains(m, "delete_repo") || strings.Contains(m, "echo") || strings.Contains(m, testAPIKey) {
		t.Error("metrics labels name a tool or a token")
	}

	// Streams: hijacked (plain GET) and ReverseProxy (GET with Last-Event-ID, which the
	// list filter keeps on that path).
	const gauge = `caddy_mcp_open_streams{server="everything"}`
	for _, h := range []http.Header{{}, {"Last-Event-ID": {"1"}}} {
		h.Set("Authorization", "Bearer "+testAPIKey)
		h.Set("Accept", "text/event-stream")
		resp, cancel := openGet(t, base+"/everything/mcp", h)
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); err != nil || line != ": open\n" {
			t.Fatalf("stream start: %q %v", line, err)
		}
		waitFor(t, "open_streams to count the stream", func() bool { return metricValue(scrape(t, base), gauge) == "1" })
		cancel()
		resp.Body.Close()
		waitFor(t, "open_streams to come back down", func() bool { return metricValue(scrape(t, base), gauge) == "0" })
	}

	// Reload: the new config registers its collectors in its own registry.
	c.reload(t)
	http.DefaultClient.CloseIdleConnections() // the old server's keep-alive connections go away
	if r := post(t, base+"/everything/mcp", key, call(12, "tools/list", "")); r.status != 200 {
		t.Fatalf("after reload: %d %s", r.status, r.body)
	}
	if got := metricValue(scrape(t, base), `caddy_mcp_requests_total{decision="allow",method="tools/list",server="everything"}`); got == "" {
		t.Error("no requests_total after a reload")
	}

	// The audit log: one entry per MCP request (the /metrics scrapes are not MCP).
	var entries []map[string]any
	waitFor(t, "the audit entries", func() bool { entries = readAuditLog(t, auditLog); return len(entries) >= 8 })
	if len(entries) != 8 {
		t.Fatalf("%d audit entries, want 8", len(entries))
	}
	raw, _ := os.ReadFile(auditLog)
	if strings.Contains(string(raw), testAPIKey) {
		t.Error("the audit log contains the API key")
	}
	if sid := allow.header.Get("Mcp-Session-Id"); sid == "" || sid == "sess-1" || strings.Contains(string(raw), "sess-1") {
		t.Errorf("the upstream's session id reached the client (%q) or the audit log", sid)
	}
	e := entries[0]
	for k, want := range map[string]any{
		"logger": AuditLoggerName, "level": "info", "server": "everything", "method": "tools/call",
		"tool": "echo", "request_id": "7", "decision": "allow", "status": float64(200),
		"session_id": allow.header.Get("Mcp-Session-Id"), "remote_ip": "127.0.0.1", "http_method": "POST",
	} {
		if e[k] != want {
			t.Errorf("allowed entry: %s = %#v, want %#v (entry %v)", k, e[k], want, e)
		}
	}
	if g, _ := e["groups"].([]any); len(g) != 1 || g[0] != "readers" {
		t.Errorf("groups = %#v", e["groups"])
	}
	if e["arguments"] != `{"text":"hi"}` {
		t.Errorf("arguments = %#v (include_arguments is on)", e["arguments"])
	}
	if _, ok := e["latency"].(float64); !ok {
		t.Errorf("latency = %#v", e["latency"])
	}
	for i, want := range []struct {
		decision string
		status   float64
	}{{"allow", 200}, {"deny", 403}, {"unauthenticated", 401}, {"error", 502}, {"deny", 403}, {"allow", 200}, {"allow", 200}, {"allow", 200}} {
		if entries[i]["decision"] != want.decision || entries[i]["status"] != want.status {
			t.Errorf("entry %d: decision %v status %v, want %s %v", i, entries[i]["decision"], entries[i]["status"], want.decision, want.status)
		}
	}
	if entries[2]["subject"] != "" {
		t.Errorf("unauthenticated entry names a subject: %v", entries[2])
	}
	if entries[5]["method"] != "" || entries[5]["http_method"] != "GET" {
		t.Errorf("stream entry: %v", entries[5])
	}
}

// Several gateways in one config share its registry: the second registration reuses
// the first collectors; a registry that holds a different collector under the name
// fails provisioning instead of panicking.
func TestMetricsRegisteredTwice(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a, err := newGatewayMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newGatewayMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if a.requests != b.requests || a.openStreams != b.openStreams || a.duration != b.duration || a.upstreamErrors != b.upstreamErrors {
		t.Fatal("the second registration did not reuse the collectors")
	}
	b.requests.WithLabelValues("s", "ping", "allow").Inc()
	a.requests.WithLabelValues("s", "ping", "allow").Inc()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		if f.GetName() == "caddy_mcp_requests_total" {
			found = len(f.GetMetric()) == 1 && f.GetMetric()[0].GetCounter().GetValue() == 2
		}
	}
	if !found {
		t.Fatalf("gathered %v", fams)
	}

	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "caddy_mcp_requests_total", Help: "x"}))
	if _, err := newGatewayMetrics(other); err == nil {
		t.Fatal("a conflicting collector must be an error")
	}
}

func TestMethodLabel(t *testing.T) {
	for in, want := range map[string]string{
		"tools/call": "tools/call", "initialize": "initialize", "": "other",
		"vendor/x": "other", "tools/list,tools/call": "batch",
	} {
		if got := methodLabel(in); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestToolArgumentsBounded(t *testing.T) {
	if got := toolArguments([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1}}}`)); string(got) != `{"a":1}` {
		t.Fatalf("got %s", got)
	}
	big := `{"params":{"arguments":{"s":"` + strings.Repeat("é", 5000) + `"}}}`
	got := toolArguments([]byte(big))
	if len(got) > maxAuditArguments+len("…") || !strings.HasSuffix(string(got), "…") || !json.Valid([]byte(`"`+strings.TrimPrefix(string(got), `{"s":"`)+`"`)) {
		t.Fatalf("cut arguments: %d bytes, suffix %q", len(got), got[len(got)-8:])
	}
	if toolArguments([]byte(`{"params":{}}`)) != nil {
		t.Fatal("no arguments must give nil")
	}
}

func TestAuditCaddyfile(t *testing.T) {
	for src, want := range map[string]AuditConfig{
		"mcp_gateway {\n audit off\n}":                       {Disabled: true},
		"mcp_gateway {\n audit {\n include_arguments\n }\n}": {IncludeArguments: true},
		"mcp_gateway {\n audit\n}":                           {},
	} {
		g := new(Gateway)
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src)); err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if g.Audit == nil || *g.Audit != want {
			t.Errorf("%q: %+v", src, g.Audit)
		}
	}
	for _, bad := range []string{
		"mcp_gateway {\n audit on\n}",
		"mcp_gateway {\n audit {\n bogus\n }\n}",
		"mcp_gateway {\n audit off {\n include_arguments\n }\n}",
		"mcp_gateway {\n audit\n audit off\n}",
	} {
		if err := new(Gateway).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// BenchmarkObserve is the per-request cost of the audit and metrics hooks around a
// request: audit off by level (Info disabled) and on (JSON to io.Discard).
func BenchmarkObserve(b *testing.B) {
	m, err := newGatewayMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, bc := range []struct {
		name string
		log  *zap.Logger
	}{
		{"info-disabled", zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.WarnLevel))},
		{"info-enabled", zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o := &observer{audit: bc.log.Named(AuditLoggerName), metrics: m}
			r := httptest.NewRequest(http.MethodPost, "/everything/mcp", nil)
			repl := caddy.NewReplacer()
			repl.Set("http.mcp.server", "everything")
			repl.Set("http.mcp.method", "tools/call")
			repl.Set("http.mcp.tool", "echo")
			repl.Set("http.mcp.request_id", "7")
			repl.Set("http.mcp.auth.subject", "alice")
			repl.Set("http.mcp.auth.groups", "readers")
			r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
			in := &jsonrpc.Inspection{Messages: []jsonrpc.Message{{Method: "tools/call", Name: "echo", ID: "7"}}}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				aw := o.begin(w, r)
				aw.inspected(in, nil)
				aw.WriteHeader(http.StatusOK)
				o.end(aw, r)
			}
		})
	}
}
