package registryapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/jsonschema-go/jsonschema"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/v01"
)

// v01Fixture loads a registry with servers a1…a7 (a3 on SSE, a4 with x-authorization,
// a5 with a 150-character description), a disabled server "off" and the builtin
// "registry": 8 published servers.
func v01Fixture(t *testing.T, h *RegistryAPI) http.Handler {
	t.Helper()
	long := strings.Repeat("é", 150) // two bytes a rune: truncation must count runes
	var servers []map[string]any
	for i := 1; i <= 7; i++ {
		s := map[string]any{"name": fmt.Sprintf("a%d", i), "upstream": fmt.Sprintf("http://127.0.0.1:%d/mcp", 3000+i),
			"description": fmt.Sprintf("Server number %d", i)}
		switch i {
		case 3:
			s["transport"], s["upstream"], s["path"] = "sse", "http://127.0.0.1:3003/sse", "legacy"
		case 4:
			s["gateway_token_header"] = "x-authorization"
		case 5:
			s["description"] = long
		case 6:
			s["description"] = "Database tools for Postgres"
		}
		servers = append(servers, s)
	}
	servers = append(servers, map[string]any{"name": "off", "upstream": "http://127.0.0.1:3999/mcp", "disabled": true})
	loadConfig(t, map[string]any{
		"storage": map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"health":  map[string]any{"disabled": true},
		"servers": servers,
	})
	t.Cleanup(func() { caddy.Stop() })
	h.Prefix = apiCleanPrefix(h.Prefix)
	h.GatewayPrefix = apiCleanPrefix(h.GatewayPrefix)
	if h.Namespace == "" {
		h.Namespace = DefaultNamespace
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	h.app = runningApp(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.WriteHeader(http.StatusTeapot) // marks "passed to the next handler"
			return nil
		})
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	})
}

func loadServerSchema(t *testing.T) *jsonschema.Resolved {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "registry", "server.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("parsing the official server.json schema: %v", err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatalf("resolving the official server.json schema: %v", err)
	}
	return rs
}

type v01Client struct {
	t      *testing.T
	h      http.Handler
	schema *jsonschema.Resolved
}

// get requests target and returns the status, the decoded JSON body and the headers.
// Every server.json in a 200 answer is validated against the official schema, and every
// answer must carry the CORS headers.
func (c v01Client) get(target string) (int, map[string]any, http.Header) {
	c.t.Helper()
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if rec.Code == http.StatusTeapot {
		return rec.Code, nil, rec.Header()
	}
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		c.t.Errorf("GET %s: Access-Control-Allow-Origin %q", target, got)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		c.t.Errorf("GET %s: Content-Type %q", target, ct)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		c.t.Fatalf("GET %s: %d, body not JSON: %v: %s", target, rec.Code, err, rec.Body)
	}
	if rec.Code == http.StatusOK {
		var entries []any
		if list, ok := body["servers"].([]any); ok {
			entries = list
		} else {
			entries = []any{body}
		}
		for _, e := range entries {
			c.checkEntry(target, e.(map[string]any))
		}
	} else if msg, _ := body["error"].(string); msg == "" || len(body) != 1 {
		c.t.Errorf("GET %s: %d error body %v, want {\"error\": …}", target, rec.Code, body)
	}
	return rec.Code, body, rec.Header()
}

func (c v01Client) checkEntry(target string, e map[string]any) {
	c.t.Helper()
	srv, ok := e["server"].(map[string]any)
	if !ok {
		c.t.Fatalf("GET %s: entry without server: %v", target, e)
	}
	if err := c.schema.Validate(srv); err != nil {
		c.t.Errorf("GET %s: %s does not validate against the official server.json schema: %v", target, srv["name"], err)
	}
	off, ok := e["_meta"].(map[string]any)[v01.OfficialMetaKey].(map[string]any)
	if !ok {
		c.t.Fatalf("GET %s: entry without _meta[%q]: %v", target, v01.OfficialMetaKey, e)
	}
	switch off["status"] {
	case "deleted":
		// A tombstone: no remotes, no publishedAt (a tombstone does not remember it).
		if off["isLatest"] != true || off["updatedAt"] == nil || len(off) != 3 || srv["remotes"] != nil {
			c.t.Errorf("GET %s: deleted entry %v", target, e)
		}
	default:
		if off["status"] != "active" || off["isLatest"] != true || off["publishedAt"] == nil || off["updatedAt"] == nil || len(off) != 4 {
			c.t.Errorf("GET %s: official meta %v", target, off)
		}
	}
}

func names(body map[string]any) []string {
	var out []string
	for _, e := range body["servers"].([]any) {
		out = append(out, e.(map[string]any)["server"].(map[string]any)["name"].(string))
	}
	return out
}

func TestV01ListAndPagination(t *testing.T) {
	c := v01Client{t, v01Fixture(t, &RegistryAPI{Namespace: "com.example", PublicURL: "https://mcp.example.com", GatewayPrefix: "/servers"}), loadServerSchema(t)}
	all := []string{"com.example/a1", "com.example/a2", "com.example/a3", "com.example/a4",
		"com.example/a5", "com.example/a6", "com.example/a7", "com.example/registry"}

	code, body, _ := c.get("/v0.1/servers")
	if code != 200 || strings.Join(names(body), ",") != strings.Join(all, ",") {
		t.Fatalf("list: %d %v (disabled server must be omitted)", code, names(body))
	}
	md := body["metadata"].(map[string]any)
	if md["count"] != float64(8) || md["nextCursor"] != nil {
		t.Errorf("metadata of a partial page: %v", md)
	}

	// limit 3: pages of 3, 3, 2; the last page is not full and has no cursor.
	var got []string
	cursor, pages := "", 0
	for {
		target := "/v0.1/servers?limit=3"
		if cursor != "" {
			target += "&cursor=" + cursor
		}
		code, body, _ := c.get(target)
		if code != 200 {
			t.Fatalf("%s: %d %v", target, code, body)
		}
		pages++
		n := names(body)
		got = append(got, n...)
		md := body["metadata"].(map[string]any)
		if md["count"] != float64(len(n)) {
			t.Errorf("%s: count %v for %d servers", target, md["count"], len(n))
		}
		next, has := md["nextCursor"].(string)
		if has != (len(n) == 3) {
			t.Errorf("%s: %d servers, nextCursor %q: want one exactly on full pages", target, len(n), next)
		}
		if !has {
			break
		}
		cursor = next
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(all, ",") {
		t.Errorf("limit 3: %d pages, %v", pages, got)
	}

	// limit 4: two full pages, each with a cursor, then an empty page without one.
	_, p1, _ := c.get("/v0.1/servers?limit=4")
	c1 := p1["metadata"].(map[string]any)["nextCursor"].(string)
	_, p2, _ := c.get("/v0.1/servers?limit=4&cursor=" + c1)
	c2, ok := p2["metadata"].(map[string]any)["nextCursor"].(string)
	if !ok || len(names(p2)) != 4 || names(p2)[3] != "com.example/registry" {
		t.Fatalf("second full page: %v %v", names(p2), p2["metadata"])
	}
	_, p3, _ := c.get("/v0.1/servers?limit=4&cursor=" + c2)
	if s := p3["servers"].([]any); len(s) != 0 || p3["metadata"].(map[string]any)["count"] != float64(0) || p3["metadata"].(map[string]any)["nextCursor"] != nil {
		t.Errorf("page after the last full one: %v", p3)
	}

	// Filters.
	for target, want := range map[string]string{
		"/v0.1/servers?search=postgres":                              "com.example/a6", // description, any case
		"/v0.1/servers?search=A7":                                    "com.example/a7", // name, any case
		"/v0.1/servers?search=nothing-matches":                       "",               // empty list
		"/v0.1/servers?version=1.0.2":                                "",               // no record at revision 2
		"/v0.1/servers?search=a1&version=latest":                     "com.example/a1", // every record is its latest
		"/v0.1/servers?search=a1&version=1.0.1":                      "com.example/a1", // exact version
		"/v0.1/servers?search=a1&include_deleted=true":               "com.example/a1", // no tombstones in the fixture
		"/v0.1/servers?search=a1&updated_since=2000-01-01T00:00:00Z": "com.example/a1", // updated after
		"/v0.1/servers?updated_since=2999-01-01T00:00:00%2B02:00":    "",               // nothing updated after
	} {
		code, body, _ := c.get(target)
		if code != 200 || strings.Join(names(body), ",") != want {
			t.Errorf("%s: %d %v, want [%s]", target, code, body["servers"], want)
		}
	}

	// Remotes, headers (auth_header_required off: none), truncation.
	_, body, _ = c.get("/v0.1/servers?limit=100")
	byName := map[string]map[string]any{}
	for _, e := range body["servers"].([]any) {
		s := e.(map[string]any)["server"].(map[string]any)
		byName[s["name"].(string)] = s
	}
	remote := func(n string) map[string]any {
		return byName["com.example/"+n]["remotes"].([]any)[0].(map[string]any)
	}
	if r := remote("a1"); r["type"] != "streamable-http" || r["url"] != "https://mcp.example.com/servers/a1/mcp" || r["headers"] != nil {
		t.Errorf("a1 remote: %v", r)
	}
	if r := remote("a3"); r["type"] != "sse" || r["url"] != "https://mcp.example.com/servers/legacy/sse" {
		t.Errorf("a3 remote: %v", r)
	}
	a1 := byName["com.example/a1"]
	if a1["$schema"] != v01.SchemaURL || a1["version"] != "1.0.1" || a1["description"] != "Server number 1" {
		t.Errorf("a1 server.json: %v", a1)
	}
	d := byName["com.example/a5"]["description"].(string)
	if utf8.RuneCountInString(d) != 100 || !utf8.ValidString(d) || !strings.HasSuffix(d, "…") {
		t.Errorf("a5 description: %d runes %q", utf8.RuneCountInString(d), d)
	}
}

func TestV01Errors(t *testing.T) {
	c := v01Client{t, v01Fixture(t, &RegistryAPI{}), loadServerSchema(t)}
	for target, param := range map[string]string{
		"/v0.1/servers?limit=0":                   "limit",
		"/v0.1/servers?limit=101":                 "limit",
		"/v0.1/servers?limit=ten":                 "limit",
		"/v0.1/servers?limit=-1":                  "limit",
		"/v0.1/servers?updated_since=yesterday":   "updated_since",
		"/v0.1/servers?updated_since=2025-01-01":  "updated_since",
		"/v0.1/servers?cursor=%25%25":             "cursor",
		"/v0.1/servers?cursor=not!base64":         "cursor",
		"/v0.1/servers?limit=5&search=%zz":        "query",
		"/v0.1/servers?include_deleted=sometimes": "include_deleted",
	} {
		code, body, _ := c.get(target)
		if msg, _ := body["error"].(string); code != 400 || !strings.HasPrefix(msg, param+":") {
			t.Errorf("%s: %d %v, want 400 naming %s", target, code, body, param)
		}
	}
	for _, target := range []string{
		"/v0.1/servers/local.caddymcp%2Fnope/versions",
		"/v0.1/servers/local.caddymcp%2Fnope/versions/latest",
		"/v0.1/servers/com.other%2Fa1/versions",            // wrong namespace
		"/v0.1/servers/a1/versions",                        // not reverse-DNS
		"/v0.1/servers/local.caddymcp%2Foff/versions",      // disabled
		"/v0.1/servers/local.caddymcp%2Fa1/versions/1.0.9", // no such version
		"/v0.1/servers/local.caddymcp%2Fa1",                // no /versions
		"/v0.1/servers/local.caddymcp%2Fa1/versions/",      // empty version
		"/v0.1/servers/local.caddymcp%2Fa1/versions/1/2",   // version of two segments
	} {
		if code, body, _ := c.get(target); code != 404 {
			t.Errorf("%s: %d %v, want 404", target, code, body)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, httptest.NewRequest(m, "/v0.1/servers", strings.NewReader("{}")))
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != 405 || body["error"] == "" || rec.Header().Get("Allow") == "" || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: %d %v %v", m, rec.Code, body, rec.Header())
		}
	}
	// Other paths go to the next handler.
	for _, target := range []string{"/", "/v0.1", "/v0.1/serversx", "/v0/servers", "/a1/mcp"} {
		if code, _, _ := c.get(target); code != http.StatusTeapot {
			t.Errorf("%s: %d, want it passed to the next handler", target, code)
		}
	}
}

func TestV01VersionsAndNames(t *testing.T) {
	c := v01Client{t, v01Fixture(t, &RegistryAPI{Prefix: "/registry/", Namespace: "com.example", AuthHeaderRequired: true}), loadServerSchema(t)}
	for _, target := range []string{
		"/registry/v0.1/servers/com.example%2Fa4/versions",
		"/registry/v0.1/servers/com.example%2fa4/versions", // lower-case escape
		"/registry/v0.1/servers/com.example/a4/versions",   // unescaped slash
	} {
		code, body, _ := c.get(target)
		if code != 200 || strings.Join(names(body), ",") != "com.example/a4" || body["metadata"].(map[string]any)["count"] != float64(1) {
			t.Errorf("%s: %d %v", target, code, body)
		}
	}
	for _, v := range []string{"latest", "1.0.1"} {
		code, body, _ := c.get("/registry/v0.1/servers/com.example%2Fa4/versions/" + v)
		if code != 200 {
			t.Fatalf("version %s: %d %v", v, code, body)
		}
		s := body["server"].(map[string]any)
		r := s["remotes"].([]any)[0].(map[string]any)
		// No public_url: the request's origin; x-authorization servers name that header.
		if s["name"] != "com.example/a4" || s["version"] != "1.0.1" || r["url"] != "http://example.com/a4/mcp" {
			t.Errorf("version %s: %v", v, s)
		}
		hdr := r["headers"].([]any)[0].(map[string]any)
		if hdr["name"] != "X-Authorization" || hdr["isRequired"] != true || hdr["isSecret"] != true || hdr["description"] == "" {
			t.Errorf("a4 header: %v", hdr)
		}
	}
	_, body, _ := c.get("/registry/v0.1/servers/com.example%2Fa1/versions/latest")
	hdr := body["server"].(map[string]any)["remotes"].([]any)[0].(map[string]any)["headers"].([]any)[0].(map[string]any)
	if hdr["name"] != "Authorization" {
		t.Errorf("a1 header: %v", hdr)
	}
	// The root is not the API when a prefix is set.
	if code, _, _ := c.get("/v0.1/servers"); code != http.StatusTeapot {
		t.Errorf("/v0.1/servers outside the prefix: %d", code)
	}
}

func TestV01CORSPreflight(t *testing.T) {
	h := v01Fixture(t, &RegistryAPI{})
	for _, target := range []string{"/v0.1/servers", "/v0.1/servers/local.caddymcp%2Fa1/versions/latest"} {
		req := httptest.NewRequest(http.MethodOptions, target, nil)
		req.Header.Set("Origin", "https://vscode.dev")
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		hdr := rec.Header()
		if rec.Code != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "*" ||
			hdr.Get("Access-Control-Allow-Methods") != "GET, OPTIONS" ||
			hdr.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" || rec.Body.Len() != 0 {
			t.Errorf("preflight %s: %d %v", target, rec.Code, hdr)
		}
	}
}

func TestRegistryAPIValidate(t *testing.T) {
	for _, h := range []*RegistryAPI{
		{Namespace: "com example"},
		{Namespace: "com.example/x"},
		{Namespace: "com.example", PublicURL: "mcp.example.com"},
		{Namespace: "com.example", PublicURL: "https://mcp.example.com/path"},
		{Namespace: "com.example", PublicURL: "ftp://mcp.example.com"},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%+v: want an error", h)
		}
	}
	if err := (&RegistryAPI{Namespace: "com.example", PublicURL: "https://mcp.example.com:8443"}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestServerSchemaRejects proves the schema check has teeth: documents breaking the
// rules this API relies on fail validation.
func TestServerSchemaRejects(t *testing.T) {
	rs := loadServerSchema(t)
	for _, doc := range []string{
		`{"name":"com.example/a","version":"1.0.1"}`,                                              // no description
		`{"name":"a","description":"d","version":"1.0.1"}`,                                        // not reverse-DNS
		`{"name":"com.example/a","description":"` + strings.Repeat("x", 101) + `","version":"1"}`, // too long
		`{"name":"com.example/a","description":"d","version":"1","remotes":[{"type":"ws","url":"x"}]}`,
		`{"name":"com.example/a","description":"d","version":"1","remotes":[{"type":"sse","url":"x","headers":[{"isSecret":true}]}]}`,
	} {
		var v map[string]any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		if err := rs.Validate(v); err == nil {
			t.Errorf("%s validated", doc)
		}
	}
}

// include_deleted (and updated_since, which implies it) serves tombstones as entries of
// status "deleted", merged in name order; paging stays consistent.
func TestV01IncludeDeleted(t *testing.T) {
	h := &RegistryAPI{Namespace: "com.example"}
	c := v01Client{t, v01Fixture(t, h), loadServerSchema(t)}
	app := h.app
	ctx := context.Background()
	before := time.Now()
	time.Sleep(5 * time.Millisecond)
	for _, n := range []string{"a2", "a6", "off"} { // "off" was disabled: its deletion is published too
		if err := app.Delete(ctx, n, model.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	status := func(body map[string]any) map[string]string {
		out := map[string]string{}
		for _, e := range body["servers"].([]any) {
			e := e.(map[string]any)
			off := e["_meta"].(map[string]any)[v01.OfficialMetaKey].(map[string]any)
			out[e["server"].(map[string]any)["name"].(string)] = off["status"].(string)
		}
		return out
	}

	_, body, _ := c.get("/v0.1/servers")
	if got := strings.Join(names(body), ","); strings.Contains(got, "a2") || strings.Contains(got, "a6") {
		t.Errorf("without include_deleted: %s", got)
	}
	all := "com.example/a1,com.example/a2,com.example/a3,com.example/a4,com.example/a5,com.example/a6,com.example/a7,com.example/off,com.example/registry"
	_, body, _ = c.get("/v0.1/servers?include_deleted=true")
	st := status(body)
	if got := strings.Join(names(body), ","); got != all || st["com.example/a2"] != "deleted" ||
		st["com.example/a6"] != "deleted" || st["com.example/off"] != "deleted" || st["com.example/a1"] != "active" {
		t.Fatalf("include_deleted: %s %v", got, st)
	}
	// The deleted entry's version is the tombstone's revision (the record's + 1).
	for _, e := range body["servers"].([]any) {
		srv := e.(map[string]any)["server"].(map[string]any)
		if srv["name"] == "com.example/a2" && srv["version"] != "1.0.2" {
			t.Errorf("deleted a2: version %v", srv["version"])
		}
	}

	// Paging with tombstones mixed in: every page size walks the same list once.
	for limit := 1; limit <= 5; limit++ {
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("limit %d: too many pages", limit)
			}
			target := fmt.Sprintf("/v0.1/servers?include_deleted=true&limit=%d", limit)
			if cursor != "" {
				target += "&cursor=" + cursor
			}
			code, body, _ := c.get(target)
			if code != 200 {
				t.Fatalf("%s: %d", target, code)
			}
			got = append(got, names(body)...)
			next, ok := body["metadata"].(map[string]any)["nextCursor"].(string)
			if !ok {
				break
			}
			cursor = next
		}
		if strings.Join(got, ",") != all {
			t.Errorf("limit %d: %v", limit, got)
		}
	}

	// updated_since implies include_deleted (as in the official API): only the deletions.
	since := before.UTC().Format(time.RFC3339Nano)
	for _, target := range []string{
		"/v0.1/servers?updated_since=" + since,
		"/v0.1/servers?include_deleted=false&updated_since=" + since,
		"/v0.1/servers?include_deleted=true&version=latest&updated_since=" + since,
	} {
		_, body, _ = c.get(target)
		if got := strings.Join(names(body), ","); got != "com.example/a2,com.example/a6,com.example/off" {
			t.Errorf("%s: %s", target, got)
		}
	}
	for target, want := range map[string]string{
		"/v0.1/servers?include_deleted=true&search=A6":                                    "com.example/a6", // name matches
		"/v0.1/servers?include_deleted=true&search=postgres":                              "",               // a tombstone has no description
		"/v0.1/servers?include_deleted=true&version=1.0.2":                                "com.example/a2,com.example/a6,com.example/off",
		"/v0.1/servers?include_deleted=true&cursor=" + b64("com.example/a5") + "&limit=2": "com.example/a6,com.example/a7",
	} {
		_, body, _ = c.get(target)
		if got := strings.Join(names(body), ","); got != want {
			t.Errorf("%s: %s, want %s", target, got, want)
		}
	}

	// One server's versions: 404 unless deleted servers are asked for.
	if code, _, _ := c.get("/v0.1/servers/com.example%2Fa2/versions/latest"); code != 404 {
		t.Errorf("deleted a2 without include_deleted: %d", code)
	}
	code, body, _ := c.get("/v0.1/servers/com.example%2Fa2/versions/latest?include_deleted=true")
	if off := body["_meta"].(map[string]any)[v01.OfficialMetaKey].(map[string]any); code != 200 || off["status"] != "deleted" {
		t.Errorf("deleted a2 with include_deleted: %d %v", code, body)
	}
	code, body, _ = c.get("/v0.1/servers/com.example%2Fa2/versions?include_deleted=true")
	if code != 200 || strings.Join(names(body), ",") != "com.example/a2" {
		t.Errorf("versions of deleted a2: %d %v", code, body)
	}

	// Registered again: active, the tombstone gone, the version continuing upwards.
	if _, err := app.Put(ctx, &model.Server{Name: "a2", Upstream: "http://127.0.0.1:3002/mcp", Enabled: true}, 0); err != nil {
		t.Fatal(err)
	}
	_, body, _ = c.get("/v0.1/servers?include_deleted=true&search=a2")
	if st := status(body); strings.Join(names(body), ",") != "com.example/a2" || st["com.example/a2"] != "active" {
		t.Errorf("a2 registered again: %v", st)
	}
	if v := body["servers"].([]any)[0].(map[string]any)["server"].(map[string]any)["version"]; v != "1.0.3" {
		t.Errorf("a2 registered again: version %v, want 1.0.3", v)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
