package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// echoOnlyPolicy grants the readers group one tool on one server and nothing else: no
// initialize, ping or logging/setLevel, as a new user's policy would be written.
const echoOnlyPolicy = `group_mappings:
  readers: [servers/echo-only]
servers/echo-only:
- server: everything
  methods: [tools/list, tools/call]
  tools: [echo]
`

// tsClientScript drives the TypeScript SDK client as the MCP Inspector CLI does:
// connect (initialize), logging/setLevel, tools/list, then the tools named in argv.
const tsClientScript = `
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
const [url, token, ...calls] = process.argv.slice(1);
const out = {};
const client = new Client({ name: 'caddymcp-e2e-ts', version: '1' });
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: 'Bearer ' + token } } });
try {
  await client.connect(transport);
  await client.setLoggingLevel('debug');
  out.setLevel = 'ok';
  out.tools = (await client.listTools()).tools.map(t => t.name);
  out.calls = {};
  for (const name of calls) {
    try {
      const r = await client.callTool({ name, arguments: { message: 'hi from ts' } });
      out.calls[name] = { ok: !r.isError, text: JSON.stringify(r.content) };
    } catch (e) {
      out.calls[name] = { ok: false, error: String(e && e.message || e) };
    }
  }
} catch (e) {
  out.fatal = String(e && e.message || e);
}
console.log(JSON.stringify(out));
await client.close().catch(() => {});
`

// TestRestrictedUserRealClients: a user allowed one tool on one server, driven by real
// clients (go-sdk, TypeScript SDK, the MCP Inspector CLI): the clients connect, set the
// log level, list tools (seeing only the one), call it, and get a JSON-RPC error naming
// any other tool, with no step-up challenge no scope could answer.
func TestRestrictedUserRealClients(t *testing.T) {
	t.Parallel()
	issuer := startOIDCProvider(t)
	everything := testenv.StartServerEverythingNPM(t, testenv.NPMStreamableHTTP)
	policy := filepath.Join(t.TempDir(), "scopes.yml")
	if err := os.WriteFile(policy, []byte(echoOnlyPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := exampleCaddyfile(t, "oidc.Caddyfile")
	cfg = regexp.MustCompile(`\{\$MCP_RESOURCE(:[^}]*)?\}`).ReplaceAllLiteralString(cfg, "http://127.0.0.1:{{PORT}}")
	base, _ := startCaddy(t, cfg, map[string]string{
		"OIDC_ISSUER":     issuer,
		"EVERYTHING_URL":  everything.URL,
		"MCP_SCOPES_FILE": policy,
	})
	mcpURL := base + "/everything/mcp"
	token := oidcLogin(t, issuer, "alice", mcpURL) // alice: groups [readers]

	t.Run("go-sdk", func(t *testing.T) {
		cs := connect(t, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: bearerClient(t, token)}, nil, "")
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
			t.Errorf("logging/setLevel: %v", err)
		}
		if err := cs.Ping(ctx, nil); err != nil {
			t.Errorf("ping: %v", err)
		}
		if got := toolNames(t, cs); !slices.Equal(got, []string{"echo"}) {
			t.Errorf("tools/list %v, want [echo]", got)
		}
		res := callTool(t, cs, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hi from go"}})
		if res.IsError || !strings.Contains(text(res), "hi from go") {
			t.Errorf("echo: isError=%v %q", res.IsError, text(res))
		}
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get-sum", Arguments: map[string]any{"a": 1, "b": 2}}); err == nil {
			t.Error("get-sum: allowed")
		}
		// What the client got, on the wire: a JSON-RPC error naming the tool, and no
		// step-up challenge (no scope grants get-sum).
		resp, body := send(t, newHTTPClient(t), http.MethodPost, mcpURL,
			withBearer(mcpHeader(cs.ID(), "2025-11-25"), token),
			`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}`)
		var msg rpcMessage
		if resp.StatusCode != http.StatusForbidden || json.Unmarshal(body, &msg) != nil || msg.Error == nil || !strings.Contains(string(body), "get-sum") {
			t.Errorf("get-sum: %d %s, want 403 with a JSON-RPC error naming get-sum", resp.StatusCode, body)
		}
		if h := resp.Header.Get("WWW-Authenticate"); strings.Contains(h, "insufficient_scope") || strings.Contains(h, `scope=""`) {
			t.Errorf("get-sum: WWW-Authenticate %q: a step-up challenge no scope answers", h)
		}
	})

	t.Run("TypeScript SDK", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*requestTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, testenv.NodeBin(), "--input-type=module", "-e", tsClientScript, mcpURL, token, "echo", "get-sum")
		cmd.Dir = testenv.NodeDir() // resolves @modelcontextprotocol/sdk from testdata/node
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("TypeScript client: %v\n%s", err, out)
		}
		var got struct {
			Fatal    string   `json:"fatal"`
			SetLevel string   `json:"setLevel"`
			Tools    []string `json:"tools"`
			Calls    map[string]struct {
				OK    bool   `json:"ok"`
				Text  string `json:"text"`
				Error string `json:"error"`
			} `json:"calls"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("TypeScript client output %q: %v", out, err)
		}
		if got.Fatal != "" || got.SetLevel != "ok" || !slices.Equal(got.Tools, []string{"echo"}) {
			t.Fatalf("TypeScript client: %s", out)
		}
		if c := got.Calls["echo"]; !c.OK || !strings.Contains(c.Text, "hi from ts") {
			t.Errorf("echo: %+v", c)
		}
		if c := got.Calls["get-sum"]; c.OK || !strings.Contains(c.Error, "get-sum") || strings.Contains(c.Error, `required ""`) {
			t.Errorf("get-sum: %+v, want an error naming get-sum (not an empty-scope step-up)", c)
		}
	})

	// Every Inspector CLI run connects and sends logging/setLevel before its method,
	// which is what kept a restricted user from even listing tools.
	t.Run("Inspector CLI", func(t *testing.T) {
		inspector := func(args ...string) testenv.InspectorResult {
			return testenv.RunInspectorCLI(t, append([]string{mcpURL, "--transport", "http",
				"--header", "Authorization: Bearer " + token}, args...)...)
		}

		r := inspector("--method", "tools/list")
		var list struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		}
		if r.ExitCode != 0 || json.Unmarshal([]byte(r.Stdout), &list) != nil {
			t.Fatalf("tools/list: %s", r)
		}
		var names []string
		for _, tool := range list.Tools {
			names = append(names, tool.Name)
		}
		if !slices.Equal(names, []string{"echo"}) {
			t.Errorf("tools/list %v, want [echo]", names)
		}

		r = inspector("--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=hi from the inspector")
		var call struct {
			IsError bool `json:"isError"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		if r.ExitCode != 0 || json.Unmarshal([]byte(r.Stdout), &call) != nil || call.IsError ||
			len(call.Content) != 1 || call.Content[0].Text != "Echo: hi from the inspector" {
			t.Errorf("tools/call echo: %s", r)
		}

		// The CLI prefixes "Failed to call tool get-sum: " itself; the gateway's own
		// message after it must name the tool too.
		r = inspector("--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=1", "b=2")
		_, reason, _ := strings.Cut(r.Stderr, "Failed to call tool get-sum: ")
		if r.ExitCode != 1 || r.Stdout != "" || !strings.Contains(reason, "get-sum") ||
			strings.Contains(r.Stderr, "nsufficient scope") || strings.Contains(r.Stderr, `required ""`) {
			t.Errorf("tools/call get-sum: %s\nwant exit 1 and the gateway's error naming get-sum, no step-up", r)
		}
	})
}

func withBearer(h http.Header, token string) http.Header {
	h.Set("Authorization", "Bearer "+token)
	return h
}
