package mcpgateway

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"testing"
	"time"
)

func getOnce(t *testing.T, url string, h http.Header) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range h {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestOutboundCredentialsIdentityComposite(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	up := startRecordingUpstream(t)
	t.Setenv("MCP_TEST_BACKEND_TOKEN", "up-secret-token")
	u := up.srv.URL + "/json/mcp"
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("MCP_TEST_REGISTRY_KEY", base64.StdEncoding.EncodeToString(key))
	base := (&testCaddy{
		Registry: map[string]any{"encryption_key": "{env.MCP_TEST_REGISTRY_KEY}"},
		Gateway:  map[string]any{"auth": testAuthConfig(t, good, down)},
		Servers: []any{
			map[string]any{"name": "cred", "upstream": u, "backend_credential": "{env.MCP_TEST_BACKEND_TOKEN}",
				"backend_headers": map[string]string{"X-Extra": "extra-1"}, "forward_identity": map[string]any{}},
			map[string]any{"name": "keyed", "upstream": u, "backend_auth": map[string]any{"scheme": "api_key", "header": "X-Upstream-Key"},
				"backend_credential": "k-42", "forward_identity": map[string]any{"user_header": "X-User", "groups_header": "X-Roles"}},
			map[string]any{"name": "composite", "upstream": u, "gateway_token_header": "x-authorization"},
			map[string]any{"name": "compcred", "upstream": u, "gateway_token_header": "x-authorization", "backend_credential": "{env.MCP_TEST_BACKEND_TOKEN}"},
			map[string]any{"name": "plain", "upstream": u},
		},
	}).start(t)
	tok := func(server string) string {
		return good.token(t, testResource+"/"+server+"/mcp", "platform-admins", "bad,group", "evil\r\nX-Injected: 1", "ops")
	}
	spoof := http.Header{"X-Mcp-User": {"mallory"}, "X-Mcp-Groups": {"platform-admins"}, "X-Extra": {"client"}}
	with := func(h http.Header, more http.Header) http.Header {
		out := h.Clone()
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	initReq := call(1, "initialize", "")

	// bearer credential + extra header + identity, on a POST and on a GET stream
	if res := post(t, base+"/cred/mcp", with(bearer(tok("cred")), spoof), initReq); res.status != http.StatusOK {
		t.Fatalf("cred POST: %d %s", res.status, res.body)
	}
	postReq := up.last(t)
	if st := getOnce(t, base+"/cred/mcp", with(bearer(tok("cred")), spoof)); st == http.StatusUnauthorized || st == http.StatusForbidden {
		t.Fatalf("cred GET: %d", st)
	}
	getReq := up.last(t)
	if getReq.method != http.MethodGet {
		t.Fatalf("the GET did not reach the upstream: %+v", getReq)
	}
	if getReq.header.Get("Connection") != "close" {
		t.Errorf("the GET did not take the hijacked stream path (Connection %q)", getReq.header.Get("Connection"))
	}
	for _, r := range []recorded{postReq, getReq} {
		h := r.header
		if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer up-secret-token" {
			t.Errorf("%s: Authorization %q, want the backend credential", r.method, got)
		}
		if h.Get("X-Extra") != "extra-1" || len(h.Values("X-Extra")) != 1 {
			t.Errorf("%s: X-Extra %q", r.method, h.Values("X-Extra"))
		}
		if h.Get("X-Mcp-User") != "alice" || h.Get("X-Mcp-Groups") != "platform-admins,ops" {
			t.Errorf("%s: identity %q %q", r.method, h.Get("X-Mcp-User"), h.Get("X-Mcp-Groups"))
		}
		if h.Get("X-Injected") != "" {
			t.Errorf("%s: header injection through a group name", r.method)
		}
	}

	// api_key credential in a custom header, custom identity header names
	post(t, base+"/keyed/mcp", with(bearer(tok("keyed")), spoof), initReq)
	h := up.last(t).header
	if h.Get("X-Upstream-Key") != "k-42" || h.Get("Authorization") != "" || h.Get("X-User") != "alice" || h.Get("X-Roles") != "platform-admins,ops" {
		t.Errorf("keyed: %v", h)
	}
	if h.Get("X-Mcp-User") != "" || h.Get("X-Mcp-Groups") != "" {
		t.Errorf("keyed: client-sent default identity headers passed: %v", h)
	}

	// composite: gateway token in X-Authorization, the client's Authorization passes
	res := post(t, base+"/composite/mcp", http.Header{"X-Authorization": {"Bearer " + tok("composite")}, "Authorization": {"Bearer client-own"}}, initReq)
	if res.status != http.StatusOK {
		t.Fatalf("composite: %d %s", res.status, res.body)
	}
	h = up.last(t).header
	if h.Get("Authorization") != "Bearer client-own" || h.Get("X-Authorization") != "" {
		t.Errorf("composite: Authorization %q, X-Authorization %q", h.Get("Authorization"), h.Get("X-Authorization"))
	}
	// the gateway token in Authorization is not looked at for a composite server
	before := up.count()
	if res := post(t, base+"/composite/mcp", bearer(tok("composite")), initReq); res.status != http.StatusUnauthorized || up.count() != before {
		t.Errorf("composite with the token in Authorization: %d", res.status)
	}
	// a configured bearer credential wins over the client's Authorization
	post(t, base+"/compcred/mcp", http.Header{"X-Authorization": {"Bearer " + tok("compcred")}, "Authorization": {"Bearer client-own"}}, initReq)
	if got := up.last(t).header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer up-secret-token" {
		t.Errorf("compcred: Authorization %q", got)
	}

	// not opted in: no identity, client copies removed, gateway token removed
	post(t, base+"/plain/mcp", with(bearer(tok("plain")), spoof), initReq)
	h = up.last(t).header
	if h.Get("X-Mcp-User") != "" || h.Get("X-Mcp-Groups") != "" || h.Get("Authorization") != "" || h.Get("X-Extra") != "client" {
		t.Errorf("plain: %v", h)
	}
}

func TestJoinGroups(t *testing.T) {
	if got := joinGroups([]string{"a", "", "b,c", "d\ne", "f\x00", "g h", "Ω"}); got != "a,g h,Ω" {
		t.Fatalf("%q", got)
	}
}
