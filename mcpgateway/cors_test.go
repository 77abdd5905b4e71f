package mcpgateway

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// A browser client of an allowed origin gets its CORS preflight answered by the
// gateway: the endpoint's methods, the MCP request headers it asked for and no others,
// and nothing reaches the upstream. Other origins, and OPTIONS that is no preflight,
// are refused.
func TestCORSPreflight(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(up.Close)
	base := (&testCaddy{
		Servers: []any{map[string]any{"name": "everything", "upstream": up.URL + "/mcp"}},
		Gateway: map[string]any{"allowed_origins": []string{"http://app.example"}},
	}).start(t)
	preflight := func(origin, method, headers string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, base+"/everything/mcp", nil)
		req.Header.Set("Origin", origin)
		if method != "" {
			req.Header.Set("Access-Control-Request-Method", method)
		}
		if headers != "" {
			req.Header.Set("Access-Control-Request-Headers", headers)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp := preflight("http://app.example", "POST", "authorization, content-type, mcp-protocol-version, Mcp-Param-Region, x-evil, cookie")
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "http://app.example" ||
		h.Get("Access-Control-Allow-Methods") != "GET, POST, DELETE" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	if got := h.Get("Access-Control-Allow-Headers"); got != "authorization, content-type, mcp-protocol-version, Mcp-Param-Region" {
		t.Errorf("allowed headers %q: want the MCP ones only", got)
	}
	if resp := preflight("http://evil.example", "POST", "authorization"); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := preflight("http://app.example", "", ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("OPTIONS that is no preflight: %d", resp.StatusCode)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the upstream saw %d requests", n)
	}
}
