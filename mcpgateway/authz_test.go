package mcpgateway

import (
	"net/http"
	"strings"
	"testing"
)

// TestClientResponsesAuthorized: a JSON-RPC response (the answer to a server's
// sampling, elicitation or roots request) is a message to the server like any other.
// A caller with no rule on a server cannot send one there; a caller with some rule can.
func TestClientResponsesAuthorized(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	up := startRecordingUpstream(t)
	base := authCaddy(t, up, testAuthConfig(t, good, down))
	readers := bearer(testAPIKey) // servers/readonly: rules on "everything" only
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":"srv-1","result":{"action":"accept","content":{"approve":true}}}`,
		`{"jsonrpc":"2.0","id":"srv-2","error":{"code":-1,"message":"no"}}`,
		`[{"jsonrpc":"2.0","id":"srv-3","result":{}}]`,
	} {
		before := up.count()
		res := post(t, base+"/github/mcp", readers, body)
		if res.status != http.StatusForbidden || !strings.Contains(res.body, `"error"`) {
			t.Errorf("response %s to a server without a rule: %d %s, want 403 with a JSON-RPC error", body, res.status, res.body)
		}
		if up.count() != before {
			t.Errorf("response %s reached the upstream", body)
		}
		if res := post(t, base+"/everything/mcp", readers, body); res.status/100 != 2 {
			t.Errorf("response %s to a server with a rule: %d %s", body, res.status, res.body)
		}
	}
}

// TestHousekeepingForAnyRuleHolder: the Inspector sends logging/setLevel right after
// initialize; a policy that lists only a tool must not break the client there. Denials
// carry a step-up challenge only when some scope would cure them.
func TestHousekeepingForAnyRuleHolder(t *testing.T) {
	good, down := startIssuer(t, false), startIssuer(t, true)
	up := startRecordingUpstream(t)
	cfg := testAuthConfig(t, good, down)
	base := authCaddy(t, up, cfg)
	readers := bearer(testAPIKey)
	setLevel := `{"jsonrpc":"2.0","id":5,"method":"logging/setLevel","params":{"level":"debug"}}`
	for _, body := range []string{
		setLevel,
		`{"jsonrpc":"2.0","id":6,"method":"ping"}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","method":"notifications/message","params":{}}`,
		`{"jsonrpc":"2.0","id":7,"method":"server/discover","params":{}}`,
	} {
		if res := post(t, base+"/everything/mcp", readers, body); res.status/100 != 2 {
			t.Errorf("%s by a caller with rules on the server: %d %s", body, res.status, res.body)
		}
		// Nothing on a server the caller has no rule for; and no scope lists
		// logging/setLevel, so no step-up challenge either.
		res := post(t, base+"/github/mcp", readers, body)
		if res.status != http.StatusForbidden {
			t.Errorf("%s on a server without a rule: %d", body, res.status)
		}
	}
	res := post(t, base+"/github/mcp", readers, setLevel)
	if h := res.header.Get("WWW-Authenticate"); h != "" {
		t.Errorf("a denial no scope cures carries a challenge: %q", h)
	}
	if !strings.Contains(res.body, "logging/setLevel") {
		t.Errorf("denial does not name the method: %s", res.body)
	}
	// A tool some scope allows: the challenge names that scope.
	res = post(t, base+"/everything/mcp", readers, call(8, "tools/call", "delete_repo"))
	if h := res.header.Get("WWW-Authenticate"); res.status != 403 || !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, `scope="servers/all"`) {
		t.Errorf("curable denial: %d %q", res.status, h)
	}
	if !strings.Contains(res.body, "delete_repo") {
		t.Errorf("denial does not name the tool: %s", res.body)
	}
	// A tool no scope allows: a JSON-RPC error naming it, no challenge, no scope="".
	res = post(t, base+"/everything/mcp", readers, call(9, "tools/call", "no-such-tool-anywhere"))
	if res.status != 403 || strings.Contains(res.header.Get("WWW-Authenticate"), `scope=""`) || !strings.Contains(res.body, "no-such-tool-anywhere") {
		t.Errorf("incurable tool denial: %d %q %s", res.status, res.header.Get("WWW-Authenticate"), res.body)
	}

	// Strict mode: housekeeping must be granted like anything else.
	cfg["strict"] = true
	up2 := startRecordingUpstream(t)
	base = authCaddy(t, up2, cfg)
	if res := post(t, base+"/everything/mcp", readers, setLevel); res.status != http.StatusForbidden {
		t.Errorf("strict: logging/setLevel not granted but %d", res.status)
	}
	if res := post(t, base+"/everything/mcp", readers, `{"jsonrpc":"2.0","id":6,"method":"ping"}`); res.status != 200 {
		t.Errorf("strict: granted ping: %d %s", res.status, res.body)
	}
}
