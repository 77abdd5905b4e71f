package registryapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/internal/testenv"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

// restKeys are the API keys of the REST tests, by group.
var restKeys = map[string]string{
	"admins":    "key-admin-0123456789",
	"viewers":   "key-viewer-0123456789",
	"registrar": "key-registrar-0123456789",
	"operators": "key-operator-0123456789",
	"nobody":    "key-nobody-0123456789",
}

// restEnv is a running Caddy with mcp_registry and mcp_registry_api (auth by API keys).
type restEnv struct {
	t    *testing.T
	base string // http://127.0.0.1:port/reg/api
	app  *mcpregistry.App
}

func startREST(t *testing.T, api map[string]any) *restEnv {
	t.Helper()
	port := testenv.FreePort(t)
	handler := map[string]any{"handler": "mcp_registry_api", "prefix": "/reg"}
	for k, v := range api {
		handler[k] = v
	}
	loadConfigApps(t, map[string]any{
		"mcp_registry": map[string]any{
			"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
			"runtime_upstreams": loopbackUpstreams,
			"health":            map[string]any{"disabled": true},
			"encryption_key":    strings.Repeat("ab", 32),
			"servers": []any{
				map[string]any{"name": "cfg-db", "upstream": "http://127.0.0.1:3001/mcp", "tags": []string{"db"}, "description": "Postgres from the config"},
				map[string]any{"name": "cfg-git", "upstream": "http://127.0.0.1:3002/mcp", "tags": []string{"scm"}},
				map[string]any{"name": "secret-hr", "upstream": "http://127.0.0.1:3003/mcp", "description": "HR records"},
			},
		},
		"http": map[string]any{"servers": map[string]any{"rest": map[string]any{
			"listen": []string{"127.0.0.1:" + strconv.Itoa(port)},
			"routes": []any{map[string]any{"handle": []any{handler}}},
		}}},
	})
	t.Cleanup(func() { caddy.Stop() })
	return &restEnv{t: t, base: fmt.Sprintf("http://127.0.0.1:%d/reg/api", port), app: runningApp(t)}
}

// restAuth is the auth block of the REST tests: API keys per group and UI scopes.
func restAuth() map[string]any {
	var keys []any
	for group, key := range restKeys {
		sum := sha256.Sum256([]byte(key))
		keys = append(keys, map[string]any{"sha256": hex.EncodeToString(sum[:]), "groups": []string{group}})
	}
	return map[string]any{
		"api_keys": keys,
		"policy": map[string]any{
			"group_mappings": map[string]any{
				"admins": []string{"registry-admin", "all-tools"}, "viewers": []string{"viewer"}, "registrar": []string{"registrar"},
				"operators": []string{"operator", "one-tool"}, "nobody": []string{"mcp-only"},
			},
			"ui_scopes": map[string]any{
				"registry-admin": map[string]any{"list_service": []string{"all"}, "register_service": []string{"all"},
					"toggle_service": []string{"all"}, "modify_service": []string{"all"}, "health_check_service": []string{"all"}},
				"viewer":    map[string]any{"list_service": []string{"cfg-db", "cfg-git", "team-a"}},
				"registrar": map[string]any{"list_service": []string{"team-a", "team-b"}, "register_service": []string{"team-a", "team-b"}, "modify_service": []string{"team-a"}},
				"operator":  map[string]any{"list_service": []string{"all"}, "toggle_service": []string{"cfg-git", "team-a"}, "health_check_service": []string{"all"}},
			},
			"scopes": map[string]any{
				"mcp-only":  []any{map[string]any{"server": "*", "methods": []string{"tools/list"}}},
				"all-tools": []any{map[string]any{"server": "*", "methods": []string{"tools/list", "tools/call", "prompts/list", "resources/list"}, "tools": []string{"*"}}},
				"one-tool":  []any{map[string]any{"server": "*", "methods": []string{"tools/list", "tools/call"}, "tools": []string{"test_simple_text"}}},
			},
		},
	}
}

type restResp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *restEnv) do(method, path, group string, body any, hdr ...string) restResp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if group != "" {
		req.Header.Set("Authorization", "Bearer "+restKeys[group])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	r := restResp{status: res.StatusCode, header: res.Header, raw: string(data)}
	if len(data) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(data, &r.body); err != nil {
			e.t.Fatalf("%s %s: body is not a JSON object: %s", method, path, data)
		}
	}
	return r
}

// want checks the status, and for errors the code and field of the JSON body.
func (r restResp) want(t *testing.T, what string, status int, codeField ...string) restResp {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.raw)
	}
	if len(codeField) > 0 && r.body["code"] != codeField[0] {
		t.Fatalf("%s: code %v, want %s: %s", what, r.body["code"], codeField[0], r.raw)
	}
	if len(codeField) > 1 && codeField[1] != "" && r.body["field"] != codeField[1] {
		t.Fatalf("%s: field %v, want %s: %s", what, r.body["field"], codeField[1], r.raw)
	}
	if status >= 400 && (r.body["error"] == nil || r.body["error"] == "") {
		t.Fatalf("%s: error body without a message: %s", what, r.raw)
	}
	return r
}

func listNames(r restResp) string {
	var out []string
	for _, s := range r.body["servers"].([]any) {
		out = append(out, s.(map[string]any)["name"].(string))
	}
	return strings.Join(out, ",")
}

func TestRESTAuthAndScopes(t *testing.T) {
	e := startREST(t, map[string]any{"auth": restAuth()})

	r := e.do("GET", "/servers", "", nil).want(t, "no token", 401, "unauthorized")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer resource_metadata="http://127.0.0.1:`) {
		t.Errorf("401 challenge: %q", r.header.Get("WWW-Authenticate"))
	}
	e.do("GET", "/servers", "", nil, "Authorization", "Bearer wrong-key").want(t, "bad key", 401, "unauthorized")
	e.do("GET", "/servers", "", nil, "X-API-Key", restKeys["admins"]).want(t, "X-API-Key", 200)

	// list_service decides what exists.
	if got := listNames(e.do("GET", "/servers", "admins", nil).want(t, "admin list", 200)); got != "cfg-db,cfg-git,registry,secret-hr" {
		t.Errorf("admin sees %s", got)
	}
	if got := listNames(e.do("GET", "/servers", "viewers", nil).want(t, "viewer list", 200)); got != "cfg-db,cfg-git" {
		t.Errorf("viewer sees %s", got)
	}
	if got := listNames(e.do("GET", "/servers", "nobody", nil).want(t, "nobody list", 200)); got != "" {
		t.Errorf("nobody sees %s", got)
	}
	for _, p := range []string{"/servers/secret-hr", "/servers/secret-hr/tools", "/servers/secret-hr/health"} {
		e.do("GET", p, "viewers", nil).want(t, "hidden "+p, 404, "not_found")
	}
	e.do("POST", "/servers/secret-hr/disable", "viewers", nil).want(t, "hidden toggle", 404, "not_found")
	e.do("DELETE", "/servers/secret-hr", "viewers", nil).want(t, "hidden delete", 404, "not_found")
	e.do("PUT", "/servers/secret-hr", "viewers", map[string]any{}, "If-Match", "*").want(t, "hidden update", 404, "not_found")
	// Visible but not permitted: 403 naming the permission.
	r = e.do("POST", "/servers/cfg-git/disable", "viewers", nil).want(t, "viewer toggle", 403, "forbidden")
	if !strings.Contains(r.body["error"].(string), "toggle_service") {
		t.Errorf("403 does not name the permission: %s", r.raw)
	}
	// The upstream is shown only to those who may modify the server.
	if up := e.do("GET", "/servers/cfg-db", "viewers", nil).body["upstream"]; up != nil {
		t.Errorf("viewer sees upstream %v", up)
	}
	if up := e.do("GET", "/servers/cfg-db", "admins", nil).body["upstream"]; up != "http://127.0.0.1:3001/mcp" {
		t.Errorf("admin sees upstream %v", up)
	}

	// register_service per name.
	reg := map[string]any{"name": "team-a", "upstream": "http://127.0.0.1:4001/mcp", "description": "Team A tools", "tags": []string{"a"}}
	e.do("POST", "/servers", "viewers", reg).want(t, "viewer register", 403, "forbidden")
	e.do("POST", "/servers", "registrar", map[string]any{"name": "team-c", "upstream": "http://127.0.0.1:4003/mcp"}).want(t, "registrar other name", 403, "forbidden")
	r = e.do("POST", "/servers", "registrar", reg).want(t, "registrar register", 201)
	if r.header.Get("ETag") != `"1"` || r.header.Get("Location") != "/reg/api/servers/team-a" {
		t.Errorf("register headers: ETag %q Location %q", r.header.Get("ETag"), r.header.Get("Location"))
	}
	// Operators toggle and check but cannot modify.
	e.do("POST", "/servers/team-a/disable", "operators", nil).want(t, "operator toggle", 200)
	e.do("DELETE", "/servers/team-a", "operators", nil).want(t, "operator delete", 403, "forbidden")
	e.do("PUT", "/servers/team-a/credential", "operators", map[string]any{"value": "x"}).want(t, "operator credential", 403, "forbidden")
	// Registrars modify their own server.
	e.do("DELETE", "/servers/team-a", "registrar", nil).want(t, "registrar delete", 204)
	e.do("GET", "/servers/team-a", "registrar", nil).want(t, "deleted", 404, "not_found")
	if s := e.app.Lookup("team-a"); s != nil {
		t.Errorf("deleted server still routed: %+v", s)
	}

	// Config servers belong to the config.
	e.do("PUT", "/servers/cfg-db", "admins", map[string]any{"upstream": "http://127.0.0.1:9/mcp"}, "If-Match", "*").want(t, "update config server", 409, "conflict")
	e.do("DELETE", "/servers/cfg-db", "admins", nil).want(t, "delete config server", 409, "conflict")
}

func TestRESTLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an MCP server process; runs without -short")
	}
	e := startREST(t, map[string]any{"auth": restAuth()})
	up := testenv.StartEverythingServer(t, false)

	r := e.do("POST", "/servers", "admins", map[string]any{
		"name": "every", "upstream": up.URL, "description": "The go-sdk everything server", "tags": []string{"demo", "test"},
	}).want(t, "register", 201)
	if r.body["enabled"] != true || r.body["revision"] != float64(1) || r.body["url"] == "" || r.body["has_credential"] != false {
		t.Errorf("registered: %s", r.raw)
	}
	if s := e.app.Lookup("every"); s == nil || s.Upstream != up.URL {
		t.Fatalf("registered server not routed: %+v", s)
	}
	e.do("POST", "/servers", "admins", map[string]any{"name": "every", "upstream": up.URL}).want(t, "register twice", 409, "conflict", "name")
	e.do("POST", "/servers", "admins", map[string]any{"name": "other", "path": "every", "upstream": up.URL}).want(t, "path taken", 409, "conflict", "path")

	// Read, conditional read.
	r = e.do("GET", "/servers/every", "admins", nil).want(t, "get", 200)
	etag := r.header.Get("ETag")
	if etag != `"1"` {
		t.Fatalf("ETag %q", etag)
	}
	e.do("GET", "/servers/every", "admins", nil, "If-None-Match", etag).want(t, "not modified", 304)

	// Update needs If-Match; a stale one is 412 and changes nothing.
	upd := map[string]any{"upstream": up.URL, "description": "Updated", "tags": []string{"demo"}}
	e.do("PUT", "/servers/every", "admins", upd).want(t, "no If-Match", 428, "precondition_required")
	e.do("PUT", "/servers/every", "admins", upd, "If-Match", "W/\"1\"").want(t, "weak If-Match", 400, "invalid_field", "If-Match")
	r = e.do("PUT", "/servers/every", "admins", upd, "If-Match", etag).want(t, "update", 200)
	if r.header.Get("ETag") != `"2"` || r.body["description"] != "Updated" || r.body["enabled"] != true {
		t.Errorf("updated: %s %s", r.header.Get("ETag"), r.raw)
	}
	r = e.do("PUT", "/servers/every", "admins", map[string]any{"upstream": up.URL, "description": "Lost?"}, "If-Match", etag).want(t, "stale update", 412, "precondition_failed")
	if r.header.Get("ETag") != `"2"` {
		t.Errorf("412 ETag %q, want the current one", r.header.Get("ETag"))
	}
	if s := e.app.Server("every"); s.Description != "Updated" {
		t.Errorf("stale write changed the record: %q", s.Description)
	}
	// A GET response can be PUT back as it is (read-only fields are ignored).
	got := e.do("GET", "/servers/every", "admins", nil).body
	got["description"] = "Round trip"
	e.do("PUT", "/servers/every", "admins", got, "If-Match", `"2"`).want(t, "put back a GET", 200)

	// Toggle: a disabled server stays routed (the gateway answers 503).
	r = e.do("POST", "/servers/every/disable", "admins", nil, "If-Match", `"3"`).want(t, "disable", 200)
	if r.body["enabled"] != false || e.app.Lookup("every").Enabled {
		t.Errorf("disable: %s", r.raw)
	}
	e.do("POST", "/servers/every/enable", "admins", nil, "If-Match", `"3"`).want(t, "stale enable", 412, "precondition_failed")
	e.do("POST", "/servers/every/enable", "admins", nil).want(t, "enable", 200)

	// Filters and pagination.
	for i := range 5 {
		e.do("POST", "/servers", "admins", map[string]any{"name": fmt.Sprintf("page-%d", i), "upstream": fmt.Sprintf("http://127.0.0.1:%d/mcp", 5000+i),
			"tags": []string{"paged", fmt.Sprint("n", i%2)}, "enabled": i != 3}).want(t, "register page", 201)
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		r := e.do("GET", "/servers?tag=paged&limit=2&cursor="+cursor, "admins", nil).want(t, "page", 200)
		if n := listNames(r); n != "" {
			seen = append(seen, n)
		}
		cursor, _ = r.body["next_cursor"].(string)
		if cursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if strings.Join(seen, "|") != "page-0,page-1|page-2,page-3|page-4" {
		t.Errorf("pages: %v", seen)
	}
	for q, want := range map[string]string{
		"tag=paged&tag=n1":         "page-1,page-3",
		"tag=paged&enabled=false":  "page-3",
		"q=POSTGRES":               "cfg-db",
		"q=demo":                   "every",
		"health=unknown&tag=n0":    "page-0,page-2,page-4",
		"health=healthy&tag=paged": "",
		"tag=nosuch":               "",
	} {
		if got := listNames(e.do("GET", "/servers?"+q, "admins", nil).want(t, q, 200)); got != want {
			t.Errorf("%s: %s, want %s", q, got, want)
		}
	}

	// Check now, refresh tools: against the real server.
	r = e.do("POST", "/servers/every/health/check", "admins", nil).want(t, "check now", 200)
	if h := r.body["health"].(map[string]any); h["status"] != "healthy" {
		t.Fatalf("health after check: %s", r.raw)
	}
	r = e.do("POST", "/servers/every/tools/refresh", "admins", nil).want(t, "refresh", 200)
	if tools := r.body["tools"].([]any); len(tools) == 0 {
		t.Fatalf("no tools after refresh: %s", r.raw)
	}
	r = e.do("GET", "/servers/every/tools", "viewers", nil).want(t, "tools hidden from viewer", 404, "not_found")
	r = e.do("GET", "/servers/every/tools", "admins", nil).want(t, "tools", 200)
	if tools := r.body["tools"].([]any); len(tools) < 2 || tools[0].(map[string]any)["name"] == "" {
		t.Errorf("tools: %s", r.raw)
	}
	// One view per caller: operators may list the server but call only test_simple_text, so the
	// REST API shows them that tool alone, as their tools/list through the gateway would —
	// in the tools answer, the tool count and search.
	op := e.do("GET", "/servers/every/tools", "operators", nil).want(t, "operator tools", 200)
	if tools := op.body["tools"].([]any); len(tools) != 1 || tools[0].(map[string]any)["name"] != "test_simple_text" ||
		len(op.body["prompts"].([]any)) != 0 || len(op.body["resources"].([]any)) != 0 {
		t.Errorf("operator tools: %s", op.raw)
	}
	if ov := e.do("GET", "/servers/every", "operators", nil).want(t, "operator view", 200); ov.body["tool_count"] != float64(1) {
		t.Errorf("operator tool_count: %v", ov.body["tool_count"])
	}
	for _, who := range []string{"operators", "admins"} {
		// include_schemas must not reveal the schema of a tool the caller's tools/list hides.
		hits := e.do("GET", "/search?include_schemas=true&q=test+simple+text+image+audio&limit=100", who, nil).want(t, who+" search", 200).body["hits"].([]any)
		var tools []string
		for _, h := range hits {
			if tool, _ := h.(map[string]any)["tool"].(string); tool != "" {
				tools = append(tools, tool)
			}
		}
		if who == "operators" && slices.ContainsFunc(tools, func(s string) bool { return s != "test_simple_text" }) {
			t.Errorf("operator search shows tools their tools/list hides: %v", tools)
		}
		if who == "admins" && len(tools) == 0 {
			t.Errorf("admin search finds no tools")
		}
	}
	if h := e.do("GET", "/servers/every/health", "admins", nil).want(t, "health", 200).body["health"].(map[string]any); h["status"] != "healthy" {
		t.Errorf("health: %v", h)
	}
	if got := listNames(e.do("GET", "/servers?health=healthy", "admins", nil).want(t, "healthy filter", 200)); got != "every,registry" {
		t.Errorf("healthy: %s", got)
	}
	firstTool := r.body["tools"].([]any)[0].(map[string]any)["name"].(string)
	r = e.do("GET", "/search?q="+firstTool, "admins", nil).want(t, "search", 200)
	if hits := r.body["hits"].([]any); len(hits) == 0 || hits[0].(map[string]any)["server"] != "every" ||
		hits[0].(map[string]any)["kind"] != "tool" || !strings.HasSuffix(hits[0].(map[string]any)["url"].(string), "/every/mcp") ||
		hits[0].(map[string]any)["input_schema"] != nil {
		t.Errorf("search for %s: %s", firstTool, r.raw)
	}
	r = e.do("GET", "/search?include_schemas=true&q="+firstTool, "admins", nil).want(t, "search with schemas", 200)
	if hit := r.body["hits"].([]any)[0].(map[string]any); hit["input_schema"] == nil {
		t.Errorf("search with include_schemas: %s", r.raw)
	}

	// Delete with a stale If-Match is refused; then removed and unrouted.
	e.do("DELETE", "/servers/every", "admins", nil, "If-Match", `"1"`).want(t, "stale delete", 412, "precondition_failed")
	e.do("DELETE", "/servers/every", "admins", nil).want(t, "delete", 204)
	if e.app.Lookup("every") != nil {
		t.Error("deleted server still routed")
	}
	e.do("DELETE", "/servers/every", "admins", nil).want(t, "delete again", 404, "not_found")
}

func TestRESTCredentials(t *testing.T) {
	e := startREST(t, map[string]any{"auth": restAuth()})
	const secret = "s3cr3t-backend-token-value"
	e.do("POST", "/servers", "admins", map[string]any{"name": "gh", "upstream": "http://127.0.0.1:4100/mcp",
		"backend_auth": map[string]any{"scheme": "bearer"}}).want(t, "bearer without credential", 400, "invalid_field", "credential")
	e.do("POST", "/servers", "admins", map[string]any{"name": "gh", "upstream": "http://127.0.0.1:4100/mcp",
		"credential": map[string]any{"value": secret}}).want(t, "credential without scheme", 400, "invalid_field", "credential.value")
	r := e.do("POST", "/servers", "admins", map[string]any{"name": "gh", "upstream": "http://127.0.0.1:4100/mcp",
		"backend_auth": map[string]any{"scheme": "bearer"},
		"credential":   map[string]any{"value": secret, "headers": map[string]string{"X-Tenant": "t1"}}}).want(t, "register with credential", 201)
	if strings.Contains(r.raw, secret) || r.body["has_credential"] != true {
		t.Fatalf("register answer: %s", r.raw)
	}
	if h := e.app.BackendHeaders(e.app.Server("gh")); h.Get("Authorization") != "Bearer "+secret || h.Get("X-Tenant") != "t1" {
		t.Fatalf("backend headers after register: %v", h)
	}
	for _, p := range []string{"/servers/gh", "/servers?q=gh"} {
		if r := e.do("GET", p, "admins", nil); strings.Contains(r.raw, secret) || strings.Contains(r.raw, "t1") {
			t.Errorf("%s leaks the credential: %s", p, r.raw)
		}
	}
	var export bytes.Buffer
	if err := e.app.Backup(&export); err != nil || strings.Contains(export.String(), secret) {
		t.Errorf("export: err %v, leaks %v", err, strings.Contains(export.String(), secret))
	}

	// Rotate: takes effect at once, the record's revision is unchanged.
	e.do("PUT", "/servers/gh/credential", "admins", map[string]any{"value": "rotated-token"}).want(t, "rotate", 204)
	if h := e.app.BackendHeaders(e.app.Server("gh")); h.Get("Authorization") != "Bearer rotated-token" || h.Get("X-Tenant") != "" {
		t.Errorf("after rotation: %v", h)
	}
	if rev := e.app.Server("gh").Revision; rev != 1 {
		t.Errorf("rotation changed the revision to %d", rev)
	}
	e.do("PUT", "/servers/gh/credential", "admins", map[string]any{}).want(t, "empty credential", 400, "invalid_field", "credential.value")
	e.do("PUT", "/servers/gh/credential", "admins", map[string]any{"value": "a\nb"}).want(t, "control characters", 400, "invalid_field", "credential.value")
	e.do("PUT", "/servers/gh/credential", "admins", map[string]any{"value": "x", "headers": map[string]string{"Host": "evil"}}).want(t, "Host header", 400, "invalid_field", "credential.headers")
	e.do("PUT", "/servers/gh/credential", "admins", map[string]any{"value": "x", "extra": 1}).want(t, "unknown field", 400, "invalid_field", "extra")
	e.do("PUT", "/servers/cfg-db/credential", "admins", map[string]any{"value": "x"}).want(t, "config server credential", 409, "conflict")

	// Changing backend_auth needs the credential again; going to none drops it.
	e.do("PUT", "/servers/gh", "admins", map[string]any{"upstream": "http://127.0.0.1:4100/mcp",
		"backend_auth": map[string]any{"scheme": "api_key", "header": "X-Key"}}, "If-Match", "*").want(t, "scheme change without credential", 400, "invalid_field", "credential")
	e.do("PUT", "/servers/gh", "admins", map[string]any{"upstream": "http://127.0.0.1:4100/mcp",
		"backend_auth": map[string]any{"scheme": "api_key", "header": "X-Key"}, "credential": map[string]any{"value": "k"}}, "If-Match", "*").want(t, "scheme change", 200)
	if h := e.app.BackendHeaders(e.app.Server("gh")); h.Get("X-Key") != "k" || h.Get("Authorization") != "" {
		t.Errorf("after scheme change: %v", h)
	}
	e.do("PUT", "/servers/gh", "admins", map[string]any{"upstream": "http://127.0.0.1:4100/mcp"}, "If-Match", "*").want(t, "to none", 200)
	if h := e.app.BackendHeaders(e.app.Server("gh")); len(h) != 0 {
		t.Errorf("credential kept after backend_auth none: %v", h)
	}
	e.do("PUT", "/servers/gh/credential", "admins", map[string]any{"headers": map[string]string{"X-Team": "t"}}).want(t, "headers only", 204)
	e.do("DELETE", "/servers/gh/credential", "admins", nil).want(t, "remove credential", 204)
	if e.app.HasCredential("gh") {
		t.Error("credential still there")
	}
}

func TestRESTValidation(t *testing.T) {
	e := startREST(t, map[string]any{"auth": restAuth()})
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"not JSON", "{", 400, "invalid_json", ""},
		{"two values", `{"name":"a","upstream":"http://127.0.0.1:1/mcp"} {}`, 400, "invalid_json", ""},
		{"array", `[]`, 400, "invalid_field", ""},
		{"wrong type", map[string]any{"name": "a", "upstream": "http://127.0.0.1:1/mcp", "tags": "x"}, 400, "invalid_field", "tags"},
		{"unknown field", map[string]any{"name": "a", "upstream": "http://127.0.0.1:1/mcp", "colour": "red"}, 400, "invalid_field", "colour"},
		{"no name", map[string]any{"upstream": "http://127.0.0.1:1/mcp"}, 400, "invalid_field", "name"},
		{"bad name", map[string]any{"name": "Bad Name", "upstream": "http://127.0.0.1:1/mcp"}, 400, "invalid_field", "name"},
		{"no upstream", map[string]any{"name": "a"}, 400, "invalid_field", "upstream"},
		{"bad transport", map[string]any{"name": "a", "upstream": "http://127.0.0.1:1/mcp", "transport": "grpc"}, 400, "invalid_field", "transport"},
		{"metadata upstream", map[string]any{"name": "a", "upstream": "http://169.254.169.254/latest/meta-data/"}, 400, "invalid_field", "upstream"},
		{"metadata name", map[string]any{"name": "a", "upstream": "http://metadata.google.internal/computeMetadata/v1/"}, 400, "invalid_field", "upstream"},
		{"the gateway itself", map[string]any{"name": "a", "upstream": e.base + "/servers"}, 400, "invalid_field", "upstream"},
		{"zoned address", map[string]any{"name": "a", "upstream": "http://[fe80::1%25eth0]/mcp"}, 400, "invalid_field", "upstream"},
		{"builtin", map[string]any{"name": "a", "upstream": "builtin:registry"}, 400, "invalid_field", "upstream"},
		{"ftp", map[string]any{"name": "a", "upstream": "ftp://127.0.0.1/mcp"}, 400, "invalid_field", "upstream"},
		{"credentials in URL", map[string]any{"name": "a", "upstream": "http://u:p@127.0.0.1:1/mcp"}, 400, "invalid_field", "upstream"},
		{"api_key without header", map[string]any{"name": "a", "upstream": "http://127.0.0.1:1/mcp", "backend_auth": map[string]any{"scheme": "api_key"}}, 400, "invalid_field", "backend_auth.header"},
		{"too many tags", map[string]any{"name": "a", "upstream": "http://127.0.0.1:1/mcp", "tags": make([]string, 65)}, 400, "invalid_field", "tags"},
		{"too large", `{"name":"a","description":"` + strings.Repeat("x", maxAPIBody) + `"}`, 413, "too_large", ""},
	} {
		e.do("POST", "/servers", "admins", tc.body).want(t, tc.name, tc.status, tc.code, tc.field)
	}
	req, _ := http.NewRequest("POST", e.base+"/servers", strings.NewReader(`name=a`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+restKeys["admins"])
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 415 {
		t.Errorf("form body: %v %v", res.StatusCode, err)
	}
	if got := listNames(e.do("GET", "/servers", "admins", nil)); got != "cfg-db,cfg-git,registry,secret-hr" {
		t.Errorf("failed registrations left something behind: %s", got)
	}

	for q, field := range map[string]string{"limit=0": "limit", "limit=501": "limit", "limit=x": "limit", "cursor=!!": "cursor",
		"enabled=maybe": "enabled", "health=sick": "health", "q=" + strings.Repeat("x", 300): "q"} {
		e.do("GET", "/servers?"+q, "admins", nil).want(t, q, 400, "invalid_field", field)
	}
	e.do("GET", "/search", "admins", nil).want(t, "search without q", 400, "invalid_field", "q")
	e.do("GET", "/search?q=x&limit=1000", "admins", nil).want(t, "search limit", 400, "invalid_field", "limit")
	for _, bad := range []string{"0", "-1", "ten", "1.5"} {
		e.do("GET", "/search?q=x&limit="+bad, "admins", nil).want(t, "search limit "+bad, 400, "invalid_field", "limit")
	}
	e.do("GET", "/search?q="+strings.Repeat("x", 513), "admins", nil).want(t, "search query too long", 400, "invalid_field", "q")
	e.do("POST", "/servers/cfg-db", "admins", nil).want(t, "POST to a server", 405, "method_not_allowed")
	r := e.do("DELETE", "/servers", "admins", nil).want(t, "DELETE collection", 405, "method_not_allowed")
	if r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	// Paths that are not the REST API's go to the next handler (here: none, Caddy's empty
	// 200), so a server with gateway path "api" keeps /api/mcp.
	if r := e.do("POST", "/mcp", "admins", nil); r.status != 200 || r.raw != "" {
		t.Errorf("/api/mcp was not passed on: %d %s", r.status, r.raw)
	}
	e.do("GET", "/servers/cfg-db/nothing", "admins", nil).want(t, "unknown sub-resource", 404, "not_found")
	e.do("PUT", "/servers/cfg-git", "admins", map[string]any{"name": "renamed", "upstream": "http://127.0.0.1:1/mcp"}, "If-Match", "*").want(t, "rename", 400, "invalid_field", "name")
	e.do("PUT", "/servers/cfg-git", "admins", map[string]any{}, "If-Match", "12, 13").want(t, "If-Match list", 400, "invalid_field", "If-Match")
}

func TestRESTAnonymous(t *testing.T) {
	e := startREST(t, nil)
	if got := listNames(e.do("GET", "/servers", "", nil).want(t, "anonymous read", 200)); got != "cfg-db,cfg-git,registry,secret-hr" {
		t.Errorf("anonymous list: %s", got)
	}
	r := e.do("POST", "/servers", "", map[string]any{"name": "x", "upstream": "http://127.0.0.1:1/mcp"}).want(t, "anonymous write", 403, "forbidden")
	if !strings.Contains(r.body["error"].(string), "read-only") {
		t.Errorf("403 does not explain: %s", r.raw)
	}
	e.do("POST", "/servers/cfg-git/disable", "", nil).want(t, "anonymous toggle", 403, "forbidden")

	e2 := startREST(t, map[string]any{"anonymous_writes": true})
	e2.do("POST", "/servers", "", map[string]any{"name": "x", "upstream": "http://127.0.0.1:1/mcp"}).want(t, "anonymous_writes", 201)
	// Upstream checks apply to everyone.
	e2.do("POST", "/servers", "", map[string]any{"name": "y", "upstream": "http://169.254.169.254/"}).want(t, "metadata", 400, "invalid_field", "upstream")
}

// TestRESTConcurrentUpdates: many clients do GET → modify → PUT with If-Match on one
// server; every 200 is a distinct revision, the losers get 412, and the counter in the
// description equals the number of successful writes: no update is lost.
func TestRESTConcurrentUpdates(t *testing.T) {
	e := startREST(t, map[string]any{"auth": restAuth()})
	e.do("POST", "/servers", "admins", map[string]any{"name": "counter", "upstream": "http://127.0.0.1:4200/mcp", "description": "0"}).want(t, "register", 201)
	const clients, perClient = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]bool{}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < perClient; {
				g := e.do("GET", "/servers/counter", "admins", nil)
				n, _ := strconv.Atoi(g.body["description"].(string))
				body := map[string]any{"upstream": "http://127.0.0.1:4200/mcp", "description": strconv.Itoa(n + 1)}
				r := e.do("PUT", "/servers/counter", "admins", body, "If-Match", g.header.Get("ETag"))
				switch r.status {
				case 200:
					mu.Lock()
					if wins[r.header.Get("ETag")] {
						t.Errorf("revision %s won twice", r.header.Get("ETag"))
					}
					wins[r.header.Get("ETag")] = true
					mu.Unlock()
					done++
				case 412:
				default:
					t.Errorf("PUT: %d %s", r.status, r.raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := e.app.Server("counter")
	if s.Description != strconv.Itoa(clients*perClient) || s.Revision != clients*perClient+1 {
		t.Errorf("after %d successful writes: description %q revision %d", clients*perClient, s.Description, s.Revision)
	}
}

// TestV01Auth: with v01_auth the v0.1 API needs a token and publishes only what the
// caller may list; without it, it stays public even when the REST API has auth.
func TestV01Auth(t *testing.T) {
	e := startREST(t, map[string]any{"auth": restAuth(), "v01_auth": true})
	v01 := *e
	v01.base = strings.TrimSuffix(e.base, "/api") + "/v0.1"
	v01Names := func(r restResp) string {
		var out []string
		for _, s := range r.body["servers"].([]any) {
			out = append(out, s.(map[string]any)["server"].(map[string]any)["name"].(string))
		}
		return strings.Join(out, ",")
	}
	r := v01.do("GET", "/servers", "", nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %s", r.status, r.raw)
	}
	if got := v01Names(v01.do("GET", "/servers", "viewers", nil)); got != "local.caddymcp/cfg-db,local.caddymcp/cfg-git" {
		t.Errorf("viewer sees %s", got)
	}
	if got := v01Names(v01.do("GET", "/servers", "admins", nil)); got != "local.caddymcp/cfg-db,local.caddymcp/cfg-git,local.caddymcp/registry,local.caddymcp/secret-hr" {
		t.Errorf("admin sees %s", got)
	}
	if r := v01.do("GET", "/servers/local.caddymcp%2Fsecret-hr/versions/latest", "viewers", nil); r.status != 404 {
		t.Errorf("viewer reads a hidden server: %d %s", r.status, r.raw)
	}
	if r := v01.do("GET", "/servers/local.caddymcp%2Fsecret-hr/versions/latest", "admins", nil); r.status != 200 {
		t.Errorf("admin reads secret-hr: %d %s", r.status, r.raw)
	}

	// Without v01_auth the v0.1 API is anonymous: with auth on, an anonymous caller
	// may list nothing, so it sees what v01_public names — live servers and deletions.
	for _, tc := range []struct {
		public []string
		want   string
	}{
		{nil, ""},
		{[]string{"all"}, "local.caddymcp/cfg-db,local.caddymcp/cfg-git,local.caddymcp/gone-pub,local.caddymcp/gone-secret,local.caddymcp/registry,local.caddymcp/secret-hr"},
		{[]string{"cfg-db", "gone-pub"}, "local.caddymcp/cfg-db,local.caddymcp/gone-pub"},
	} {
		api := map[string]any{"auth": restAuth()}
		if tc.public != nil {
			api["v01_public"] = tc.public
		}
		pub := startREST(t, api)
		for _, name := range []string{"gone-pub", "gone-secret"} {
			pub.do("POST", "/servers", "admins", map[string]any{"name": name, "upstream": "http://127.0.0.1:4400/mcp"}).want(t, "register "+name, 201)
			pub.do("DELETE", "/servers/"+name, "admins", nil).want(t, "delete "+name, 204)
		}
		pub.base = strings.TrimSuffix(pub.base, "/api") + "/v0.1"
		if got := v01Names(pub.do("GET", "/servers?include_deleted=true", "", nil)); got != tc.want {
			t.Errorf("anonymous v0.1 with v01_public %q: %s, want %s", tc.public, got, tc.want)
		}
		if r := pub.do("GET", "/servers/local.caddymcp%2Fgone-secret/versions/latest?include_deleted=true", "", nil); (r.status == 200) != (tc.public != nil && tc.public[0] == "all") {
			t.Errorf("v01_public %q: the deleted secret server answers %d", tc.public, r.status)
		}
	}
}

func TestRESTPatch(t *testing.T) {
	e := startREST(t, map[string]any{"auth": restAuth()})
	e.do("POST", "/servers", "admins", map[string]any{"name": "p", "upstream": "http://127.0.0.1:4300/mcp",
		"description": "before", "tags": []string{"a", "b"}, "path": "pp"}).want(t, "register", 201)

	r := e.do("PATCH", "/servers/p", "admins", map[string]any{"description": "after", "tags": nil}).want(t, "patch", 200)
	if r.body["description"] != "after" || len(r.body["tags"].([]any)) != 0 || r.body["path"] != "pp" ||
		r.body["upstream"] != "http://127.0.0.1:4300/mcp" || r.header.Get("ETag") != `"2"` {
		t.Errorf("after patch: %s %s", r.header.Get("ETag"), r.raw)
	}
	// null resets to the default; nested objects merge.
	r = e.do("PATCH", "/servers/p", "admins", map[string]any{"path": nil,
		"backend_auth": map[string]any{"scheme": "api_key", "header": "X-Key"}, "credential": map[string]any{"value": "k1"}},
		"Content-Type", "application/merge-patch+json").want(t, "patch auth", 200)
	if r.body["path"] != "p" || r.body["has_credential"] != true {
		t.Errorf("after second patch: %s", r.raw)
	}
	if h := e.app.BackendHeaders(e.app.Server("p")); h.Get("X-Key") != "k1" {
		t.Errorf("credential: %v", h)
	}
	e.do("PATCH", "/servers/p", "admins", map[string]any{"backend_auth": map[string]any{"header": "X-Other"}}).want(t, "auth change without credential", 400, "invalid_field", "credential")
	e.do("PATCH", "/servers/p", "admins", map[string]any{"enabled": false}, "If-Match", `"1"`).want(t, "stale If-Match", 412, "precondition_failed")
	r = e.do("PATCH", "/servers/p", "admins", map[string]any{"enabled": false}, "If-Match", `"3"`).want(t, "If-Match", 200)
	if r.body["enabled"] != false || e.app.Lookup("p").Enabled {
		t.Errorf("disable by patch: %s", r.raw)
	}
	e.do("PATCH", "/servers/p", "admins", map[string]any{"colour": "red"}).want(t, "unknown field", 400, "invalid_field", "colour")
	// Neither a member that merging would drop nor a case variant that decoding would
	// match may turn a PATCH into a silent no-op with a new revision.
	e.do("PATCH", "/servers/p", "admins", map[string]any{"colour": nil}).want(t, "unknown null field", 400, "invalid_field", "colour")
	// Only a config server may receive clients' cookies and access_token: never at runtime.
	e.do("PATCH", "/servers/p", "admins", map[string]any{"forward_client_credentials": true}).want(t, "forward_client_credentials by PATCH", 400, "invalid_field", "forward_client_credentials")
	e.do("PUT", "/servers/p", "admins", map[string]any{"upstream": "http://127.0.0.1:4300/mcp", "forward_client_credentials": true}, "If-Match", "*").want(t, "forward_client_credentials by PUT", 400, "invalid_field", "forward_client_credentials")
	e.do("PATCH", "/servers/p", "admins", map[string]any{"Description": "shouted"}).want(t, "case variant", 400, "invalid_field", "Description")
	e.do("PATCH", "/servers/p", "admins", map[string]any{"backend_auth": map[string]any{"Scheme": "none"}}).want(t, "nested case variant", 400, "invalid_field", "backend_auth.Scheme")
	// An If-Match beyond any revision matches nothing; it must not wrap to *.
	for _, huge := range []string{`"18446744073709551615"`, `"18446744073709551614"`, `"99999999999999999999999"`} {
		e.do("PATCH", "/servers/p", "admins", map[string]any{"description": "x"}, "If-Match", huge).want(t, "If-Match "+huge, 412, "precondition_failed")
		e.do("PUT", "/servers/p", "admins", map[string]any{"upstream": "http://127.0.0.1:4300/mcp"}, "If-Match", huge).want(t, "PUT If-Match "+huge, 412, "precondition_failed")
	}
	e.do("PATCH", "/servers/p", "admins", map[string]any{"tags": "x"}).want(t, "wrong type", 400, "invalid_field", "tags")
	e.do("PATCH", "/servers/p", "admins", map[string]any{"name": "q"}).want(t, "rename", 400, "invalid_field", "name")
	e.do("PATCH", "/servers/p", "admins", map[string]any{"upstream": "http://169.254.169.254/"}).want(t, "metadata", 400, "invalid_field", "upstream")
	e.do("PATCH", "/servers/p", "viewers", map[string]any{"description": "x"}).want(t, "hidden", 404, "not_found")
	e.do("PATCH", "/servers/p", "operators", map[string]any{"description": "x"}).want(t, "no modify_service", 403, "forbidden")
	e.do("PATCH", "/servers/cfg-db", "admins", map[string]any{"description": "x"}).want(t, "config server", 409, "conflict")
	if s := e.app.Server("p"); s.Description != "after" || s.Revision != 4 {
		t.Errorf("failed patches changed the record: %+v", s)
	}

	// Concurrent patches of different fields without If-Match: none is lost.
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			field := map[string]any{"description": fmt.Sprint("d", i)}
			if i%2 == 1 {
				field = map[string]any{"tags": []string{fmt.Sprint("t", i)}}
			}
			if r := e.do("PATCH", "/servers/p", "admins", field); r.status != 200 && r.status != 412 {
				t.Errorf("concurrent patch: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	if s := e.app.Server("p"); s.Description == "after" || len(s.Tags) != 1 {
		t.Errorf("after concurrent patches: %+v", s)
	}
}

// TestRESTCredentialFollowsOnlyItsOrigin is the attack of a user allowed to modify one
// server: they move it to a host of their own, hoping the stored credential follows.
// It does not — not on the health check, not on a proxied request — until someone with
// modify_service for all servers confirms it for the new origin; a reload keeps it
// suspended.
func TestRESTCredentialFollowsOnlyItsOrigin(t *testing.T) {
	type hit struct{ upstream, auth string }
	var mu sync.Mutex
	var hits []hit
	recorder := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits = append(hits, hit{name, r.Header.Get("Authorization")})
			mu.Unlock()
			http.Error(w, "no", http.StatusUnauthorized)
		}))
	}
	legit, attacker := recorder("legit"), recorder("attacker")
	defer legit.Close()
	defer attacker.Close()
	sawSecret := func(upstream string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range hits {
			if h.upstream == upstream && strings.Contains(h.auth, "tok-legit") {
				return true
			}
		}
		return false
	}

	e := startREST(t, map[string]any{"auth": restAuth()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e.do("POST", "/servers", "admins", map[string]any{"name": "team-a", "upstream": legit.URL + "/mcp",
		"backend_auth": map[string]any{"scheme": "bearer"}, "credential": map[string]any{"value": "tok-legit"}}).want(t, "register", 201)
	e.app.RefreshNow(ctx, "team-a")
	if !sawSecret("legit") {
		t.Fatal("the legitimate upstream did not get its credential")
	}

	// The registrar may modify team-a: they move it (PATCH, then PUT, same result).
	r := e.do("PATCH", "/servers/team-a", "registrar", map[string]any{"upstream": attacker.URL + "/mcp"}).want(t, "move", 200)
	if r.body["credential_suspended"] != true || r.body["has_credential"] != true {
		t.Errorf("after the move: %s, want has_credential and credential_suspended", r.raw)
	}
	s := e.app.Server("team-a")
	if h := e.app.BackendHeaders(s); h != nil {
		t.Errorf("backend headers for the moved server: %v", h)
	}
	e.app.RefreshNow(ctx, "team-a")
	if sawSecret("attacker") {
		t.Fatal("the credential reached the new origin after a move")
	}
	// Same host, another path: the origin is unchanged, the credential stays in use.
	e.do("PATCH", "/servers/team-a", "admins", map[string]any{"upstream": legit.URL + "/mcp"}).want(t, "move back", 200)
	e.do("PATCH", "/servers/team-a", "admins", map[string]any{"upstream": legit.URL + "/other/mcp"}).want(t, "new path", 200)
	if h := e.app.BackendHeaders(e.app.Server("team-a")); h.Get("Authorization") != "Bearer tok-legit" {
		t.Errorf("same origin, new path: %v", h)
	}
	e.do("PATCH", "/servers/team-a", "registrar", map[string]any{"upstream": attacker.URL + "/mcp"}).want(t, "move again", 200)

	// The mover cannot confirm; neither can a stranger; an admin can.
	e.do("POST", "/servers/team-a/credential/confirm", "registrar", nil).want(t, "confirm by the mover", 403, "forbidden")
	e.do("POST", "/servers/team-a/credential/confirm", "viewers", nil).want(t, "confirm by a viewer", 403, "forbidden")
	e.do("POST", "/servers/team-a/credential/confirm", "nobody", nil).want(t, "confirm by one who cannot list it", 404, "not_found")
	e.do("GET", "/servers/team-a/credential/confirm", "admins", nil).want(t, "GET confirm", 405)
	e.do("POST", "/servers/cfg-db/credential/confirm", "admins", nil).want(t, "confirm without credential", 404, "not_found")
	if sawSecret("attacker") {
		t.Fatal("the credential reached the new origin before confirmation")
	}
	e.do("POST", "/servers/team-a/credential/confirm", "admins", nil).want(t, "confirm", 204)
	if r := e.do("GET", "/servers/team-a", "admins", nil).want(t, "get", 200); r.body["credential_suspended"] != nil {
		t.Errorf("still suspended after confirmation: %s", r.raw)
	}
	e.app.RefreshNow(ctx, "team-a")
	if !sawSecret("attacker") {
		t.Error("the confirmed credential was not sent to the new origin")
	}
}
