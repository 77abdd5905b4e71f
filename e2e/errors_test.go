package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// The gateway's own error answers (JSON-RPC bodies with the right HTTP status, naming
// the server), its Host and Origin checks, and the upstream statuses it must relay
// unchanged.
func TestErrors(t *testing.T) {
	t.Parallel()
	echo := startEchoUpstream(t)
	es := testenv.StartEverythingServer(t, true)
	base, _ := startCaddy(t, `{
	admin {{ADMIN}}
	mcp_registry {
		storage bbolt {{DB}}
		server echo {$ECHO_URL}
		server everything {$ES_URL}
		server off {$ECHO_URL} {
			path switched-off
			disabled
		}
		server dead {$DEAD_URL}
		server hang {$HANG_URL}
	}
}

:{{PORT}} {
	bind 127.0.0.1
	mcp_gateway {
		response_header_timeout 1s
		allowed_origins https://ide.example.com
	}
}
`, map[string]string{
		"ECHO_URL": echo.MCP,
		"ES_URL":   es.URL,
		"DEAD_URL": closedPortURL(t),
		"HANG_URL": startHangUpstream(t),
	})
	c := newHTTPClient(t)
	ping := `{"jsonrpc":"2.0","id":5,"method":"ping"}`

	t.Run("unknown server 404", func(t *testing.T) {
		for _, path := range []string{"/nope/mcp", "/off/mcp", "/everything/sse", "/echo/message"} {
			resp, body := send(t, c, "POST", base+path, mcpHeader("", ""), ping)
			wantRPCError(t, "POST "+path, resp, body, http.StatusNotFound, -32001, "null", `"`+path+`"`)
			gatewayMade(t, path, resp, body)
		}
	})

	t.Run("disabled server 503", func(t *testing.T) {
		n := echo.count()
		for _, m := range []string{"POST", "GET", "DELETE"} {
			resp, body := send(t, c, m, base+"/switched-off/mcp", mcpHeader("", ""), ping)
			wantRPCError(t, m+" to a disabled server", resp, body, http.StatusServiceUnavailable, -32002, "null", `"off"`, "disabled")
		}
		if echo.count() != n {
			t.Errorf("the disabled server's upstream was called")
		}
	})

	t.Run("upstream port closed 502", func(t *testing.T) {
		resp, body := send(t, c, "POST", base+"/dead/mcp", mcpHeader("", ""), ping)
		wantRPCError(t, "POST to a closed port", resp, body, http.StatusBadGateway, -32003, "5", `"dead"`, "unreachable")
		gatewayMade(t, "502", resp, body)
		if strings.Contains(string(body), "127.0.0.1") {
			t.Errorf("the 502 reveals the upstream address: %s", body)
		}
		resp, body = send(t, c, "GET", base+"/dead/mcp", hdr("Accept", "text/event-stream"), "")
		wantRPCError(t, "GET to a closed port", resp, body, http.StatusBadGateway, -32003, "null", `"dead"`)
	})

	t.Run("upstream never answers 504", func(t *testing.T) {
		start := time.Now()
		resp, body := send(t, c, "POST", base+"/hang/mcp", mcpHeader("", ""), `{"jsonrpc":"2.0","id":"slow","method":"tools/list"}`)
		took := time.Since(start)
		wantRPCError(t, "POST to a silent upstream", resp, body, http.StatusGatewayTimeout, -32004, `"slow"`, `"hang"`)
		gatewayMade(t, "504", resp, body)
		if took < time.Second || took > 5*time.Second {
			t.Errorf("504 after %v, want just after response_header_timeout 1s", took)
		}
	})

	t.Run("Host and Origin", func(t *testing.T) {
		n := echo.count()
		for _, host := range []string{"evil.example", "evil.example:80", "127.0.0.1.nip.io"} {
			resp, body := send(t, c, "POST", base+"/echo/mcp", withHeader(mcpHeader("", ""), "Host", host), ping)
			wantRPCError(t, "Host "+host, resp, body, http.StatusForbidden, -32005, "null", host)
			gatewayMade(t, "403", resp, body)
		}
		for _, origin := range []string{"https://evil.example", "http://localhost.evil.example", "null", "https://ide.example.com.evil.example"} {
			resp, body := send(t, c, "POST", base+"/echo/mcp", withHeader(mcpHeader("", ""), "Origin", origin), ping)
			wantRPCError(t, "Origin "+origin, resp, body, http.StatusForbidden, -32005, "null", "origin")
		}
		if echo.count() != n {
			t.Fatalf("a refused request reached the upstream")
		}
		port := strings.TrimPrefix(base, "http://127.0.0.1:")
		for _, h := range []http.Header{
			withHeader(mcpHeader("", ""), "Origin", "https://ide.example.com"), // allowed_origins
			withHeader(mcpHeader("", ""), "Origin", base),                      // same origin
			withHeader(mcpHeader("", ""), "Host", "localhost:"+port),           // loopback names pass
		} {
			resp, body := send(t, c, "POST", base+"/echo/mcp", h, ping)
			if resp.StatusCode != http.StatusOK || string(body) != `{"jsonrpc":"2.0","id":5,"result":{"echo":"ping"}}` {
				t.Errorf("%v: %d %s", h, resp.StatusCode, body)
			}
			if got, want := echo.last(t).Header.Get("Origin"), h.Get("Origin"); got != want {
				t.Errorf("upstream got Origin %q, want %q", got, want)
			}
		}
	})

	t.Run("upstream statuses relayed unchanged", func(t *testing.T) {
		// From the echo upstream: status, body and headers as it made them.
		for _, tc := range []struct {
			method, status, body string
			headers              []string
		}{
			{"POST", "202", "", nil},
			{"POST", "400", `{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"bad params"}}`, []string{"Content-Type: application/json"}},
			{"POST", "404", "session not found", []string{"Content-Type: text/plain; charset=utf-8"}},
			{"GET", "405", "Method Not Allowed", []string{"Allow: POST", "Content-Type: text/plain"}},
			{"POST", "401", `{"error":"unauthorized"}`, []string{`WWW-Authenticate: Bearer resource_metadata="https://upstream.example/.well-known/oauth-protected-resource"`, "Content-Type: application/json"}},
			{"DELETE", "405", "", []string{"Allow: GET, POST"}},
		} {
			h := mcpHeader("", "2025-06-18")
			h.Set("X-Echo-Status", tc.status)
			h.Set("X-Echo-Body", tc.body)
			for _, kv := range tc.headers {
				h.Add("X-Echo-Header", kv)
			}
			reqBody := ""
			if tc.method == "POST" {
				reqBody = ping
			}
			via, vbody := send(t, c, tc.method, base+"/echo/mcp", h, reqBody)
			direct, dbody := send(t, c, tc.method, echo.MCP, h, reqBody)
			what := tc.method + " → " + tc.status
			if via.Status != direct.Status || string(vbody) != string(dbody) || string(vbody) != tc.body {
				t.Errorf("%s: via gateway %q %q, directly %q %q", what, via.Status, vbody, direct.Status, dbody)
			}
			for _, name := range []string{"Content-Type", "Allow", "WWW-Authenticate", "Cache-Control"} {
				if g, d := via.Header.Values(name), direct.Header.Values(name); strings.Join(g, "|") != strings.Join(d, "|") {
					t.Errorf("%s: %s via gateway %q, directly %q", what, name, g, d)
				}
			}
		}

		// From the everything-server: the notification's 202 and the 400 for a POST
		// that does not accept SSE, each in a session of its own (the gateway's client
		// sees a sealed id, the direct client the upstream's).
		sid, _ := initSession(t, c, base+"/everything/mcp", "2025-11-25")
		directSid, _ := initSession(t, c, es.URL, "2025-11-25")
		for _, tc := range []struct {
			name, method string
			h            func(sid string) http.Header
			body         string
			status       int
		}{
			{"notification", "POST", func(sid string) http.Header { return mcpHeader(sid, "2025-11-25") }, `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`, http.StatusAccepted},
			{"Accept without SSE", "POST", func(sid string) http.Header {
				return withHeader(mcpHeader(sid, "2025-11-25"), "Accept", "application/json")
			}, ping, http.StatusBadRequest},
		} {
			via, vbody := send(t, c, tc.method, base+"/everything/mcp", tc.h(sid), tc.body)
			direct, dbody := send(t, c, tc.method, es.URL, tc.h(directSid), tc.body)
			if via.StatusCode != tc.status || direct.StatusCode != tc.status || string(vbody) != string(dbody) {
				t.Errorf("%s: via gateway %d %q, directly %d %q; want %d", tc.name, via.StatusCode, vbody, direct.StatusCode, dbody, tc.status)
			}
			for _, name := range []string{"Content-Type", "Allow", "Content-Length"} {
				if g, d := via.Header.Get(name), direct.Header.Get(name); g != d {
					t.Errorf("%s: %s via gateway %q, directly %q", tc.name, name, g, d)
				}
			}
		}
		// An unknown (or another caller's) session and a method the transport does not
		// define are the gateway's own answers: nothing reaches the upstream.
		resp, body := send(t, c, "POST", base+"/everything/mcp", mcpHeader("NO-SUCH-SESSION", "2025-11-25"), ping)
		wantRPCError(t, "unknown session", resp, body, http.StatusNotFound, -32014, "null", "unknown MCP session")
		resp, body = send(t, c, "PUT", base+"/everything/mcp", mcpHeader(sid, "2025-11-25"), ping)
		wantRPCError(t, "PUT", resp, body, http.StatusMethodNotAllowed, -32015, "null", `"PUT"`)
		if got := resp.Header.Get("Allow"); got != "GET, POST, DELETE" {
			t.Errorf("PUT: Allow %q", got)
		}
	})
}

func withHeader(h http.Header, name, value string) http.Header {
	h = h.Clone()
	h.Set(name, value)
	return h
}
