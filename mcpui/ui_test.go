package mcpui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddymcp/caddymcp/internal/testenv"
	"github.com/caddymcp/caddymcp/mcpregistry"
	_ "github.com/caddymcp/caddymcp/oauthserver"
)

const testPassword = "dashboard test password"

// startDashboard runs Caddy with the built-in authorization server (alice in eng, bob
// in ops), a registry of four servers and the dashboard, and returns the site's base
// URL. eng may list github and legacy; ops everything.
func startDashboard(t *testing.T) string {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	port := testenv.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	cfg, _ := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage":                map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
				"encryption_key":         strings.Repeat("ab", 32),
				"health":                 map[string]any{"disabled": true},
				"disable_builtin_server": true,
				"servers": []any{
					map[string]any{"name": "github", "upstream": "https://api.githubcopilot.com/mcp/", "description": "Issues and pull requests", "tags": []string{"scm"}},
					map[string]any{"name": "legacy", "upstream": "https://legacy.example.com/sse", "transport": "sse"},
					map[string]any{"name": "jira", "upstream": "https://jira.example.com/mcp", "description": "Tickets"},
					map[string]any{"name": "hr", "upstream": "https://hr.example.com/mcp", "description": "Salaries", "disabled": true},
					map[string]any{"name": "saas", "upstream": "https://saas.example.com/mcp", "backend_auth": map[string]any{"scheme": "oauth"},
						"backend_oauth": map[string]any{"client_id": "gateway", "authorization_server": "https://as.saas.example.com"}},
				},
			},
			"http": map[string]any{"servers": map[string]any{"s": map[string]any{
				"listen":          []string{"127.0.0.1:" + strconv.Itoa(port)},
				"automatic_https": map[string]any{"disable": true},
				"routes": []any{map[string]any{"handle": []any{
					map[string]any{"handler": "mcp_oauth_server", "issuer": base + "/oauth", "users": []any{
						map[string]any{"name": "alice", "password_hash": string(hash), "groups": []string{"eng"}},
						map[string]any{"name": "bob", "password_hash": string(hash), "groups": []string{"ops"}},
					}},
					map[string]any{"handler": "mcp_ui", "gateway_prefix": "/servers", "auth": map[string]any{
						"resource": base,
						"policy": map[string]any{
							"group_mappings": map[string]any{"eng": []string{"eng"}, "ops": []string{"ops"}},
							"ui_scopes": map[string]any{
								"eng": map[string]any{"list_service": []string{"github", "legacy"}},
								"ops": map[string]any{"list_service": []string{"all"}, "toggle_service": []string{"jira"}, "health_check_service": []string{"all"}},
							},
						},
					}},
				}}},
			}}},
		},
	})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caddy.Stop() })
	return base
}

var (
	csrfField     = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	returnToField = regexp.MustCompile(`name="return_to" value="([^"]+)"`)
)

// signedIn returns a browser signed in as user through the dashboard's redirect to
// the sign-in page, and the dashboard page it came back to.
func signedIn(t *testing.T, base, user string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, page := get(t, c, base+"/ui/")
	if !strings.Contains(resp.Request.URL.Path, "/oauth/login") {
		t.Fatalf("not sent to sign in: %s", resp.Request.URL)
	}
	form := url.Values{"username": {user}, "password": {testPassword},
		"csrf": {csrfField.FindStringSubmatch(page)[1]}, "return_to": {html(returnToField.FindStringSubmatch(page)[1])}}
	resp, err := c.PostForm(base+"/oauth/login", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/" {
		t.Fatalf("sign-in: %d at %s\n%s", resp.StatusCode, resp.Request.URL, b)
	}
	return c, string(b)
}

func html(s string) string {
	return strings.NewReplacer("&#39;", "'", "&amp;", "&", "&#34;", `"`).Replace(s)
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Each person sees the servers their policy lets them list, and nothing of the others:
// not in the list, not on a page of its own, not in search.
func TestDashboardPerUser(t *testing.T) {
	base := startDashboard(t)
	alice, page := signedIn(t, base, "alice")
	for _, want := range []string{`<b id="user">alice</b>`, `href="/ui/servers/github"`, `href="/ui/servers/legacy"`, `<a href="/oauth/account">your account</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("alice's dashboard lacks %s:\n%s", want, page)
		}
	}
	for _, hidden := range []string{"jira", "/servers/hr\"", "Salaries"} {
		if strings.Contains(page, hidden) {
			t.Errorf("alice's dashboard shows %s", hidden)
		}
	}
	if resp, _ := get(t, alice, base+"/ui/servers/jira"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("alice on jira's page: %d", resp.StatusCode)
	}
	if _, page := get(t, alice, base+"/ui/?q=tickets"); strings.Contains(page, "jira") {
		t.Errorf("alice's search finds jira:\n%s", page)
	}
	if _, page := get(t, alice, base+"/ui/?q=pull+requests"); !strings.Contains(page, `<a href="/ui/servers/github">github</a>`) {
		t.Errorf("alice's search misses github:\n%s", page)
	}

	bob, page := signedIn(t, base, "bob")
	if !strings.Contains(page, `href="/ui/servers/jira"`) || !strings.Contains(page, "(disabled)") {
		t.Errorf("bob's dashboard:\n%s", page)
	}
	// A disabled server offers no configuration; the gateway would answer it 503.
	if _, page := get(t, bob, base+"/ui/servers/hr"); strings.Contains(page, "Add it to your assistant") {
		t.Errorf("hr, disabled, offers configurations:\n%s", page)
	}
	// A server that acts as each person links to the connect page, with a link made
	// for bob alone.
	_, page = get(t, bob, base+"/ui/servers/saas")
	m := regexp.MustCompile(`<a id="connect" href="` + regexp.QuoteMeta(base) + `/servers/saas/connect\?link=([^"]+)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("saas's page has no connect link:\n%s", page)
	}
	link, _ := url.QueryUnescape(html(m[1]))
	app, err := mcpregistry.Running()
	if err != nil {
		t.Fatal(err)
	}
	if iss, sub, err := app.OpenConnectLink("saas", link); err != nil || iss != base+"/oauth" || sub != "bob" {
		t.Errorf("the connect link opens to %q %q, %v", iss, sub, err)
	}
}

// A server's page: its gateway URL, and a configuration for every client, OAuth by
// default and with a token from the environment on request; a legacy SSE server says
// how to add it instead.
func TestDashboardServerPage(t *testing.T) {
	base := startDashboard(t)
	alice, _ := signedIn(t, base, "alice")
	resp, page := get(t, alice, base+"/ui/servers/github")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `<code id="mcp-url">`+base+`/servers/github/mcp</code>`) {
		t.Fatalf("github's page: %d\n%s", resp.StatusCode, page)
	}
	for _, c := range []string{"vscode", "cursor", "claude-code", "codex", "gemini-cli", "windsurf", "cline", "roo-code", "claude-desktop"} {
		if !strings.Contains(page, `id="cfg-`+c+`"`) {
			t.Errorf("no %s configuration", c)
		}
	}
	if strings.Contains(page, "CADDYMCP_TOKEN") || !strings.Contains(page, "claude mcp add --transport http github "+base+"/servers/github/mcp") {
		t.Errorf("OAuth configurations:\n%s", page)
	}
	if _, page := get(t, alice, base+"/ui/servers/github?auth=token"); !strings.Contains(page, "${env:CADDYMCP_TOKEN}") {
		t.Errorf("token configurations lack the variable:\n%s", page)
	}
	if _, page := get(t, alice, base+"/ui/servers/legacy"); !strings.Contains(page, "legacy SSE transport") || strings.Contains(page, `id="cfg-`) {
		t.Errorf("legacy's page:\n%s", page)
	}
	h := resp.Header
	if !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'sha256-") || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", h)
	}
}

// Bounds and paths: an overlong search is refused, other methods too, and paths under
// the prefix that are not pages belong to the next handler (a gateway server named ui).
func TestDashboardRefusals(t *testing.T) {
	base := startDashboard(t)
	alice, _ := signedIn(t, base, "alice")
	if resp, _ := get(t, alice, base+"/ui/?q="+strings.Repeat("a", maxQuery+1)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("long search: %d", resp.StatusCode)
	}
	resp, err := alice.Post(base+"/ui/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	if resp, page := get(t, alice, base+"/ui/mcp"); resp.StatusCode != http.StatusOK || page != "" {
		t.Errorf("/ui/mcp: %d %q, want the next handler's (Caddy's empty 200)", resp.StatusCode, page)
	}
	// Not signed in: to the sign-in page, whatever the page.
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = get(t, anon, base+"/ui/servers/github")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "/oauth/login?return_to=%2Fui%2Fservers%2Fgithub") {
		t.Errorf("anonymous: %d %s", resp.StatusCode, loc)
	}
}

var pageCSRF = regexp.MustCompile(`<form method="post" id="actions"><input type="hidden" name="csrf" value="([^"]+)">`)

// post submits a server page's action form as c, with the page's CSRF token unless
// csrf overrides it, and an Origin header when origin is set.
func post(t *testing.T, c *http.Client, u, action, csrf, origin string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(url.Values{"action": {action}, "csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The server page's buttons: shown and honoured for the actions the caller's policy
// grants on that server, and only from the page itself (CSRF token, same origin).
func TestDashboardActions(t *testing.T) {
	base := startDashboard(t)
	app, err := mcpregistry.Running()
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := signedIn(t, base, "bob")
	_, page := get(t, bob, base+"/ui/servers/jira")
	m := pageCSRF.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `value="disable">Disable`) || !strings.Contains(page, `value="check">Check now`) {
		t.Fatalf("bob's jira page has no actions:\n%s", page)
	}
	csrf := m[1]
	for _, tc := range []struct {
		name, csrf, origin string
	}{
		{"no token", "", ""},
		{"another token", "x" + csrf, ""},
		{"another site", csrf, "https://evil.example"},
		{"an opaque origin (a sandboxed frame)", csrf, "null"},
	} {
		if resp, _ := post(t, bob, base+"/ui/servers/jira", "disable", tc.csrf, tc.origin); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d", tc.name, resp.StatusCode)
		}
	}
	if !app.Server("jira").Enabled {
		t.Fatal("a refused form disabled jira")
	}
	resp, page := post(t, bob, base+"/ui/servers/jira", "disable", csrf, base)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.RawQuery != "done=disabled" || !strings.Contains(page, `value="enable">Enable`) {
		t.Fatalf("disable: %d %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	if app.Server("jira").Enabled {
		t.Error("jira still enabled")
	}
	// toggle_service covers jira only; health_check_service everything.
	_, page = get(t, bob, base+"/ui/servers/github")
	if strings.Contains(page, `value="disable"`) || !strings.Contains(page, `value="check"`) {
		t.Errorf("bob's github page actions:\n%s", page)
	}
	csrf = pageCSRF.FindStringSubmatch(page)[1]
	if resp, _ := post(t, bob, base+"/ui/servers/github", "disable", csrf, ""); resp.StatusCode != http.StatusForbidden || !app.Server("github").Enabled {
		t.Errorf("bob disabling github: %d", resp.StatusCode)
	}
	// alice may only list: no form, and a forged one is refused.
	alice, _ := signedIn(t, base, "alice")
	_, page = get(t, alice, base+"/ui/servers/github")
	if strings.Contains(page, `id="actions"`) {
		t.Errorf("alice sees actions:\n%s", page)
	}
	if resp, _ := post(t, alice, base+"/ui/servers/github", "check", "", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("alice's check: %d", resp.StatusCode)
	}
}

// The index lists a page of servers at a time, in name order, each page after the
// last one shown; only the servers the person may list count.
func TestDashboardPages(t *testing.T) {
	base := startDashboard(t)
	defer func(n int) { pageSize = n }(pageSize)
	pageSize = 2
	bob, _ := signedIn(t, base, "bob")
	row := regexp.MustCompile(`<tr><td><a href="/ui/servers/([a-z]+)">`)
	var seen []string
	next := base + "/ui/"
	for range 5 {
		_, page := get(t, bob, next)
		for _, m := range row.FindAllStringSubmatch(page, -1) {
			seen = append(seen, m[1])
		}
		m := regexp.MustCompile(`<a id="next" href="([^"]+)">`).FindStringSubmatch(page)
		if m == nil {
			break
		}
		next = base + html(m[1])
	}
	if strings.Join(seen, " ") != "github hr jira legacy saas" {
		t.Errorf("pages listed %v", seen)
	}
	alice, _ := signedIn(t, base, "alice")
	if _, page := get(t, alice, base+"/ui/?after=github"); strings.Join(regexpAll(row, page), " ") != "legacy" {
		t.Errorf("alice after github:\n%s", page)
	}
}

func regexpAll(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}
