package mcpgateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/caddymcp/caddymcp/mcpregistry/registryapi"
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

// credentialLogFilter is the access-log encoder production.Caddyfile puts on its access
// log. The gateway no longer needs it, but an operator's filter must keep working on
// the entries the gateway writes. The Caddyfile form:
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

// accessLogSetup is one way an operator configures the access log.
type accessLogSetup struct {
	name           string
	filter         bool // the operator's own filter (credentialLogFilter)
	named          bool // the host mapped to a named logger (a site's `log` directive)
	logCredentials bool // the server's log_credentials
	skip           bool // log_skip set by a handler before the gateway
}

// Caddy's own access entry shows X-API-Key and the composite mode's X-Authorization in
// clear (it redacts only Authorization, Cookie and Proxy-Authorization). The gateway and
// the registry API write such requests' entries themselves, redacted, accepted
// credential or not, with or without the operator's filter, to the loggers Caddy would
// use and in Caddy's shape; log_credentials and log_skip keep their meaning.
func TestAccessLogCredentials(t *testing.T) {
	for _, setup := range []accessLogSetup{
		{name: "plain"},
		{name: "named logger", named: true},
		{name: "operator filter", filter: true},
		{name: "log_credentials", logCredentials: true},
		{name: "log_skip", skip: true},
	} {
		t.Run(setup.name, func(t *testing.T) {
			entries, statuses := accessLogAfterCredentials(t, setup)
			if setup.skip {
				if len(entries) != 1 {
					t.Fatalf("log_skip: %d entries written, want only the last request's: %v", len(entries), entries)
				}
				return
			}
			if len(entries) != len(statuses) {
				t.Fatalf("%d entries for %d requests: %v", len(entries), len(statuses), entries)
			}
			var caddyOwn map[string]any // the request without a credential header
			for i, e := range entries {
				raw, _ := json.Marshal(e)
				for _, secret := range []string{testAPIKey, "eyJ", "upstream-secret"} {
					if !setup.logCredentials && strings.Contains(string(raw), secret) {
						t.Errorf("entry %d holds %q: %s", i, secret, raw)
					}
				}
				// The operator asked for credentials: Caddy's own entry, in clear.
				if setup.logCredentials && i == 0 && !strings.Contains(string(raw), testAPIKey) {
					t.Errorf("log_credentials: entry 0 lacks the key: %s", raw)
				}
				if got := int(e["status"].(float64)); got != statuses[i] {
					t.Errorf("entry %d: status %d, the response was %d", i, got, statuses[i])
				}
				if i == 5 {
					caddyOwn = e
				}
			}
			want := `"X-Api-Key":["REDACTED"]`
			if setup.filter {
				want = `"X-Api-Key":"REDACTED"`
			}
			if raw, _ := json.Marshal(entries[0]); !setup.logCredentials && !strings.Contains(string(raw), want) {
				t.Errorf("entry 0 does not mark the key: %s", raw)
			}
			// The taken-over entries have Caddy's fields, and the body's length.
			for i, e := range entries[:5] {
				if d := keyDiff(e, caddyOwn); d != "" {
					t.Errorf("entry %d's fields differ from Caddy's: %s", i, d)
				}
				if d := keyDiff(e["request"].(map[string]any), caddyOwn["request"].(map[string]any)); d != "" {
					t.Errorf("entry %d's request differs from Caddy's: %s", i, d)
				}
				if e["size"].(float64) <= 0 {
					t.Errorf("entry %d: size %v", i, e["size"])
				}
			}
			if got := entries[0]["bytes_read"].(float64); got != float64(len(call(1, "ping", ""))) {
				t.Errorf("bytes_read %v", got)
			}
		})
	}
}

// keyDiff names the keys one of a and b has and the other lacks.
func keyDiff(a, b map[string]any) string {
	var d []string
	for k := range a {
		if _, ok := b[k]; !ok {
			d = append(d, "+"+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "-"+k)
		}
	}
	slices.Sort(d)
	return strings.Join(d, " ")
}

// accessLogAfterCredentials sends an accepted and a refused credential of each kind
// through a gateway, one API key to the registry API, then a request with no credential
// header, and returns the access log's entries and the responses' statuses in order.
func accessLogAfterCredentials(t *testing.T, setup accessLogSetup) ([]map[string]any, []int) {
	up := startRecordingUpstream(t)
	is := startIssuer(t, false)
	dir := t.TempDir()
	accessLog := filepath.Join(dir, "access.log")
	sum := sha256.Sum256([]byte(testAPIKey))
	auth := map[string]any{
		"issuers":  []any{map[string]any{"issuer": is.url, "jwks_url": is.url + "/jwks"}},
		"resource": testResource,
		"api_keys": []any{map[string]any{"sha256": hex.EncodeToString(sum[:]), "groups": []string{"g"}}},
		"policy": map[string]any{
			"group_mappings": map[string]any{"g": []string{"all"}},
			"scopes":         map[string]any{"all": []any{map[string]any{"server": "*", "methods": []string{"*"}}}},
		},
	}
	logs := map[string]any{}
	logger := "http.log.access"
	if setup.named {
		logs["logger_names"] = map[string]any{"127.0.0.1": []string{"mcp"}}
		logger = "http.log.access.mcp"
	}
	if setup.logCredentials {
		logs["should_log_credentials"] = true
	}
	c := &testCaddy{
		Dir:      dir,
		LogFiles: map[string]string{logger: accessLog},
		Server:   map[string]any{"logs": logs},
		Servers: []any{
			map[string]any{"name": "plain", "upstream": up.srv.URL + "/json/mcp"},
			map[string]any{"name": "comp", "upstream": up.srv.URL + "/json/mcp", "gateway_token_header": "X-Authorization"},
		},
		Gateway: map[string]any{"auth": auth},
		Routes: []any{map[string]any{
			"match":  []any{map[string]any{"path": []string{"/api/*"}}},
			"handle": []any{map[string]any{"handler": "mcp_registry_api", "auth": auth}},
		}},
	}
	if setup.filter {
		c.LogEncoders = map[string]any{logger: credentialLogFilter}
	}
	if setup.skip {
		c.Routes = append([]any{map[string]any{
			"match":  []any{map[string]any{"header": map[string]any{"X-Skip": []string{"1"}}}},
			"handle": []any{map[string]any{"handler": "vars", "log_skip": true}},
		}}, c.Routes...)
	}
	base := c.start(t)
	tok := is.token(t, testResource, "g")
	requests := []struct {
		method, url string
		h           http.Header
	}{
		{"POST", base + "/plain/mcp", http.Header{"X-Api-Key": {testAPIKey}}},
		{"POST", base + "/plain/mcp", http.Header{"X-Api-Key": {"wrong-" + testAPIKey}}},
		{"POST", base + "/comp/mcp", http.Header{"X-Authorization": {"Bearer " + tok}, "Authorization": {"Bearer upstream-secret"}}},
		{"POST", base + "/comp/mcp", http.Header{"X-Authorization": {"Bearer " + testAPIKey}}},
		{"GET", base + "/api/servers", http.Header{"X-Api-Key": {testAPIKey}}},
		{"POST", base + "/plain/mcp", http.Header{}},
	}
	if setup.skip {
		for _, r := range requests {
			r.h.Set("X-Skip", "1")
		}
		// One request logged after the skipped ones: once it is in, they would be.
		requests = append(requests, requests[len(requests)-1])
		requests[len(requests)-1].h = http.Header{}
	}
	var statuses []int
	for i, tc := range requests {
		tc.h.Set("X-Seq", strconv.Itoa(i))
		req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(call(1, "ping", "")))
		if tc.method == "GET" {
			req, err = http.NewRequest(tc.method, tc.url, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		req.Header = tc.h
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	if setup.skip {
		statuses = statuses[len(statuses)-1:]
	}
	var entries []map[string]any
	waitFor(t, "the access log's entries", func() bool {
		entries = nil
		b, _ := os.ReadFile(accessLog)
		for line := range strings.Lines(string(b)) {
			var e map[string]any
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("access log line: %v: %s", err, line)
			}
			entries = append(entries, e)
		}
		return len(entries) >= len(statuses)
	})
	// In request order: each entry is written as its handler ends, which may be just
	// after the client has its response.
	seq := func(e map[string]any) string {
		h, _ := e["request"].(map[string]any)["headers"].(map[string]any)
		v, _ := h["X-Seq"].([]any)
		if len(v) != 1 {
			return ""
		}
		return fmt.Sprint(v[0])
	}
	slices.SortFunc(entries, func(a, b map[string]any) int { return strings.Compare(seq(a), seq(b)) })
	return entries, statuses
}
