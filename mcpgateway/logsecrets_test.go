package mcpgateway

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A batch with tools/call is audited with each call's method, id and tool: one entry
// for the request, listing its calls.
func TestAuditBatchListsCalls(t *testing.T) {
	dir := t.TempDir()
	auditLog := filepath.Join(dir, "audit.log")
	base := auditCaddy(t, dir, auditUpstream(t), auditLog).start(t)
	batch := `[{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{}}},` +
		`{"jsonrpc":"2.0","id":"b","method":"initialize"},{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"echo"}}]`
	if r := post(t, base+"/everything/mcp", bearer(testAPIKey), batch); r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	var entries []map[string]any
	waitFor(t, "the audit entry", func() bool { entries = readAuditLog(t, auditLog); return len(entries) == 1 })
	calls, _ := entries[0]["calls"].([]any)
	want := []map[string]any{
		{"method": "tools/call", "id": "21", "tool": "echo"},
		{"method": "initialize", "id": `"b"`},
		{"method": "tools/call", "id": "23", "tool": "echo"},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls = %v", entries[0]["calls"])
	}
	for i, w := range want {
		got, _ := calls[i].(map[string]any)
		if len(got) != len(w) {
			t.Errorf("call %d = %v, want %v", i, got, w)
		}
		for k, v := range w {
			if got[k] != v {
				t.Errorf("call %d %s = %v, want %v", i, k, got[k], v)
			}
		}
	}
}

// CredentialLogFilter is the access-log encoder an operator puts on every Caddy log that
// includes http.log.access when the gateway runs: Caddy copies the request for its
// access log before any handler runs and redacts only Authorization, Cookie, Set-Cookie
// and Proxy-Authorization, so the gateway cannot take X-Api-Key or the composite mode's
// X-Authorization out of it itself. The Caddyfile form:
//
//	log {
//		format filter {
//			wrap json
//			fields {
//				request>headers>X-Api-Key replace REDACTED
//				request>headers>X-Authorization replace REDACTED
//			}
//		}
//	}
var credentialLogFilter = map[string]any{
	"format": "filter",
	"wrap":   map[string]any{"format": "json"},
	"fields": map[string]any{
		"request>headers>X-Api-Key":       map[string]any{"filter": "replace", "value": "REDACTED"},
		"request>headers>X-Authorization": map[string]any{"filter": "replace", "value": "REDACTED"},
	},
}

// Caddy's access log shows the gateway's credential headers in clear (the finding),
// and the documented filter takes every one of them out, for API keys and the
// composite mode, accepted or not.
func TestAccessLogCredentials(t *testing.T) {
	for _, filtered := range []bool{false, true} {
		log := accessLogAfterCredentials(t, filtered)
		for _, secret := range []string{testAPIKey, "eyJ"} {
			if strings.Contains(log, secret) != !filtered {
				t.Errorf("filtered %v: the access log holds %q: %v", filtered, secret, !filtered)
			}
		}
		// The upstream's own Authorization (composite mode) is Caddy-redacted either way.
		if strings.Contains(log, "upstream-secret") {
			t.Errorf("filtered %v: the access log holds the upstream's credential", filtered)
		}
		if filtered && (!strings.Contains(log, `"X-Api-Key":"REDACTED"`) || !strings.Contains(log, `"X-Authorization":"REDACTED"`)) {
			t.Errorf("credential headers not marked REDACTED:\n%s", log)
		}
	}
}

// accessLogAfterCredentials sends an accepted and a refused credential of each kind
// through a gateway with an access log (filtered or not) and returns the log.
func accessLogAfterCredentials(t *testing.T, filtered bool) string {
	up := startRecordingUpstream(t)
	is := startIssuer(t, false)
	dir := t.TempDir()
	accessLog := filepath.Join(dir, "access.log")
	sum := sha256.Sum256([]byte(testAPIKey))
	c := &testCaddy{
		Dir:      dir,
		LogFiles: map[string]string{"http.log.access": accessLog},
		Server:   map[string]any{"logs": map[string]any{}},
		Servers: []any{
			map[string]any{"name": "plain", "upstream": up.srv.URL + "/json/mcp"},
			map[string]any{"name": "comp", "upstream": up.srv.URL + "/json/mcp", "gateway_token_header": "X-Authorization"},
		},
		Gateway: map[string]any{"auth": map[string]any{
			"issuers":  []any{map[string]any{"issuer": is.url, "jwks_url": is.url + "/jwks"}},
			"resource": testResource,
			"api_keys": []any{map[string]any{"sha256": hex.EncodeToString(sum[:]), "groups": []string{"g"}}},
			"policy": map[string]any{
				"group_mappings": map[string]any{"g": []string{"all"}},
				"scopes":         map[string]any{"all": []any{map[string]any{"server": "*", "methods": []string{"*"}}}},
			},
		}},
	}
	if filtered {
		c.LogEncoders = map[string]any{"http.log.access": credentialLogFilter}
	}
	base := c.start(t)
	tok := is.token(t, testResource, "g")
	for _, tc := range []struct {
		url string
		h   map[string][]string
	}{
		{base + "/plain/mcp", map[string][]string{"X-Api-Key": {testAPIKey}}},
		{base + "/plain/mcp", map[string][]string{"X-Api-Key": {"wrong-" + testAPIKey}}},
		{base + "/comp/mcp", map[string][]string{"X-Authorization": {"Bearer " + tok}, "Authorization": {"Bearer upstream-secret"}}},
		{base + "/comp/mcp", map[string][]string{"X-Authorization": {"Bearer " + testAPIKey}}},
	} {
		post(t, tc.url, tc.h, call(1, "ping", ""))
	}
	var log string
	waitFor(t, "four access log entries", func() bool {
		b, _ := os.ReadFile(accessLog)
		log = string(b)
		return strings.Count(log, "handled request") == 4
	})
	return log
}
