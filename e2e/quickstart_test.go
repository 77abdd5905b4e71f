package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// The quickstart example, unchanged but for its ports and storage path, serves the
// registry's own MCP server at /registry/mcp to a go-sdk client, and its catch-all
// respond still answers other paths.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	base, _ := startCaddy(t, exampleCaddyfile(t, "quickstart.Caddyfile"), nil)

	rec := new(recorder)
	cs := connect(t, &mcp.StreamableClientTransport{Endpoint: base + "/registry/mcp", HTTPClient: rec.client()}, nil, "")
	if got := cs.InitializeResult().ServerInfo; got == nil || got.Name != "caddymcp-registry" {
		t.Errorf("serverInfo %+v, want name caddymcp-registry", got)
	}

	if got, want := toolNames(t, cs), []string{"get_server", "list_servers", "list_tools_of_server", "register_server", "search_tools", "server_health", "toggle_server"}; !slices.Equal(got, want) {
		t.Errorf("tools %v, want %v", got, want)
	}

	// list_servers sees the registry itself.
	res := callTool(t, cs, &mcp.CallToolParams{Name: "list_servers", Arguments: map[string]any{}})
	if res.IsError {
		t.Fatalf("list_servers: tool error %q", text(res))
	}
	var list struct {
		Servers []struct {
			Name, Path, Transport string
			Enabled               bool
		} `json:"servers"`
	}
	decodeStructured(t, res, &list)
	i := slices.IndexFunc(list.Servers, func(s struct {
		Name, Path, Transport string
		Enabled               bool
	}) bool {
		return s.Name == "registry"
	})
	if i < 0 {
		t.Fatalf("list_servers does not list \"registry\": %+v", list)
	}
	if s := list.Servers[i]; s.Path != "registry" || !s.Enabled || s.Transport != "streamable-http" {
		t.Errorf("registry entry %+v, want path registry, enabled, streamable-http", s)
	}

	// get_server of an unknown name is a tool error (isError), not a protocol error.
	res = callTool(t, cs, &mcp.CallToolParams{Name: "get_server", Arguments: map[string]any{"name": "no-such-server"}})
	if !res.IsError || !strings.Contains(text(res), `no server named "no-such-server"`) {
		t.Errorf("get_server no-such-server: isError=%v text %q; want a tool error naming it", res.IsError, text(res))
	}
	res = callTool(t, cs, &mcp.CallToolParams{Name: "get_server", Arguments: map[string]any{"name": "registry"}})
	if res.IsError {
		t.Errorf("get_server registry: tool error %q", text(res))
	}

	// search_tools "search" ranks search_tools first.
	res = callTool(t, cs, &mcp.CallToolParams{Name: "search_tools", Arguments: map[string]any{"query": "search"}})
	if res.IsError {
		t.Fatalf("search_tools: tool error %q", text(res))
	}
	var found struct {
		Results []struct {
			Kind, Server, Tool, URL string
			Score                   float64
		} `json:"results"`
	}
	decodeStructured(t, res, &found)
	if len(found.Results) == 0 || found.Results[0].Tool != "search_tools" || found.Results[0].Server != "registry" ||
		found.Results[0].Kind != "tool" || found.Results[0].URL != base+"/registry/mcp" {
		t.Errorf("search_tools \"search\": results %+v, want the tool registry/search_tools first, at %s/registry/mcp", found.Results, base)
	}

	// Every exchange of the client went through the gateway and succeeded.
	for _, x := range rec.find(http.MethodPost, "") {
		if x.Status != http.StatusOK && x.Status != http.StatusAccepted {
			t.Errorf("POST %s answered %d", x.RPCMethod, x.Status)
		}
	}

	// Paths that are not an MCP endpoint fall through to the example's respond.
	c := newHTTPClient(t)
	resp, body := send(t, c, "GET", base+"/", nil, "")
	if resp.StatusCode != http.StatusNotFound || string(body) != "caddymcp: MCP servers are at /<server>/mcp, e.g. /registry/mcp" {
		t.Errorf("GET /: %d %q, want the example's 404 text", resp.StatusCode, body)
	}
	// An unknown server under the gateway's shape is the gateway's JSON-RPC 404.
	resp, body = send(t, c, "POST", base+"/nope/mcp", mcpHeader("", ""), `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	wantRPCError(t, "POST /nope/mcp", resp, body, http.StatusNotFound, -32001, "null", `"/nope/mcp"`)

	// The README's curl registration: a real server registered through the REST API is
	// listed and reachable through the gateway at once.
	up := testenv.StartEverythingServer(t, false)
	resp, body = send(t, c, "POST", base+"/api/servers", http.Header{"Content-Type": {"application/json"}},
		`{"name": "everything", "upstream": "`+up.URL+`", "tags": ["demo"]}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/servers: %d %s", resp.StatusCode, body)
	}
	if resp, body = send(t, c, "GET", base+"/api/servers?tag=demo", nil, ""); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"everything"`) {
		t.Errorf("GET /api/servers?tag=demo: %d %s", resp.StatusCode, body)
	}
	ev := connect(t, &mcp.StreamableClientTransport{Endpoint: base + "/everything/mcp"}, nil, "")
	if len(toolNames(t, ev)) == 0 {
		t.Error("the registered server has no tools through the gateway")
	}
}

func decodeStructured(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil || json.Unmarshal(b, v) != nil || string(b) == "null" {
		t.Fatalf("structured content %s does not decode into %T (%v)", b, v, err)
	}
}
