package mcpgateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestFailClosed: what the gateway cannot check does not pass. A list response in a
// shape the filter cannot read is withheld (502); duplicated MCP headers are refused;
// Mcp-Name must match the body on every protocol version; Cookie and access_token never
// reach an upstream; methods naming a resource or prompt are held to the grant.
func TestFailClosed(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	var mu sync.Mutex
	var got []*http.Request
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/plain") {
			w.Header().Set("Content-Type", "text/plain")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_repo"},{"name":"echo"}]}}`)
	}))
	t.Cleanup(up.Close)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	last := func() *http.Request { mu.Lock(); defer mu.Unlock(); return got[len(got)-1] }

	base := (&testCaddy{
		Servers: []any{
			map[string]any{"name": "everything", "upstream": up.URL + "/json/mcp"},
			map[string]any{"name": "plain", "upstream": up.URL + "/plain/mcp"},
			map[string]any{"name": "cookies", "upstream": up.URL + "/json/mcp", "forward_client_credentials": true},
		},
		Gateway: map[string]any{"auth": testAuthConfig(t, good, down)},
	}).start(t)
	readers := bearer(testAPIKey)
	admins := bearer(good.token(t, testResource, "platform-admins"))

	// An unexpected Content-Type on a list answer: withheld, not passed unfiltered.
	res := post(t, base+"/plain/mcp", admins, call(1, "tools/list", ""))
	if res.status != http.StatusBadGateway || strings.Contains(res.body, "delete_repo") || !strings.Contains(res.body, "-32009") {
		t.Errorf("text/plain list: %d %s", res.status, res.body)
	}

	// Duplicated MCP headers.
	for _, h := range []http.Header{
		{"Mcp-Name": {"echo", "delete_repo"}},
		{"Mcp-Protocol-Version": {"2025-06-18", "2026-07-28"}},
		{"Mcp-Method": {"tools/call", "tools/call"}},
	} {
		h.Set("Authorization", "Bearer "+testAPIKey)
		n := count()
		if res := post(t, base+"/everything/mcp", h, call(2, "tools/call", "echo")); res.status != http.StatusBadRequest || count() != n {
			t.Errorf("duplicated %v: %d %s", h, res.status, res.body)
		}
	}
	// Mcp-Name disagreeing with the body on an older protocol version.
	h := readers.Clone()
	h.Set("Mcp-Protocol-Version", "2025-06-18")
	h.Set("Mcp-Name", "echo")
	if res := post(t, base+"/everything/mcp", h, call(3, "tools/call", "add")); res.status != http.StatusBadRequest {
		t.Errorf("Mcp-Name echo on a call of add (2025-06-18): %d %s", res.status, res.body)
	}

	// Cookie and the access_token query parameter stay at the gateway.
	h = readers.Clone()
	h.Set("Cookie", "session=gateway-secret")
	if res := postQuery(t, base+"/everything/mcp?access_token=tok-secret&x=1", h, call(4, "ping", "")); res.status != 200 {
		t.Fatalf("ping: %d %s", res.status, res.body)
	}
	r := last()
	if r.Header.Get("Cookie") != "" || strings.Contains(r.URL.RawQuery, "access_token") || r.URL.Query().Get("x") != "1" {
		t.Errorf("upstream got Cookie %q, query %q", r.Header.Get("Cookie"), r.URL.RawQuery)
	}
	// A config server that opts in gets both.
	h = bearer(good.token(t, testResource, "platform-admins"))
	h.Set("Cookie", "session=gateway-secret")
	if res := postQuery(t, base+"/cookies/mcp?access_token=tok-secret&x=1", h, call(5, "ping", "")); res.status != 200 {
		t.Fatalf("ping opted-in server: %d %s", res.status, res.body)
	}
	if r := last(); r.Header.Get("Cookie") != "session=gateway-secret" || r.URL.Query().Get("access_token") != "tok-secret" {
		t.Errorf("opted-in upstream got Cookie %q, query %q", r.Header.Get("Cookie"), r.URL.RawQuery)
	}

	// A grant of methods '*' with a short resource and prompt list.
	cfg := testAuthConfig(t, good, down)
	cfg["policy_file"] = ""
	cfg["policy"] = map[string]any{
		"group_mappings": map[string]any{"narrow": []string{"narrow"}},
		"scopes": map[string]any{"narrow": []any{map[string]any{
			"server": "everything", "methods": []string{"*"}, "tools": []string{"echo"},
			"prompts": []string{"ok-prompt"}, "resources": []string{"ok://1"},
		}}},
	}
	base = (&testCaddy{
		Servers: []any{map[string]any{"name": "everything", "upstream": up.URL + "/json/mcp"}},
		Gateway: map[string]any{"auth": cfg},
	}).start(t)
	narrow := bearer(good.token(t, testResource, "narrow"))
	sub := func(method, uri string) string {
		return `{"jsonrpc":"2.0","id":5,"method":"` + method + `","params":{"uri":"` + uri + `"}}`
	}
	complete := func(ref string) string {
		return `{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":` + ref + `,"argument":{"name":"a","value":""}}}`
	}
	listen := func(uris string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[` + uris + `]}}}`
	}
	for body, allow := range map[string]bool{
		sub("resources/subscribe", "ok://1"):                   true,
		sub("resources/subscribe", "secret://x"):               false,
		sub("resources/unsubscribe", "secret://x"):             false,
		complete(`{"type":"ref/prompt","name":"ok-prompt"}`):   true,
		complete(`{"type":"ref/prompt","name":"secret"}`):      false,
		complete(`{"type":"ref/resource","uri":"ok://1"}`):     true,
		complete(`{"type":"ref/resource","uri":"secret://x"}`): false,
		listen(`"ok://1"`):              true,
		listen(`"ok://1","secret://x"`): false,
		listen(``):                      true,
	} {
		n := count()
		res := post(t, base+"/everything/mcp", narrow, body)
		if allow && res.status != 200 {
			t.Errorf("%s: %d %s, want allowed", body, res.status, res.body)
		}
		if !allow && (res.status != http.StatusForbidden || count() != n) {
			t.Errorf("%s: %d %s, want 403 and nothing upstream", body, res.status, res.body)
		}
	}
}

func postQuery(t *testing.T, url string, h http.Header, body string) rpcResult {
	t.Helper()
	return post(t, url, h, body)
}
