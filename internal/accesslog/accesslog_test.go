package accesslog

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Hosts map to loggers as Caddy maps them: exact name, then the first wildcard form,
// then the default; mapped hosts are logged even when skip_hosts names them.
func TestLoggerNames(t *testing.T) {
	logs := &caddyhttp.ServerLogConfig{
		DefaultLoggerName: "dflt",
		LoggerNames: map[string]caddyhttp.StringArray{
			"mcp.example.com": {"a", "b"},
			"*.example.com":   {"wild"},
			"skipped.test":    {"s"},
		},
		SkipHosts: []string{"*.test", "quiet.example.org"},
	}
	for host, want := range map[string][]string{
		"mcp.example.com":   {"a", "b"},
		"MCP.Example.com":   {"a", "b"},
		"api.example.com":   {"wild"},
		"other.example.org": {"dflt"},
	} {
		if got := loggerNames(logs, host); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
	for host, want := range map[string]bool{
		"skipped.test":      true, // mapped beats skipped
		"else.test":         false,
		"quiet.example.org": false,
		"loud.example.org":  true,
	} {
		if got := logsHost(logs, host); got != want {
			t.Errorf("logsHost(%s) = %v", host, got)
		}
	}
	logs.SkipUnmappedHosts = true
	if logsHost(logs, "loud.example.org") || !logsHost(logs, "api.example.com") {
		t.Error("skip_unmapped_hosts not honoured")
	}
}

// A request without a credential header, or outside a Caddy server with access logs,
// is left to Caddy: nothing taken, nothing allocated.
func TestTakeLeavesOthers(t *testing.T) {
	lw := &Writer{}
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.Header.Set("Authorization", "Bearer x")
	w := httptest.NewRecorder()
	if e := lw.Take(w, r); e != nil {
		t.Fatal("took a request without X-API-Key")
	}
	r.Header.Set("X-API-Key", "k")
	if e := lw.Take(w, r); e != nil {
		t.Fatal("took a request outside a Caddy server")
	}
	if n := testing.AllocsPerRun(100, func() { lw.Take(w, r).Write() }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
