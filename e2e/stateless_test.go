package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// meta2026 is the _meta a 2026-07-28 request carries in its params.
const meta2026 = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"caddymcp-e2e","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`

// header2026 is what a 2026-07-28 client sends with a POST.
func header2026(method, name string) http.Header {
	h := mcpHeader("", "2026-07-28")
	h.Set("Mcp-Method", method)
	if name != "" {
		h.Set("Mcp-Name", name)
	}
	return h
}

// The stateless everything-server (2026-07-28) through the gateway: the go-sdk v1.8
// client negotiates 2026-07-28 and calls a tool; a Mcp-Method header that disagrees
// with the body is refused by the gateway itself (400, -32020) without reaching the
// upstream; Mcp-Param-* headers, known or not, reach the upstream; the upstream's 405
// to a GET passes through.
func TestStatelessEverythingServer(t *testing.T) {
	t.Parallel()
	es := testenv.StartEverythingServer(t, false)
	echo := startEchoUpstream(t)
	base, _ := gatewayFor(t, map[string]string{"everything": es.URL, "echo": echo.MCP}, "")
	url := base + "/everything/mcp"
	c := newHTTPClient(t)

	t.Run("go-sdk client", func(t *testing.T) {
		rec := new(recorder)
		cs := connect(t, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: rec.client()}, nil, "")
		if v := cs.InitializeResult().ProtocolVersion; v != "2026-07-28" {
			t.Errorf("negotiated %q, want 2026-07-28", v)
		}
		if len(rec.find(http.MethodPost, "initialize")) != 0 {
			t.Errorf("the client fell back to initialize")
		}
		res := callTool(t, cs, &mcp.CallToolParams{Name: "test_simple_text", Arguments: map[string]any{}})
		if res.IsError || text(res) != "This is a simple text response for testing." {
			t.Errorf("test_simple_text: isError=%v %q", res.IsError, text(res))
		}
		calls := rec.find(http.MethodPost, "tools/call")
		if len(calls) != 1 || calls[0].Status != http.StatusOK ||
			calls[0].ReqHeader.Get("Mcp-Method") != "tools/call" || calls[0].ReqHeader.Get("Mcp-Name") != "test_simple_text" {
			t.Errorf("tools/call exchanges %+v", calls)
		}
	})

	t.Run("header mismatch refused by the gateway", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},` + meta2026 + `}}`
		// The upstream refuses this too, but differently: no Cache-Control, its own wording.
		direct, dbody := send(t, c, "POST", es.URL, header2026("tools/list", ""), body)
		if direct.StatusCode != http.StatusBadRequest || direct.Header.Get("Cache-Control") != "" ||
			!strings.HasPrefix(string(dbody), `{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"header mismatch:`) {
			t.Fatalf("upstream's own answer changed, adjust this test: %d %v %s", direct.StatusCode, direct.Header, dbody)
		}
		resp, rbody := send(t, c, "POST", url, header2026("tools/list", ""), body)
		wantRPCError(t, "Mcp-Method tools/list, body tools/call", resp, rbody, http.StatusBadRequest, -32020, "1", "Mcp-Method", "tools/list", "tools/call")
		gatewayMade(t, "Mcp-Method mismatch", resp, rbody)

		// The echo upstream would answer 200: with the gateway refusing, it sees nothing.
		n := echo.count()
		resp, rbody = send(t, c, "POST", base+"/echo/mcp", header2026("tools/list", ""), body)
		wantRPCError(t, "Mcp-Method mismatch to echo", resp, rbody, http.StatusBadRequest, -32020, "1", "Mcp-Method")
		resp, rbody = send(t, c, "POST", base+"/echo/mcp", header2026("tools/call", "other_tool"), body)
		wantRPCError(t, "Mcp-Name mismatch to echo", resp, rbody, http.StatusBadRequest, -32020, "1", "Mcp-Name")
		if got := echo.count(); got != n {
			t.Errorf("the upstream received %d refused requests", got-n)
		}
	})

	t.Run("Mcp-Param headers forwarded", func(t *testing.T) {
		call := func(region string) string {
			return `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_x_mcp_header","arguments":{"region":"` + region + `"},` + meta2026 + `}}`
		}
		// The everything-server checks Mcp-Param-Region against the argument: without the
		// header it answers 400, so a 200 proves the gateway forwarded it.
		h := header2026("tools/call", "test_x_mcp_header")
		resp, body := send(t, c, "POST", url, h, call("eu-west-1"))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `missing Mcp-Param-Region header`) {
			t.Errorf("without Mcp-Param-Region: %d %s; want the upstream's 400", resp.StatusCode, body)
		}
		h.Set("Mcp-Param-Region", "eu-west-1")
		resp, body = send(t, c, "POST", url, h, call("eu-west-1"))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"text":"region=eu-west-1"`) {
			t.Errorf("with Mcp-Param-Region: %d %s", resp.StatusCode, body)
		}
		// A disagreeing Mcp-Param-* header is the upstream's business, answered by it.
		h.Set("Mcp-Param-Region", "us-east-1")
		resp, body = send(t, c, "POST", url, h, call("eu-west-1"))
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Cache-Control") == "no-store" ||
			!strings.Contains(string(body), `"code":-32020`) || !strings.Contains(string(body), "Mcp-Param-Region") {
			t.Errorf("mismatching Mcp-Param-Region: %d %v %s; want the upstream's own 400", resp.StatusCode, resp.Header, body)
		}

		// Unknown Mcp-Param-* headers (and the other MCP headers) arrive unchanged.
		h = header2026("tools/call", "anything")
		h.Set("Mcp-Param-Region", "eu-west-1")
		h.Set("Mcp-Param-Some-Future-Thing", "x=1; y=\"2\"")
		h.Add("Mcp-Param-Multi", "a")
		h.Add("Mcp-Param-Multi", "b")
		body2 := `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"anything","arguments":{},` + meta2026 + `}}`
		resp, body = send(t, c, "POST", base+"/echo/mcp?q=1", h, body2)
		if resp.StatusCode != http.StatusOK || string(body) != `{"jsonrpc":"2.0","id":4,"result":{"echo":"tools/call"}}` {
			t.Fatalf("echo: %d %s", resp.StatusCode, body)
		}
		got := echo.last(t)
		for _, name := range []string{"Mcp-Param-Region", "Mcp-Param-Some-Future-Thing", "Mcp-Param-Multi",
			"Mcp-Method", "Mcp-Name", "Mcp-Protocol-Version", "Accept", "Content-Type"} {
			if g, w := got.Header.Values(name), h.Values(name); strings.Join(g, "|") != strings.Join(w, "|") {
				t.Errorf("upstream got %s %q, client sent %q", name, g, w)
			}
		}
		if string(got.Body) != body2 || got.Method != "POST" || got.Path != "/mcp" || got.RawQuery != "q=1" {
			t.Errorf("upstream got %s %s?%s %q", got.Method, got.Path, got.RawQuery, got.Body)
		}
		if got.Host != strings.TrimPrefix(echo.URL, "http://") {
			t.Errorf("upstream got Host %q, want its own %q", got.Host, strings.TrimPrefix(echo.URL, "http://"))
		}
	})

	t.Run("GET answered by the upstream", func(t *testing.T) {
		via, vbody := send(t, c, "GET", url, hdr("Accept", "text/event-stream"), "")
		direct, dbody := send(t, c, "GET", es.URL, hdr("Accept", "text/event-stream"), "")
		if via.StatusCode != http.StatusMethodNotAllowed || via.Header.Get("Allow") != "POST" ||
			string(vbody) != "Method Not Allowed\n" ||
			direct.StatusCode != via.StatusCode || direct.Header.Get("Allow") != via.Header.Get("Allow") || string(dbody) != string(vbody) {
			t.Errorf("unauthenticated GET: via gateway %d Allow %q %q; directly %d Allow %q %q",
				via.StatusCode, via.Header.Get("Allow"), vbody, direct.StatusCode, direct.Header.Get("Allow"), dbody)
		}
	})
}
