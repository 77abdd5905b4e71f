package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// Legacy HTTP+SSE (2024-11-05): the npm server-everything in sse mode, registered with
// transport sse. The go-sdk SSE client connects through the gateway; with raw HTTP,
// the endpoint event names the gateway's own message path, and a POST there reaches
// the upstream session whose answer arrives on the stream.
func TestLegacySSE(t *testing.T) {
	t.Parallel()
	npm := testenv.StartServerEverythingNPM(t, testenv.NPMSSE)
	base, _ := startCaddy(t, `{
	admin {{ADMIN}}
	mcp_registry {
		storage bbolt {{DB}}
		server legacy {$LEGACY_URL} {
			transport sse
		}
	}
}

:{{PORT}} {
	bind 127.0.0.1
	mcp_gateway
}
`, map[string]string{"LEGACY_URL": npm.URL})

	t.Run("go-sdk SSE client", func(t *testing.T) {
		cs := connect(t, &mcp.SSEClientTransport{Endpoint: base + "/legacy/sse"}, nil, "")
		names := toolNames(t, cs)
		for _, want := range []string{"echo", "get-sum"} {
			if !slices.Contains(names, want) {
				t.Errorf("tools/list lacks %s: %v", want, names)
			}
		}
		res := callTool(t, cs, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "through the gateway"}})
		if res.IsError || text(res) != "Echo: through the gateway" {
			t.Errorf("echo: isError=%v %q", res.IsError, text(res))
		}
	})

	t.Run("endpoint event rewritten", func(t *testing.T) {
		c := newHTTPClient(t)
		resp, s, _ := openStream(t, c, "GET", base+"/legacy/sse", hdr("Accept", "text/event-stream"), "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET /legacy/sse: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		ev, ok := s.next(t)
		if !ok || ev.Event != "endpoint" {
			t.Fatalf("first event %+v (ended %v: %v), want event: endpoint", ev, !ok, s.Err())
		}
		// The upstream's session (a uuid) is sealed for this caller.
		if !regexp.MustCompile(`^/legacy/message\?sessionId=[A-Za-z0-9_-]{40,}$`).MatchString(ev.Data) {
			t.Fatalf("endpoint event data %q, want /legacy/message?sessionId=<sealed id>", ev.Data)
		}
		// POST the initialize to the rewritten endpoint: the answer comes on the stream.
		presp, pbody := send(t, c, "POST", base+ev.Data, hdr("Content-Type", "application/json"),
			fmt.Sprintf(initializeFmt, `"init"`, "2024-11-05"))
		if presp.StatusCode != http.StatusAccepted || string(pbody) != "Accepted" {
			t.Errorf("POST %s: %d %q, want the upstream's 202 Accepted", ev.Data, presp.StatusCode, pbody)
		}
		m, mev := s.nextMessage(t)
		if mev.Event != "message" || string(m.ID) != `"init"` || !strings.Contains(string(m.Result), `"protocolVersion":"2024-11-05"`) {
			t.Errorf("stream delivered %q %+v, want the initialize result", mev.Event, m)
		}
		// An sse server has no streamable HTTP endpoint.
		r, b := send(t, c, "POST", base+"/legacy/mcp", mcpHeader("", ""), `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
		wantRPCError(t, "POST /legacy/mcp on an sse server", r, b, http.StatusNotFound, -32001, "null", "/legacy/mcp")
	})
}

// The npm server-everything in streamableHttp mode (TypeScript SDK, stateful) with the
// go-sdk client through the gateway.
func TestServerEverythingStreamableHTTP(t *testing.T) {
	t.Parallel()
	npm := testenv.StartServerEverythingNPM(t, testenv.NPMStreamableHTTP)
	base, _ := gatewayFor(t, map[string]string{"npm": npm.URL}, "")

	rec := new(recorder)
	cs := connect(t, &mcp.StreamableClientTransport{Endpoint: base + "/npm/mcp", HTTPClient: rec.client()}, nil, "")
	if info := cs.InitializeResult().ServerInfo; info == nil || info.Name != "mcp-servers/everything" {
		t.Errorf("serverInfo %+v", info)
	}
	if cs.ID() == "" {
		t.Errorf("no session id")
	}
	names := toolNames(t, cs)
	for _, want := range []string{"echo", "get-sum", "trigger-long-running-operation"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	res := callTool(t, cs, &mcp.CallToolParams{Name: "get-sum", Arguments: map[string]any{"a": 20, "b": 22}})
	if res.IsError || text(res) != "The sum of 20 and 22 is 42." {
		t.Errorf("get-sum: isError=%v %q", res.IsError, text(res))
	}
	res = callTool(t, cs, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hi"}})
	if res.IsError || text(res) != "Echo: hi" {
		t.Errorf("echo: isError=%v %q", res.IsError, text(res))
	}
	// The client probes 2026-07-28 first; the upstream's own 400 (no session) makes it
	// fall back to initialize.
	for _, x := range rec.find(http.MethodPost, "server/discover") {
		if x.Status != http.StatusBadRequest || x.RespHeader.Get("X-Powered-By") != "Express" {
			t.Errorf("server/discover answered %d %v, want the upstream's 400", x.Status, x.RespHeader)
		}
	}
	for _, x := range rec.find(http.MethodPost, "") {
		if x.RPCMethod == "server/discover" {
			continue
		}
		if x.Status != http.StatusOK && x.Status != http.StatusAccepted {
			t.Errorf("POST %s answered %d", x.RPCMethod, x.Status)
		}
		if x.RPCMethod != "initialize" && x.ReqHeader.Get("Mcp-Session-Id") != cs.ID() {
			t.Errorf("POST %s carried Mcp-Session-Id %q, want %q", x.RPCMethod, x.ReqHeader.Get("Mcp-Session-Id"), cs.ID())
		}
	}
}
