package configapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

var testKeys = map[string]string{"viewers": "viewer-key-0123456789", "admins": "admin-key-0123456789"}

// startConfigAPI runs Caddy with a registry of four servers (one disabled, one on the
// legacy SSE transport, one in composite mode) and mcp_ide_config behind API keys:
// viewers may list two servers, admins all.
func startConfigAPI(t *testing.T) string {
	t.Helper()
	var keys []any
	for group, key := range testKeys {
		sum := sha256.Sum256([]byte(key))
		keys = append(keys, map[string]any{"sha256": hex.EncodeToString(sum[:]), "groups": []string{group}})
	}
	port := testenv.FreePort(t)
	cfg, _ := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage":                map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
				"health":                 map[string]any{"disabled": true},
				"disable_builtin_server": true,
				"servers": []any{
					map[string]any{"name": "github", "upstream": "https://api.githubcopilot.com/mcp/"},
					map[string]any{"name": "jira", "upstream": "https://jira.example.com/mcp", "gateway_token_header": "x-authorization"},
					map[string]any{"name": "legacy", "upstream": "https://legacy.example.com/sse", "transport": "sse"},
					map[string]any{"name": "hr", "upstream": "https://hr.example.com/mcp", "disabled": true},
				},
			},
			"http": map[string]any{"servers": map[string]any{"s": map[string]any{
				"listen": []string{"127.0.0.1:" + strconv.Itoa(port)},
				"routes": []any{map[string]any{"handle": []any{map[string]any{
					"handler": "mcp_ide_config", "public_url": "https://mcp.example.com", "gateway_prefix": "/servers",
					"auth": map[string]any{"api_keys": keys, "policy": map[string]any{
						"group_mappings": map[string]any{"viewers": []string{"viewer"}, "admins": []string{"admin"}},
						"ui_scopes": map[string]any{
							"viewer": map[string]any{"list_service": []string{"github", "legacy"}},
							"admin":  map[string]any{"list_service": []string{"all"}},
						},
					}},
				}}}},
			}}},
		},
	})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	return "http://127.0.0.1:" + strconv.Itoa(port) + "/ide-config"
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func fetch(t *testing.T, method, u, group string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	if group != "" {
		req.Header.Set("X-API-Key", testKeys[group])
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// Each caller gets a configuration of the servers they may list, at the gateway's
// public URL, without a credential in it: OAuth by default, an environment variable
// with auth=token (X-Authorization for a composite-mode server). Disabled servers are
// left out; a legacy SSE server is named in a note.
func TestConfigPerCaller(t *testing.T) {
	base := startConfigAPI(t)
	a := fetch(t, http.MethodGet, base+"/cursor", "viewers")
	if a.status != http.StatusOK || !slices.Equal(strs(a.body["servers"]), []string{"github"}) {
		t.Fatalf("viewer's cursor config: %d %s", a.status, a.raw)
	}
	content := a.body["content"].(string)
	if !strings.Contains(content, `"url": "https://mcp.example.com/servers/github/mcp"`) || strings.Contains(content, "jira") || strings.Contains(content, "Authorization") {
		t.Errorf("viewer's cursor config:\n%s", content)
	}
	if notes := strings.Join(strs(a.body["notes"]), "\n"); !strings.Contains(notes, "legacy uses the legacy SSE transport") {
		t.Errorf("notes %q", notes)
	}

	a = fetch(t, http.MethodGet, base+"/vscode?auth=token", "admins")
	if a.status != http.StatusOK || !slices.Equal(strs(a.body["servers"]), []string{"github", "jira"}) {
		t.Fatalf("admin's vscode config: %d %s", a.status, a.raw)
	}
	content = a.body["content"].(string)
	if !strings.Contains(content, `"Authorization": "Bearer ${input:`) || !strings.Contains(content, `"X-Authorization": "Bearer ${input:`) || strings.Contains(content, "hr.example") {
		t.Errorf("admin's vscode config:\n%s", content)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", a.header.Get("Cache-Control"))
	}

	a = fetch(t, http.MethodGet, base+"/codex?server=jira&auth=token&download", "admins")
	if a.status != http.StatusOK || !strings.Contains(a.header.Get("Content-Disposition"), `filename="config.toml"`) ||
		!strings.Contains(a.raw, "[mcp_servers.jira]") || !strings.Contains(a.raw, "CADDYMCP_TOKEN") {
		t.Errorf("codex download: %d %v\n%s", a.status, a.header, a.raw)
	}

	a = fetch(t, http.MethodGet, base, "viewers")
	if a.status != http.StatusOK || len(strs(a.body["clients"])) != 9 {
		t.Errorf("client list: %d %s", a.status, a.raw)
	}
}

// What a caller may not list reads as absent; bad input is a 4xx naming the field; no
// token is a 401 with the metadata challenge; other paths belong to the next handler.
func TestConfigRefusals(t *testing.T) {
	base := startConfigAPI(t)
	for _, tc := range []struct {
		method, path, group string
		status              int
		want                string
	}{
		{"GET", "/cursor", "", 401, "authentication required"},
		{"GET", "/cursor?server=jira", "viewers", 404, `no server named \"jira\"`},
		{"GET", "/cursor?server=hr", "admins", 409, "server hr is disabled"},
		{"GET", "/cursor?server=legacy", "admins", 422, "no server to configure"},
		{"GET", "/cursor?server=nope", "admins", 404, `no server named \"nope\"`},
		{"GET", "/cursor?auth=basic", "admins", 400, "auth must be oauth or token"},
		{"GET", "/cursor?" + strings.Repeat("server=github&", maxServersPerConfig+1), "admins", 400, "at most"},
		{"POST", "/cursor", "admins", 405, "use GET"},
		{"GET", "/mcp", "admins", 200, ""}, // not a client: the next handler's (Caddy's empty 200)
	} {
		a := fetch(t, tc.method, base+tc.path, tc.group)
		if a.status != tc.status || !strings.Contains(a.raw, tc.want) {
			t.Errorf("%s %.60s as %q: %d %s, want %d %q", tc.method, tc.path, tc.group, a.status, a.raw, tc.status, tc.want)
		}
		if tc.status == 401 && !strings.Contains(a.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("401 without a challenge: %v", a.header)
		}
	}
}

// A public_url that is not an origin, or a token_env that is not a variable name, is
// refused when the config loads, naming the field.
func TestConfigRefusesBadSettings(t *testing.T) {
	for field, tc := range map[string]map[string]any{
		"public_url": {"public_url": "https://mcp.example.com/path"},
		"token_env":  {"token_env": "X; rm -rf"},
	} {
		handler := map[string]any{"handler": "mcp_ide_config"}
		for k, v := range tc {
			handler[k] = v
		}
		cfg, _ := json.Marshal(map[string]any{
			"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
			"apps": map[string]any{
				"mcp_registry": map[string]any{"storage": map[string]any{"path": filepath.Join(t.TempDir(), "r.db")}, "health": map[string]any{"disabled": true}},
				"http": map[string]any{"servers": map[string]any{"s": map[string]any{
					"listen": []string{"127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))},
					"routes": []any{map[string]any{"handle": []any{handler}}},
				}}},
			},
		})
		err := caddy.Load(cfg, true)
		if err == nil {
			caddy.Stop()
			t.Errorf("%s: accepted", field)
		} else if !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// A caller who may use more servers than one configuration holds is told to name them.
func TestConfigTooManyServers(t *testing.T) {
	base := startConfigAPI(t)
	defer func(n int) { maxServersPerConfig = n }(maxServersPerConfig)
	maxServersPerConfig = 1
	if a := fetch(t, http.MethodGet, base+"/cursor", "admins"); a.status != http.StatusUnprocessableEntity || !strings.Contains(a.raw, "name the ones you want with server=") {
		t.Errorf("admins: %d %s", a.status, a.raw)
	}
	if a := fetch(t, http.MethodGet, base+"/cursor?server=github", "admins"); a.status != http.StatusOK {
		t.Errorf("one named server: %d %s", a.status, a.raw)
	}
}
