package mcpgateway

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// streamCaddy is an in-process Caddy with mcp_gateway behind encode (as in the
// production example), access logs to accessLog, and the registry servers "s"
// (streamable HTTP at up[0]/mcp), "legacy" (SSE at up[1]/sse) and "nope" (up[2]/mcp).
func streamCaddy(up [3]string, accessLog string) *testCaddy {
	return &testCaddy{
		LogFiles: map[string]string{"http.log.access": accessLog},
		Servers: []any{
			map[string]any{"name": "s", "upstream": up[0] + "/mcp"},
			map[string]any{"name": "legacy", "upstream": up[1] + "/sse", "transport": "sse"},
			map[string]any{"name": "nope", "upstream": up[2] + "/mcp"},
		},
		Before: []any{map[string]any{"handler": "encode", "encodings": map[string]any{"gzip": map[string]any{}}}},
		Server: map[string]any{"logs": map[string]any{}},
	}
}

// Through a real Caddy (access log recorder, idle-timeout wrappers, encode): the stream
// is hijacked, events arrive one by one uncompressed, the access log has the 200, the
// legacy endpoint is rewritten, and a config reload (Cleanup) cuts the open streams.
func TestStreamThroughCaddy(t *testing.T) {
	up, legacy := startSSEUpstream(t), startSSEUpstream(t)
	nope := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		http.Error(w, "GET not supported", http.StatusMethodNotAllowed)
	})
	ups := [3]string{up.URL, legacy.URL, nope}
	accessLog := filepath.Join(t.TempDir(), "access.log")
	c := streamCaddy(ups, accessLog)
	base := c.start(t)
	before := openStreams.Load()

	// A client that accepts gzip, as browsers and the go-sdk do: encode in front must
	// not compress the stream (no-transform), so the hijack may take it.
	resp, _ := openGet(t, base+"/s/mcp", http.Header{"Accept": {"text/event-stream"}, "Accept-Encoding": {"gzip"}, "Mcp-Session-Id": {anonymousSession(t, "s", "abc")}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" || !resp.Close {
		t.Fatalf("GET stream: %d %v (Connection: close %v)", resp.StatusCode, resp.Header, resp.Close)
	}
	waitFor(t, "the stream to be hijacked", func() bool { return openStreams.Load() == before+1 })
	if got := up.lastRequest(t).Header.Get("Mcp-Session-Id"); got != "abc" {
		t.Errorf("Mcp-Session-Id sent upstream: %q", got)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		ev := fmt.Sprintf("id: %d\ndata: caddy\n\n", i)
		up.send(t, ev)
		if got := readEvent(t, br); got != ev {
			t.Fatalf("got %q, want %q", got, ev)
		}
	}
	// The handler returned at the hijack: the access log has the request, status 200.
	waitFor(t, "the access log entry", func() bool {
		b, _ := os.ReadFile(accessLog)
		return strings.Contains(string(b), `"uri":"/s/mcp"`) && strings.Contains(string(b), `"status":200`)
	})
	close(up.events)
	if rest, err := readEnd(t, br); err != nil || rest != "" {
		t.Fatalf("after a clean upstream end: %q, %v", rest, err)
	}
	waitFor(t, "the stream to be released", func() bool { return openStreams.Load() == before })

	// The legacy transport's endpoint event, rewritten on the hijacked path.
	resp, _ = openGet(t, base+"/legacy/sse", nil)
	waitFor(t, "the legacy stream to be hijacked", func() bool { return openStreams.Load() == before+1 })
	br = bufio.NewReader(resp.Body)
	legacy.send(t, "event: endpoint\ndata: /messages?sessionId=xyz\n\n")
	if got, want := readEvent(t, br), "event: endpoint\ndata: /legacy/message?sessionId="; !strings.HasPrefix(got, want) || strings.Contains(got, "xyz") {
		t.Fatalf("endpoint event %q, want %q", got, want)
	}

	// Reloading the config cleans the old gateway up: its streams are cut.
	c.reload(t)
	if rest, err := readEnd(t, br); err == nil {
		t.Errorf("the stream ended cleanly at the reload (%q); want it cut", rest)
	}
	select {
	case <-legacy.gone:
	case <-time.After(streamTestTimeout):
		t.Fatal("the upstream connection stayed open after the reload")
	}
	waitFor(t, "the stream to be released", func() bool { return openStreams.Load() == before })

	// A 405 from the upstream reaches the client as is.
	r405, err := http.Get(base + "/nope/mcp")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r405.Body)
	r405.Body.Close()
	if r405.StatusCode != http.StatusMethodNotAllowed || r405.Header.Get("Allow") != "POST" || string(b) != "GET not supported\n" {
		t.Errorf("405 relayed as %d %v %q", r405.StatusCode, r405.Header, b)
	}
}

func httptestServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
