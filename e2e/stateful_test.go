package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// gatewayFor runs caddy with the gateway in front of the given upstreams
// (name → upstream URL, registered as streamable-http servers) and extra gateway
// options, and returns caddy's base URL.
func gatewayFor(t *testing.T, upstreams map[string]string, gatewayOptions string) (string, *caddyInstance) {
	t.Helper()
	var servers strings.Builder
	env := map[string]string{}
	names := make([]string, 0, len(upstreams))
	for name := range upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v := "UPSTREAM_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
		env[v] = upstreams[name]
		servers.WriteString("\t\tserver " + name + " {$" + v + "}\n")
	}
	// Servers registered at runtime (the crash test imports some) run on loopback here.
	cfg := "{\n\tadmin {{ADMIN}}\n\tmcp_registry {\n\t\tstorage bbolt {{DB}}\n\t\truntime_upstreams {\n\t\t\tallow 127.0.0.1/32\n\t\t}\n" +
		servers.String() + "\t}\n}\n\n" +
		":{{PORT}} {\n\tbind 127.0.0.1\n\tmcp_gateway {\n" + gatewayOptions + "\t}\n}\n"
	return startCaddy(t, cfg, env)
}

// The stateful everything-server (2025-11-25, sessions) through the gateway: the go-sdk
// client initializes, lists and calls tools and gets progress notifications; raw HTTP
// shows that SSE events are flushed one by one, that the standalone GET stream works,
// that Mcp-Session-Id is the upstream's own, and that DELETE reaches the upstream.
func TestStatefulEverythingServer(t *testing.T) {
	t.Parallel()
	es := testenv.StartEverythingServer(t, true)
	base, _ := gatewayFor(t, map[string]string{"everything": es.URL}, "")
	url := base + "/everything/mcp"
	c := newHTTPClient(t)

	t.Run("go-sdk client", func(t *testing.T) {
		rec := new(recorder)
		var mu sync.Mutex
		var progress []float64
		listChanged := make(chan struct{}, 8)
		cs := connect(t, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: rec.client()}, &mcp.ClientOptions{
			ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
				mu.Lock()
				progress = append(progress, r.Params.Progress)
				mu.Unlock()
			},
			ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
				listChanged <- struct{}{}
			},
		}, "2025-11-25")

		init := cs.InitializeResult()
		if init.ProtocolVersion != "2025-11-25" || init.ServerInfo == nil || init.ServerInfo.Name != "mcp-conformance-test-server" {
			t.Errorf("initialize result: version %q, serverInfo %+v", init.ProtocolVersion, init.ServerInfo)
		}
		inits := rec.find(http.MethodPost, "initialize")
		if len(inits) != 1 || inits[0].Status != http.StatusOK {
			t.Fatalf("initialize exchanges: %+v", inits)
		}
		sid := inits[0].RespHeader.Get("Mcp-Session-Id")
		if sid == "" || sid != cs.ID() {
			t.Fatalf("Mcp-Session-Id from the gateway %q, session ID %q", sid, cs.ID())
		}
		// The id is the upstream's sealed for this caller: it means nothing to the
		// upstream directly; through the gateway the upstream gets its own back.
		resp, body := send(t, c, "POST", es.URL, mcpHeader(sid, "2025-11-25"), `{"jsonrpc":"2.0","id":"direct","method":"ping"}`)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("the upstream knows the client's session id: %d %s", resp.StatusCode, body)
		}
		for _, x := range rec.find(http.MethodPost, "tools/list") {
			if got := x.ReqHeader.Get("Mcp-Session-Id"); got != sid {
				t.Errorf("tools/list carried Mcp-Session-Id %q", got)
			}
		}

		names := toolNames(t, cs)
		for _, want := range []string{"test_simple_text", "test_tool_with_progress", "test_trigger_tool_change"} {
			if !slices.Contains(names, want) {
				t.Errorf("tools/list lacks %s: %v", want, names)
			}
		}

		res := callTool(t, cs, &mcp.CallToolParams{Name: "test_simple_text", Arguments: map[string]any{}})
		if res.IsError || text(res) != "This is a simple text response for testing." {
			t.Errorf("test_simple_text: isError=%v %q", res.IsError, text(res))
		}

		params := &mcp.CallToolParams{Name: "test_tool_with_progress", Arguments: map[string]any{}}
		params.SetProgressToken("e2e-progress")
		res = callTool(t, cs, params)
		if res.IsError || text(res) != "e2e-progress" {
			t.Errorf("test_tool_with_progress: isError=%v %q, want the progress token back", res.IsError, text(res))
		}
		mu.Lock()
		got := slices.Clone(progress)
		mu.Unlock()
		if !slices.Equal(got, []float64{0, 50, 100}) {
			t.Errorf("progress notifications %v, want [0 50 100] before the result", got)
		}
		for _, x := range rec.find(http.MethodPost, "tools/call") {
			if x.Status != http.StatusOK || !strings.HasPrefix(x.RespHeader.Get("Content-Type"), "text/event-stream") {
				t.Errorf("tools/call answered %d %q, want 200 text/event-stream", x.Status, x.RespHeader.Get("Content-Type"))
			}
		}

		// A tool-list change reaches the client on its own standalone GET stream.
		res = callTool(t, cs, &mcp.CallToolParams{Name: "test_trigger_tool_change", Arguments: map[string]any{}})
		if res.IsError {
			t.Fatalf("test_trigger_tool_change: %q", text(res))
		}
		select {
		case <-listChanged:
		case <-time.After(eventTimeout):
			t.Errorf("no notifications/tools/list_changed on the client's GET stream within %v; GETs: %+v", eventTimeout, rec.find(http.MethodGet, ""))
		}
		for _, x := range rec.find(http.MethodGet, "") {
			if x.Status != http.StatusOK || x.RespHeader.Get("Content-Type") != "text/event-stream" {
				t.Errorf("the client's GET stream answered %d %q", x.Status, x.RespHeader.Get("Content-Type"))
			}
		}
	})

	t.Run("SSE events flushed one by one", func(t *testing.T) {
		sid, _ := initSession(t, c, url, "2025-11-25")
		resp, s, _ := openStream(t, c, "POST", url, mcpHeader(sid, "2025-11-25"),
			`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"tok"}}}`)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("tools/call: %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var progressAt []time.Time
		for {
			m, ev := s.nextMessage(t)
			if m.Method == "notifications/progress" {
				progressAt = append(progressAt, ev.At)
				continue
			}
			if string(m.ID) != "7" || m.Error != nil || !strings.Contains(string(m.Result), `"text":"tok"`) {
				t.Fatalf("unexpected message %+v", m)
			}
			if len(progressAt) != 3 {
				t.Fatalf("%d progress events before the result, want 3", len(progressAt))
			}
			// The tool sleeps 50ms after each of its three notifications: unbuffered,
			// the result arrives >= 150ms after the first notification. A gateway that
			// held events back would deliver them together.
			if gap := ev.At.Sub(progressAt[0]); gap < 50*time.Millisecond {
				t.Errorf("result %v after the first progress event: events were not flushed as written", gap)
			}
			break
		}
		if _, ok := s.next(t); ok {
			t.Errorf("the POST stream went on after its response")
		}
	})

	t.Run("standalone GET stream", func(t *testing.T) {
		sid, _ := initSession(t, c, url, "2025-11-25")
		h := hdr("Accept", "text/event-stream", "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
		resp, s, _ := openStream(t, c, "GET", url, h, "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET stream: %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		// go-sdk opens the stream with a ": ok" comment: it must arrive while the
		// stream stays open, i.e. the gateway flushed it.
		ev, ok := s.next(t)
		if !ok || len(ev.Comments) != 1 || ev.Comments[0] != "ok" || ev.HasData {
			t.Fatalf("first bytes of the GET stream: %+v (ended: %v, %v)", ev, !ok, s.Err())
		}
		// A request on another connection makes the server notify on this stream.
		resp2, body := send(t, c, "POST", url, mcpHeader(sid, "2025-11-25"),
			`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_trigger_tool_change","arguments":{}}}`)
		if resp2.StatusCode != http.StatusOK {
			t.Fatalf("test_trigger_tool_change: %d %s", resp2.StatusCode, body)
		}
		m, ev := s.nextMessage(t)
		if m.Method != "notifications/tools/list_changed" || ev.Event != "message" {
			t.Errorf("GET stream delivered %+v (event %q), want notifications/tools/list_changed", m, ev.Event)
		}
	})

	t.Run("DELETE reaches the upstream", func(t *testing.T) {
		sid, _ := initSession(t, c, url, "2025-11-25")
		resp, body := send(t, c, "DELETE", url, hdr("Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25"), "")
		if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
			t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
		}
		// The session is gone upstream, and the gateway relays the upstream's 404.
		direct, dbody := send(t, c, "POST", es.URL, mcpHeader(sid, "2025-11-25"), `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
		if direct.StatusCode != http.StatusNotFound {
			t.Errorf("after DELETE the upstream still knows the session: %d %s", direct.StatusCode, dbody)
		}
		via, vbody := send(t, c, "POST", url, mcpHeader(sid, "2025-11-25"), `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
		if via.StatusCode != http.StatusNotFound || string(vbody) != string(dbody) {
			t.Errorf("after DELETE via the gateway: %d %q; directly: %d %q", via.StatusCode, vbody, direct.StatusCode, dbody)
		}
	})
}

// Resumption (2025-11-25): the npm server-everything keeps an event store. A POST's
// SSE answer starts with a priming event carrying an id; a GET with that id as
// Last-Event-ID through the gateway replays what followed it. The go-sdk
// everything-server has no event store: its 400 for Last-Event-ID passes through.
func TestResumption(t *testing.T) {
	t.Parallel()
	npm := testenv.StartServerEverythingNPM(t, testenv.NPMStreamableHTTP)
	es := testenv.StartEverythingServer(t, true)
	base, _ := gatewayFor(t, map[string]string{"npm": npm.URL, "everything": es.URL}, "")
	c := newHTTPClient(t)

	url := base + "/npm/mcp"
	sid, initEvents := initSession(t, c, url, "2025-11-25")
	if len(initEvents) == 0 || initEvents[0].ID == "" || initEvents[0].HasData && initEvents[0].Data != "" {
		t.Fatalf("initialize stream does not start with a priming event (id, empty data): %+v", initEvents)
	}

	resp, body := send(t, c, "POST", url, mcpHeader(sid, "2025-11-25"),
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"resume-me"}}}`)
	if resp.StatusCode != http.StatusOK || !isSSE(resp) {
		t.Fatalf("tools/call: %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if got := resp.Header.Get("Mcp-Session-Id"); got != sid {
		t.Errorf("tools/call answered Mcp-Session-Id %q, want %q", got, sid)
	}
	events := parseSSE(body)
	if len(events) != 2 || events[0].ID == "" || events[0].Data != "" || events[1].ID == "" {
		t.Fatalf("tools/call stream: want a priming event then the result, both with ids: %+v", events)
	}
	priming, result := events[0], events[1]
	if !strings.Contains(result.Data, `"text":"Echo: resume-me"`) {
		t.Fatalf("tools/call result event %+v", result)
	}

	// Resume after the priming event: the gateway forwards Last-Event-ID and streams
	// the replay.
	h := hdr("Accept", "text/event-stream", "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25", "Last-Event-ID", priming.ID)
	gresp, s, _ := openStream(t, c, "GET", url, h, "")
	if gresp.StatusCode != http.StatusOK || gresp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET with Last-Event-ID: %d %q", gresp.StatusCode, gresp.Header.Get("Content-Type"))
	}
	m, ev := s.nextMessage(t)
	if ev.ID != result.ID || string(m.ID) != "2" || !strings.Contains(string(m.Result), "Echo: resume-me") {
		t.Errorf("replay delivered event %q %+v; want event %q, the echo result", ev.ID, m, result.ID)
	}

	// go-sdk's everything-server cannot resume: its own answer passes through.
	esURL := base + "/everything/mcp"
	esSid, _ := initSession(t, c, esURL, "2025-11-25")
	h = hdr("Accept", "text/event-stream", "Mcp-Session-Id", esSid, "MCP-Protocol-Version", "2025-11-25", "Last-Event-ID", "0_0")
	via, vbody := send(t, c, "GET", esURL, h, "")
	if via.StatusCode != http.StatusBadRequest || string(vbody) != "stream replay unsupported\n" {
		t.Errorf("Last-Event-ID to a server without an event store: via gateway %d %q, want its own 400",
			via.StatusCode, vbody)
	}
}
