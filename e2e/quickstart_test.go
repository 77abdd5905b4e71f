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
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// firstUserPassword reads the first user's random password from caddy's log, where
// the quickstart's first start prints it once.
func firstUserPassword(t *testing.T, ci *caddyInstance) string {
	t.Helper()
	m := regexp.MustCompile(`"msg":"created the first user[^\n]*"password":"([^"]+)"`).FindStringSubmatch(ci.Process.Output())
	if m == nil {
		t.Fatalf("caddy's log shows no first user's password:\n%s", ci.Process.Output())
	}
	return m[1]
}

// The quickstart example, unchanged but for its ports and storage path: nothing is
// reachable before signing in; the first user, admin, whose password the first start
// logged, signs in with the go-sdk OAuth client (DCR, PKCE, in the browser) and with the
// TypeScript SDK's, and mints a personal token on the account page for curl; with them
// the registry's own MCP server answers, a server registered through the REST API is
// reachable at once, and the catch-all respond answers other paths.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverythingServer(t, false)
	// The site's own URLs (issuer, resource) follow its port.
	cfg := strings.ReplaceAll(exampleCaddyfile(t, "quickstart.Caddyfile"), "localhost:8080", "localhost:{{PORT}}")
	started, ci := startCaddy(t, cfg, nil)
	// The example names its site localhost: clients must use that name, since go-sdk
	// clients want the protected resource to be exactly the origin they connect to.
	base := strings.Replace(started, "127.0.0.1", "localhost", 1)
	password := firstUserPassword(t, ci)
	c := newHTTPClient(t)
	registryURL := base + "/registry/mcp"

	// Before signing in: a 401 pointing at the protected-resource metadata, which
	// names the built-in authorization server.
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	resp, body := send(t, c, "POST", registryURL, mcpHeader("", ""), initialize)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /registry/mcp unsigned: %d %s, want 401", resp.StatusCode, body)
	}
	prm := challenge(t, resp)["resource_metadata"]
	resp, body = send(t, c, "GET", prm, nil, "")
	var meta struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &meta) != nil || meta.Resource != registryURL ||
		!slices.Equal(meta.AuthorizationServers, []string{base + "/oauth"}) {
		t.Fatalf("GET %s: %d %s; want resource %s and the built-in server %s/oauth", prm, resp.StatusCode, body, registryURL, base)
	}
	if resp, body = send(t, c, "POST", base+"/api/servers", http.Header{"Content-Type": {"application/json"}}, `{"name":"x","upstream":"`+everything.URL+`"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /api/servers unsigned: %d %s, want 401", resp.StatusCode, body)
	}

	t.Run("go-sdk client signs in through DCR", func(t *testing.T) {
		redirect := "http://127.0.0.1:38126/callback"
		handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs: []string{redirect}, TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code", "refresh_token"}, ClientName: "go-sdk e2e (quickstart)",
			}},
			RedirectURL: redirect,
			AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
				loc, err := oauthSignIn(ctx, args.URL, "admin", password)
				if err != nil {
					return nil, err
				}
				q := loc.Query()
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		cs := connect(t, &mcp.StreamableClientTransport{Endpoint: registryURL, OAuthHandler: handler}, nil, "")
		checkRegistryServer(t, cs, base)
	})

	t.Run("TypeScript SDK client signs in through DCR", func(t *testing.T) {
		res := runTSOAuthClient(t, registryURL, "admin", password, "list_servers")
		if !res.SignedIn || res.Iss != base+"/oauth" || !slices.Contains(res.Tools, "search_tools") || !res.Calls["list_servers"].OK {
			t.Errorf("TypeScript SDK client: %+v", res)
		}
	})

	t.Run("curl with a personal token from the account page", func(t *testing.T) {
		token := accountToken(t, base+"/oauth", "admin", password)
		h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + token}}
		// The README's curl registration: reachable through the gateway at once.
		resp, body := send(t, c, "POST", base+"/api/servers", h, `{"name": "everything", "upstream": "`+everything.URL+`", "tags": ["demo"]}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /api/servers: %d %s", resp.StatusCode, body)
		}
		if resp, body = send(t, c, "GET", base+"/api/servers?tag=demo", h, ""); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"everything"`) {
			t.Errorf("GET /api/servers?tag=demo: %d %s", resp.StatusCode, body)
		}
		if resp, body = send(t, c, "POST", base+"/everything/mcp", withBearer(mcpHeader("", ""), token), initialize); resp.StatusCode != http.StatusOK {
			t.Errorf("initialize with the personal token: %d %s", resp.StatusCode, body)
		}
		ev := connect(t, &mcp.StreamableClientTransport{Endpoint: base + "/everything/mcp", HTTPClient: bearerClient(t, token)}, nil, "")
		if len(toolNames(t, ev)) == 0 {
			t.Error("the registered server has no tools through the gateway")
		}
		// caddy mcp-config, the real binary's subcommand, merges them into a client's file.
		home := t.TempDir()
		cmd := exec.Command(caddyBin, "mcp-config", "cursor", "--gateway", base, "--write")
		cmd.Env = append(os.Environ(), "HOME="+home, "CADDYMCP_TOKEN="+token)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "wrote "+filepath.Join(home, ".cursor", "mcp.json")) {
			t.Errorf("caddy mcp-config: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(filepath.Join(home, ".cursor", "mcp.json")); !strings.Contains(string(b), `"url": "`+base+`/everything/mcp"`) {
			t.Errorf("~/.cursor/mcp.json:\n%s", b)
		}
		// The client configurations list both servers at the gateway's URLs.
		resp, body = send(t, c, "GET", base+"/ide-config/claude-code", h, "")
		var cfg struct{ Content, Command string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &cfg) != nil ||
			!strings.Contains(cfg.Content, `"url": "`+base+`/everything/mcp"`) || !strings.Contains(cfg.Command, "claude mcp add --transport http registry "+base+"/registry/mcp") {
			t.Errorf("GET /ide-config/claude-code: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("the dashboard in Chromium", func(t *testing.T) {
		res := runDashboardBrowser(t, base, "admin", password, "registry", "cursor")
		if res.User != "admin" || !slices.Contains(res.Servers, "registry") || res.URL != base+"/registry/mcp" {
			t.Errorf("dashboard: %+v", res)
		}
		if res.Clipboard == "" || res.Clipboard != res.Config || !strings.Contains(res.Config, `"url": "`+base+`/registry/mcp"`) {
			t.Errorf("copied %q, the page shows %q", res.Clipboard, res.Config)
		}
		if res.Done != "Done: checked." {
			t.Errorf("Check now: %q", res.Done)
		}
		if len(res.ConsoleErrors) > 0 {
			t.Errorf("console errors (a refused script or style?): %v", res.ConsoleErrors)
		}
	})

	// Paths that are not an MCP endpoint fall through to the example's respond.
	resp, body = send(t, c, "GET", base+"/", nil, "")
	if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(string(body), "caddymcp: MCP servers are at /<server>/mcp") {
		t.Errorf("GET /: %d %q, want the example's 404 text", resp.StatusCode, body)
	}
}

// checkRegistryServer checks the registry's own MCP server as an admin sees it.
func checkRegistryServer(t *testing.T, cs *mcp.ClientSession, base string) {
	t.Helper()
	if got := cs.InitializeResult().ServerInfo; got == nil || got.Name != "caddymcp-registry" {
		t.Errorf("serverInfo %+v, want name caddymcp-registry", got)
	}
	if got, want := toolNames(t, cs), []string{"get_server", "list_servers", "list_tools_of_server", "register_server", "search_tools", "server_health", "toggle_server"}; !slices.Equal(got, want) {
		t.Errorf("tools %v, want %v", got, want)
	}
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
	// search_tools "search" ranks search_tools first, with its URL through the gateway.
	res = callTool(t, cs, &mcp.CallToolParams{Name: "search_tools", Arguments: map[string]any{"query": "search"}})
	if res.IsError {
		t.Fatalf("search_tools: tool error %q", text(res))
	}
	var found struct {
		Results []struct {
			Kind, Server, Tool, URL string
		} `json:"results"`
	}
	decodeStructured(t, res, &found)
	if len(found.Results) == 0 || found.Results[0].Tool != "search_tools" || found.Results[0].Server != "registry" ||
		found.Results[0].Kind != "tool" || found.Results[0].URL != base+"/registry/mcp" {
		t.Errorf("search_tools \"search\": results %+v, want the tool registry/search_tools first, at %s/registry/mcp", found.Results, base)
	}
}

func decodeStructured(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil || json.Unmarshal(b, v) != nil || string(b) == "null" {
		t.Fatalf("structured content %s does not decode into %T (%v)", b, v, err)
	}
}

// dashboardResult is what testdata/node/dashboard-browser.mjs saw in Chromium.
type dashboardResult struct {
	User, URL, Config, Clipboard, Done, Fatal string
	Servers, ConsoleErrors                    []string
}

// runDashboardBrowser signs user in on the dashboard in headless Chromium, opens
// server's page and copies client's configuration.
func runDashboardBrowser(t *testing.T, base, user, password, server, client string) dashboardResult {
	t.Helper()
	chromium := testenv.ChromiumBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.NodeBin(), filepath.Join(testenv.NodeDir(), "dashboard-browser.mjs"), base, user, password, server, client)
	cmd.Dir = testenv.NodeDir()
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	stdout, err := cmd.Output()
	var res dashboardResult
	if jerr := json.Unmarshal(stdout, &res); jerr != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("dashboard-browser.mjs: %v; stdout %q; stderr %s", err, stdout, stderr)
	}
	if res.Fatal != "" {
		t.Fatalf("Chromium: %s", res.Fatal)
	}
	return res
}
