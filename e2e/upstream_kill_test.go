package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// An upstream that dies mid-stream: the client's open GET stream through the gateway
// ends promptly, caddy's goroutines return to their baseline (nothing leaks per dead
// stream), later requests get the gateway's 502 naming the server, and once the
// upstream is back requests work again.
func TestUpstreamKilledMidStream(t *testing.T) {
	t.Parallel()
	es := testenv.StartEverythingServer(t, true)
	base, caddy := gatewayFor(t, map[string]string{"everything": es.URL}, "")
	url := base + "/everything/mcp"
	c := newHTTPClient(t)

	// Warm up (connections, pools, lazily started goroutines), then take the baseline
	// with no client connection open.
	sid, _ := initSession(t, c, url, "2025-11-25")
	c.CloseIdleConnections()
	baseline := stableGoroutines(t, caddy)

	h := hdr("Accept", "text/event-stream", "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
	resp, s, _ := openStream(t, c, "GET", url, h, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if ev, ok := s.next(t); !ok || len(ev.Comments) == 0 {
		t.Fatalf("GET stream: first event %+v, ended %v (%v)", ev, !ok, s.Err())
	}
	// The measurement sees the open stream (so it can see a leak).
	open, _ := caddy.goroutines(t)
	if open <= baseline {
		t.Errorf("caddy has %d goroutines with a stream open, baseline %d: the count cannot show a leak", open, baseline)
	}

	killed := time.Now()
	es.Kill()
	select {
	case _, ok := <-s.Events:
		if ok {
			t.Errorf("the stream delivered an event after the upstream died")
		}
		for range s.Events {
		}
		t.Logf("client stream ended %v after the kill: %v", time.Since(killed).Round(time.Millisecond), s.Err())
		if s.Err() == nil {
			t.Errorf("stream ended without a read error")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the client's stream still open 5s after the upstream died")
	}

	c.CloseIdleConnections()
	var n int
	var profile string
	if !eventually(5*time.Second, func() bool { n, profile = caddy.goroutines(t); return n <= baseline }) {
		t.Errorf("caddy's goroutines: %d, baseline %d, 5s after the stream ended; profile:\n%s", n, baseline, profile)
	}
	t.Logf("caddy goroutines: baseline %d, with the stream open %d, after the upstream died %d", baseline, open, n)

	resp2, body := send(t, c, "POST", url, mcpHeader(sid, "2025-11-25"), `{"jsonrpc":"2.0","id":42,"method":"ping"}`)
	wantRPCError(t, "ping to the dead upstream", resp2, body, http.StatusBadGateway, -32003, "42", `"everything"`)
	gatewayMade(t, "502", resp2, body)
	resp2, body = send(t, c, "GET", url, h, "")
	wantRPCError(t, "GET stream to the dead upstream", resp2, body, http.StatusBadGateway, -32003, "null", `"everything"`)

	es.Restart()
	sid2, _ := initSession(t, c, url, "2025-11-25")
	resp2, body = send(t, c, "POST", url, mcpHeader(sid2, "2025-11-25"),
		`{"jsonrpc":"2.0","id":43,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`)
	if m := response(t, messages(t, resp2, body), "43"); resp2.StatusCode != http.StatusOK || m.Error != nil {
		t.Errorf("after restart: %d %s", resp2.StatusCode, body)
	}
	// The old session died with the old process: the new one answers 404 for it.
	resp2, body = send(t, c, "POST", url, mcpHeader(sid, "2025-11-25"), `{"jsonrpc":"2.0","id":44,"method":"ping"}`)
	if resp2.StatusCode != http.StatusNotFound || string(body) != "session not found\n" {
		t.Errorf("old session after restart: %d %q, want the upstream's 404", resp2.StatusCode, body)
	}
}

// stableGoroutines waits (up to 5s) until caddy's goroutine count reads the same three
// times in a row, and returns it.
func stableGoroutines(t *testing.T, caddy *caddyInstance) int {
	t.Helper()
	var last, same int
	var ok bool
	eventually(5*time.Second, func() bool {
		n, _ := caddy.goroutines(t)
		if n == last {
			same++
		} else {
			last, same = n, 1
		}
		ok = same >= 3
		return ok
	})
	if !ok {
		t.Logf("caddy's goroutine count did not settle; baseline %d", last)
	}
	return last
}
