package jsonrpc

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func inspect(t *testing.T, body string) *Inspection {
	t.Helper()
	var in Inspection
	if err := Inspect([]byte(body), &in); err != nil {
		t.Fatalf("Inspect(%s): %v", body, err)
	}
	return &in
}

const meta26 = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`

func TestCheckHeaders(t *testing.T) {
	const v26 = "2026-07-28"
	toolsCall := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{},` + meta26 + `}}`
	read := `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///projects/myapp/config.json",` + meta26 + `}}`
	prompt := `{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"Grüße",` + meta26 + `}}`
	list := `{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{` + meta26 + `}}`
	discover := `{"jsonrpc":"2.0","id":5,"method":"server/discover","params":{` + meta26 + `}}`
	subscribe := `{"jsonrpc":"2.0","id":6,"method":"resources/subscribe","params":{"uri":"file:///a",` + meta26 + `}}`
	noMeta := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_weather"}}`
	notif := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`
	resp := `{"jsonrpc":"2.0","id":1,"result":{}}`
	legacyCall := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}`
	batch := `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`
	oldMeta := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`
	b64 := func(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }

	tests := []struct {
		name               string
		body               string
		pv, method, mcpNam string
		code               int    // 0: want nil
		contains           string // substring of the error message
	}{
		{"tools/call match", toolsCall, v26, "tools/call", "get_weather", 0, ""},
		{"resources/read match", read, v26, "resources/read", "file:///projects/myapp/config.json", 0, ""},
		{"prompts/get base64", prompt, v26, "prompts/get", b64("Grüße"), 0, ""},
		{"prompts/get base64 unpadded", prompt, v26, "prompts/get", "=?base64?" + base64.RawStdEncoding.EncodeToString([]byte("Grüße")) + "?=", 0, ""},
		{"prompts/get raw utf8 (go-sdk client)", prompt, v26, "prompts/get", "Grüße", 0, ""},
		{"tools/list", list, v26, "tools/list", "", 0, ""},
		{"tools/list ignores Mcp-Name", list, v26, "tools/list", "whatever", 0, ""},
		{"server/discover", discover, v26, "server/discover", "", 0, ""},
		{"subscribe without name", subscribe, v26, "resources/subscribe", "", 0, ""},
		{"subscribe name match", subscribe, v26, "resources/subscribe", "file:///a", 0, ""},
		{"whitespace trimmed", toolsCall, " 2026-07-28\t", "  tools/call ", "\tget_weather  ", 0, ""},
		{"newer version applies rules", strings.ReplaceAll(list, v26, "2027-01-01"), "2027-01-01", "", "", CodeHeaderMismatch, "Mcp-Method header is required"},
		{"no _meta passes", noMeta, v26, "tools/call", "get_weather", 0, ""},

		{"method mismatch", toolsCall, v26, "prompts/get", "get_weather", CodeHeaderMismatch, "Mcp-Method header value 'prompts/get' does not match body value 'tools/call'"},
		{"method case mismatch", toolsCall, v26, "TOOLS/CALL", "get_weather", CodeHeaderMismatch, "does not match"},
		{"method missing", toolsCall, v26, "", "get_weather", CodeHeaderMismatch, "Mcp-Method header is required"},
		{"name mismatch", toolsCall, v26, "tools/call", "wrong_tool", CodeHeaderMismatch, "Mcp-Name header value 'wrong_tool' does not match body value 'get_weather'"},
		{"name missing tools/call", toolsCall, v26, "tools/call", "", CodeHeaderMismatch, "Mcp-Name header is required for tools/call"},
		{"name missing resources/read", read, v26, "resources/read", "", CodeHeaderMismatch, "Mcp-Name header is required"},
		{"name missing prompts/get", prompt, v26, "prompts/get", "", CodeHeaderMismatch, "Mcp-Name header is required"},
		{"uri mismatch", read, v26, "resources/read", "file:///wrong.txt", CodeHeaderMismatch, "does not match"},
		{"subscribe name mismatch", subscribe, v26, "resources/subscribe", "file:///b", CodeHeaderMismatch, "does not match"},
		{"base64 mismatch", prompt, v26, "prompts/get", b64("other"), CodeHeaderMismatch, "does not match"},
		{"base64 invalid", prompt, v26, "prompts/get", "=?base64?!!!?=", CodeHeaderMismatch, "invalid base64"},
		{"name control char", toolsCall, v26, "tools/call", "get\x01weather", CodeHeaderMismatch, "invalid characters"},
		{"version mismatch", toolsCall, "2026-07-29", "tools/call", "get_weather", CodeHeaderMismatch, "MCP-Protocol-Version header value '2026-07-29' does not match"},
		{"version header missing with _meta", toolsCall, "", "tools/call", "get_weather", CodeHeaderMismatch, "MCP-Protocol-Version header is required"},
		{"older header with 2026 _meta", toolsCall, "2025-06-18", "tools/call", "get_weather", CodeHeaderMismatch, "does not match"},
		{"batch", batch, v26, "ping", "", CodeInvalidRequest, "batches"},
		{"notification without Mcp-Method", notif, v26, "", "", 0, ""},
		{"notification with matching Mcp-Method", notif, v26, "notifications/cancelled", "", 0, ""},
		{"notification with wrong Mcp-Method", notif, v26, "notifications/progress", "", CodeHeaderMismatch, "does not match"},
		{"response without Mcp-Method", resp, v26, "", "", 0, ""},
		{"response with Mcp-Method", resp, v26, "tools/call", "", CodeHeaderMismatch, "not a request"},

		// Older protocols and an absent header: the 2026-07-28 rules do not apply.
		{"absent header legacy", legacyCall, "", "", "", 0, ""},
		// Older protocols require nothing, but headers a client sends must agree with
		// the body: an upstream may route by them.
		{"2025-06-18 method mismatch", legacyCall, "2025-06-18", "prompts/get", "", CodeHeaderMismatch, "Mcp-Method"},
		{"2025-06-18 name mismatch", legacyCall, "2025-06-18", "", "delete_repo", CodeHeaderMismatch, "Mcp-Name"},
		{"absent version name mismatch", legacyCall, "", "tools/call", "delete_repo", CodeHeaderMismatch, "Mcp-Name"},
		{"2025-11-25 matching headers", legacyCall, "2025-11-25", "tools/call", "get_weather", 0, ""},
		{"2025-06-18 name only", legacyCall, "2025-06-18", "", "get_weather", 0, ""},
		{"2025-03-26 batch with a name", batch, "2025-03-26", "", "x", CodeHeaderMismatch, "batch"},
		{"2025-11-25", legacyCall, "2025-11-25", "", "", 0, ""},
		{"2025-03-26 batch", batch, "2025-03-26", "", "", 0, ""},
		{"absent header batch", batch, "", "", "", 0, ""},
		{"legacy _meta agreeing", oldMeta, "2025-11-25", "", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := inspect(t, tt.body)
			err := CheckHeaders(tt.pv, tt.method, tt.mcpNam, in)
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("CheckHeaders = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("CheckHeaders = %v, want *Error %d", err, tt.code)
			}
			if e.Code != tt.code || !strings.Contains(e.Message, tt.contains) {
				t.Fatalf("CheckHeaders = %d %q, want %d containing %q", e.Code, e.Message, tt.code, tt.contains)
			}
		})
	}
}

func TestCheckHeadersTruncatesValues(t *testing.T) {
	in := inspect(t, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+strings.Repeat("n", 5000)+`"}}`)
	err := CheckHeaders("2026-07-28", "tools/call", strings.Repeat("é", 3000), in)
	if err == nil {
		t.Fatal("want mismatch")
	}
	if msg := err.(*Error).Message; len(msg) > 600 || !strings.Contains(msg, "...") {
		t.Fatalf("message not truncated (%d bytes): %.100q", len(msg), msg)
	}
	err = CheckHeaders("2026-07-28", "tools/call", strings.Repeat("x", 200), in)
	if msg := err.(*Error).Message; len(msg) > 400 {
		t.Fatalf("message not truncated (%d bytes)", len(msg))
	}
}

func TestRequiresNameHeader(t *testing.T) {
	for m, want := range map[string]bool{"tools/call": true, "resources/read": true, "prompts/get": true,
		"tools/list": false, "resources/subscribe": false, "": false} {
		if RequiresNameHeader(m) != want {
			t.Errorf("RequiresNameHeader(%q) = %v", m, !want)
		}
	}
}

func TestAppendErrorResponse(t *testing.T) {
	tests := []struct {
		id, message, want string
	}{
		{"1", "boom", `{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"boom"}}`},
		{`"abc"`, `say "hi"\`, `{"jsonrpc":"2.0","id":"abc","error":{"code":-32020,"message":"say \"hi\"\\"}}`},
		{"", "x", `{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"x"}}`},
		{"null", "x", `{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"x"}}`},
		{"{}", "x", `{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"x"}}`},
		{`"unterminated`, "x", `{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"x"}}`},
		{`1,"x":2`, "x", `{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"x"}}`},
		{"-1.5e3", "<script>&</script>", `{"jsonrpc":"2.0","id":-1.5e3,"error":{"code":-32020,"message":"\u003cscript\u003e\u0026\u003c/script\u003e"}}`},
		{"2", "a\nb\r\tc\x00\x1f\x7f", `{"jsonrpc":"2.0","id":2,"error":{"code":-32020,"message":"a\nb\r\tc\u0000\u001f` + "\x7f" + `"}}`},
		{"3", "bad\xffutf8 \u2028\u2029 日本", `{"jsonrpc":"2.0","id":3,"error":{"code":-32020,"message":"bad\ufffdutf8 \u2028\u2029 日本"}}`},
	}
	for _, tt := range tests {
		got := string(AppendErrorResponse([]byte("prefix:"), tt.id, CodeHeaderMismatch, tt.message))
		if got != "prefix:"+tt.want {
			t.Errorf("AppendErrorResponse(%q, %q)\n got %s\nwant %s", tt.id, tt.message, got, tt.want)
		}
		if !json.Valid([]byte(tt.want)) {
			t.Errorf("invalid JSON %s", tt.want)
		}
	}
	// Round trip through encoding/json.
	msg := "Header mismatch: 'x\"\\</>&\u2028' \x00 é \xff"
	var out struct {
		Error struct {
			Code    int
			Message string
		}
	}
	if err := json.Unmarshal(AppendErrorResponse(nil, `"i"`, -32600, msg), &out); err != nil {
		t.Fatal(err)
	}
	if out.Error.Code != -32600 || out.Error.Message != strings.ToValidUTF8(msg, "\uFFFD") {
		t.Fatalf("round trip: %+v", out)
	}
	if (&Error{Code: -32600, Message: "m"}).Error() != "jsonrpc error -32600: m" {
		t.Fatal("Error()")
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello \"world\" <\u2028> \xff")
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, b, err)
		}
		if got != strings.ToValidUTF8(s, "\uFFFD") && !invalidRunesDiffer(s, got) {
			t.Fatalf("round trip %q -> %q", s, got)
		}
		for _, c := range b {
			if c < 0x20 || c == '<' || c == '>' || c == '&' {
				t.Fatalf("unescaped %q in %s", c, b)
			}
		}
	})
}

// invalidRunesDiffer allows for strings.ToValidUTF8 collapsing runs of invalid bytes
// into one replacement while AppendString replaces each invalid byte.
func invalidRunesDiffer(s, got string) bool {
	want := make([]rune, 0, len(s))
	for _, r := range s { // ranging replaces each invalid byte with U+FFFD
		want = append(want, r)
	}
	return string(want) == got
}

func BenchmarkCheckHeaders(b *testing.B) {
	var in Inspection
	if err := Inspect(benchToolsCall, &in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckHeaders("2026-07-28", "tools/call", "execute_sql", &in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendErrorResponse(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendErrorResponse(buf[:0], `"req-17"`, CodeHeaderMismatch, "Header mismatch: Mcp-Name header value 'a' does not match body value 'b'")
	}
}
