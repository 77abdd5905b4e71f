package jsonrpc

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/caddymcp/caddymcp/internal/jsonstr"
)

func msg(kind Kind, method, id, name, pv string) Message {
	return Message{Kind: kind, Method: method, ID: id, Name: name, ProtocolVersion: pv}
}

func TestInspectShapes(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Message
	}{
		{"initialize", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`,
			msg(KindRequest, "initialize", "0", "", "")},
		{"ping", `{"jsonrpc":"2.0","id":7,"method":"ping"}`, msg(KindRequest, "ping", "7", "", "")},
		{"ping params null", `{"jsonrpc":"2.0","id":7,"method":"ping","params":null}`, msg(KindRequest, "ping", "7", "", "")},
		{"tools/list cursor", `{"jsonrpc":"2.0","id":"a1","method":"tools/list","params":{"cursor":"abc"}}`,
			msg(KindRequest, "tools/list", `"a1"`, "", "")},
		{"tools/call", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_weather","arguments":{"location":"Seattle, WA","n":[1,2,{"x":null}]}}}`,
			msg(KindRequest, "tools/call", "3", "get_weather", "")},
		{"tools/call params first", `{"params":{"arguments":{},"name":"echo"},"method":"tools/call","id":4,"jsonrpc":"2.0"}`,
			msg(KindRequest, "tools/call", "4", "echo", "")},
		{"tools/call without name", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}`,
			msg(KindRequest, "tools/call", "3", "", "")},
		{"tools/call uri ignored", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"uri":5,"name":"n"}}`,
			msg(KindRequest, "tools/call", "3", "n", "")},
		{"tools/call 2026-07-28", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{"location":"Seattle, WA"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"ExampleClient","version":"1.0.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}`,
			msg(KindRequest, "tools/call", "1", "get_weather", "2026-07-28")},
		{"prompts/get", `{"jsonrpc":"2.0","id":5,"method":"prompts/get","params":{"name":"code_review","arguments":{"code":"x"}}}`,
			msg(KindRequest, "prompts/get", "5", "code_review", "")},
		{"prompts/list", `{"jsonrpc":"2.0","id":5,"method":"prompts/list","params":{"name":"ignored"}}`,
			msg(KindRequest, "prompts/list", "5", "", "")},
		{"resources/read", `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///projects/myapp/config.json"}}`,
			msg(KindRequest, "resources/read", "2", "file:///projects/myapp/config.json", "")},
		{"resources/subscribe", `{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"file:///a"}}`,
			msg(KindRequest, "resources/subscribe", "2", "file:///a", "")},
		{"resources/unsubscribe", `{"jsonrpc":"2.0","id":2,"method":"resources/unsubscribe","params":{"uri":"file:///a","name":"x"}}`,
			msg(KindRequest, "resources/unsubscribe", "2", "file:///a", "")},
		{"notifications/initialized", `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			msg(KindNotification, "notifications/initialized", "", "", "")},
		{"notifications/cancelled", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"x"}}`,
			msg(KindNotification, "notifications/cancelled", "", "", "")},
		{"notifications/progress", `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":0.5}}`,
			msg(KindNotification, "notifications/progress", "", "", "")},
		{"response result", `{"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"hi"}]}}`,
			msg(KindResponse, "", "9", "", "")},
		{"response error", `{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"nope"}}`,
			msg(KindResponse, "", `"x"`, "", "")},
		{"response error null id", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}`,
			msg(KindResponse, "", "null", "", "")},
		{"response result and null error", `{"jsonrpc":"2.0","id":1,"result":{},"error":null}`,
			msg(KindResponse, "", "1", "", "")},
		{"server/discover", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
			msg(KindRequest, "server/discover", "1", "", "2026-07-28")},
		{"subscriptions/listen", `{"jsonrpc":"2.0","id":11,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
			msg(KindRequest, "subscriptions/listen", "11", "", "2026-07-28")},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"x-vendor/thing"}`, msg(KindRequest, "x-vendor/thing", "1", "", "")},
		{"unknown version", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01"}}}`,
			msg(KindRequest, "ping", "1", "", "2099-01-01")},
		{"meta not object", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":null}}`, msg(KindRequest, "ping", "1", "", "")},
		{"params array", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["a"]}`, msg(KindRequest, "tools/call", "1", "", "")},
		{"whitespace", " \r\n\t{ \"jsonrpc\" : \"2.0\" , \"id\" : 1 , \"method\" : \"ping\" } \n", msg(KindRequest, "ping", "1", "", "")},
		{"unknown fields skipped", `{"x":{"a":[1,2,3,{"b":"\"}"}],"c":true,"d":false,"e":null,"f":-1.5e+10},"jsonrpc":"2.0","id":1,"method":"ping","y":[]}`,
			msg(KindRequest, "ping", "1", "", "")},
		// ids
		{"id zero", `{"jsonrpc":"2.0","id":0,"method":"ping"}`, msg(KindRequest, "ping", "0", "", "")},
		{"id 9999", `{"jsonrpc":"2.0","id":9999,"method":"ping"}`, msg(KindRequest, "ping", "9999", "", "")},
		{"id 10000", `{"jsonrpc":"2.0","id":10000,"method":"ping"}`, msg(KindRequest, "ping", "10000", "", "")},
		{"id negative", `{"jsonrpc":"2.0","id":-1,"method":"ping"}`, msg(KindRequest, "ping", "-1", "", "")},
		{"id float", `{"jsonrpc":"2.0","id":1.5e3,"method":"ping"}`, msg(KindRequest, "ping", "1.5e3", "", "")},
		{"id string escaped", `{"jsonrpc":"2.0","id":"a\"b\u00e9","method":"ping"}`, msg(KindRequest, "ping", `"a\"b\u00e9"`, "", "")},
		{"id empty string", `{"jsonrpc":"2.0","id":"","method":"ping"}`, msg(KindRequest, "ping", `""`, "", "")},
		// escapes
		{"escaped method", `{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"a\u0062c"}}`,
			msg(KindRequest, "tools/call", "1", "abc", "")},
		{"unicode escapes", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u65e5\u672c\ud83d\ude00\n"}}`,
			msg(KindRequest, "tools/call", "1", "日本😀\n", "")},
		{"raw utf8 name", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"héllo wörld"}}`,
			msg(KindRequest, "prompts/get", "1", "héllo wörld", "")},
		{"lone surrogate", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\ud800b"}}`,
			msg(KindRequest, "tools/call", "1", "a\uFFFDb", "")},
		{"invalid utf8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\xffb\"}}",
			msg(KindRequest, "tools/call", "1", "a\uFFFDb", "")},
		{"escaped keys", `{"\u006aso\u006erpc":"2\u002e0","\u0069d":1,"met\u0068od":"tools/call","par\u0061ms":{"n\u0061me":"x","_met\u0061":{"io.modelcontextprotocol\/protocolVersion":"2026-07-28"}}}`,
			msg(KindRequest, "tools/call", "1", "x", "2026-07-28")},
	}
	var in Inspection
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Inspect([]byte(tt.body), &in); err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if in.Batch || len(in.Messages) != 1 {
				t.Fatalf("Batch=%v len=%d, want single message", in.Batch, len(in.Messages))
			}
			if got := in.Messages[0]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestInspectBatch(t *testing.T) {
	var in Inspection
	body := `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
	  {"jsonrpc":"2.0","method":"notifications/initialized"},
	  {"jsonrpc":"2.0","id":"r","result":{}},
	  {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"u"}}]`
	if err := Inspect([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	want := []Message{
		msg(KindRequest, "tools/call", "1", "a", ""),
		msg(KindNotification, "notifications/initialized", "", "", ""),
		msg(KindResponse, "", `"r"`, "", ""),
		msg(KindRequest, "resources/read", "2", "u", ""),
	}
	if !in.Batch || len(in.Messages) != len(want) {
		t.Fatalf("Batch=%v len=%d", in.Batch, len(in.Messages))
	}
	for i := range want {
		if !reflect.DeepEqual(in.Messages[i], want[i]) {
			t.Errorf("[%d] got %+v want %+v", i, in.Messages[i], want[i])
		}
	}
	// Reuse: a following single message resets Batch and Messages.
	if err := Inspect([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), &in); err != nil {
		t.Fatal(err)
	}
	if in.Batch || len(in.Messages) != 1 || in.Messages[0].Method != "ping" {
		t.Fatalf("after reuse: %+v", in)
	}
	// Single-element batch is still a batch.
	if err := Inspect([]byte(`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`), &in); err != nil || !in.Batch || len(in.Messages) != 1 {
		t.Fatalf("single-element batch: err=%v %+v", err, in)
	}
}

func TestInspectErrors(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)
	tooDeepParams := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":` +
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + "}}"
	tests := []struct {
		name string
		body string
		code int
	}{
		{"empty", ``, CodeParseError},
		{"spaces", "  \n", CodeParseError},
		{"truncated", `{"jsonrpc":"2.0","id":1,"method":"to`, CodeParseError},
		{"truncated after key", `{"jsonrpc"`, CodeParseError},
		{"truncated params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,`, CodeParseError},
		{"trailing garbage", `{"jsonrpc":"2.0","id":1,"method":"ping"}x`, CodeParseError},
		{"two objects", `{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}`, CodeParseError},
		{"trailing comma", `{"jsonrpc":"2.0","id":1,"method":"ping",}`, CodeParseError},
		{"trailing comma array", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":[1,]}}`, CodeParseError},
		{"single quotes", `{'jsonrpc':'2.0'}`, CodeParseError},
		{"bad escape", `{"jsonrpc":"2.0","id":1,"method":"p\xng"}`, CodeParseError},
		{"bad unicode escape", `{"jsonrpc":"2.0","id":1,"method":"p\u12g4"}`, CodeParseError},
		{"control char in string", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\ting\"}", CodeParseError},
		{"leading zero", `{"jsonrpc":"2.0","id":01,"method":"ping"}`, CodeParseError},
		{"bare minus", `{"jsonrpc":"2.0","id":-,"method":"ping"}`, CodeParseError},
		{"bad fraction", `{"jsonrpc":"2.0","id":1.,"method":"ping"}`, CodeParseError},
		{"bad exponent", `{"jsonrpc":"2.0","id":1e,"method":"ping"}`, CodeParseError},
		{"bad literal", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":tru}}`, CodeParseError},
		{"NaN", `{"jsonrpc":"2.0","id":NaN,"method":"ping"}`, CodeParseError},
		{"comment", `{"jsonrpc":"2.0",/*c*/"id":1,"method":"ping"}`, CodeParseError},
		{"bom", "\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", CodeParseError},
		{"missing colon", `{"jsonrpc" "2.0"}`, CodeParseError},
		{"non-string key", `{1:"2.0"}`, CodeParseError},
		{"unclosed batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}`, CodeParseError},
		{"batch trailing comma", `[{"jsonrpc":"2.0","id":1,"method":"ping"},]`, CodeParseError},
		{"semantic error then syntax error", `{"jsonrpc":"1.0","id":1,"method":"ping"`, CodeParseError},
		{"too deep", deep, CodeInvalidRequest},
		{"too deep params", tooDeepParams, CodeInvalidRequest},
		{"too deep array", strings.Repeat("[", 100000), CodeInvalidRequest},
		{"not object", `"hello"`, CodeInvalidRequest},
		{"number body", `42`, CodeInvalidRequest},
		{"null body", `null`, CodeInvalidRequest},
		{"empty batch", `[]`, CodeInvalidRequest},
		{"empty batch ws", `[ ]`, CodeInvalidRequest},
		{"nested batch", `[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]`, CodeInvalidRequest},
		{"batch with number", `[{"jsonrpc":"2.0","id":1,"method":"ping"},1]`, CodeInvalidRequest},
		{"batch with invalid element", `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"id":2}]`, CodeInvalidRequest},
		{"empty object", `{}`, CodeInvalidRequest},
		{"missing jsonrpc", `{"id":1,"method":"ping"}`, CodeInvalidRequest},
		{"wrong jsonrpc", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, CodeInvalidRequest},
		{"numeric jsonrpc", `{"jsonrpc":2.0,"id":1,"method":"ping"}`, CodeInvalidRequest},
		{"method number", `{"jsonrpc":"2.0","id":1,"method":5}`, CodeInvalidRequest},
		{"method null", `{"jsonrpc":"2.0","id":1,"method":null}`, CodeInvalidRequest},
		{"method empty", `{"jsonrpc":"2.0","id":1,"method":""}`, CodeInvalidRequest},
		{"id object", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, CodeInvalidRequest},
		{"id array", `{"jsonrpc":"2.0","id":[1],"method":"ping"}`, CodeInvalidRequest},
		{"id bool", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, CodeInvalidRequest},
		{"request null id", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, CodeInvalidRequest},
		{"method and result", `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, CodeInvalidRequest},
		{"result and error", `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}`, CodeInvalidRequest},
		{"response without id", `{"jsonrpc":"2.0","result":{}}`, CodeInvalidRequest},
		{"no method no result", `{"jsonrpc":"2.0","id":1}`, CodeInvalidRequest},
		{"only null error", `{"jsonrpc":"2.0","id":1,"error":null}`, CodeInvalidRequest},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}`, CodeInvalidRequest},
		{"duplicate escaped method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","m\u0065thod":"tools/call"}`, CodeInvalidRequest},
		{"duplicate id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, CodeInvalidRequest},
		{"duplicate params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}`, CodeInvalidRequest},
		{"duplicate name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`, CodeInvalidRequest},
		{"duplicate uri", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","uri":"b"}}`, CodeInvalidRequest},
		{"duplicate version", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/protocolVersion":"2025-06-18"}}}`, CodeInvalidRequest},
		{"case lookalike method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}`, CodeInvalidRequest},
		{"case lookalike params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","PARAMS":{"name":"b"}}`, CodeInvalidRequest},
		{"fold lookalike long s", `{"jsonrpc":"2.0","id":1,"method":"tools/call","param\u017f":{"name":"b"}}`, CodeInvalidRequest},
		{"case lookalike name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Name":"b"}}`, CodeInvalidRequest},
		{"name number", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":42}}`, CodeInvalidParams},
		{"name null", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":null}}`, CodeInvalidParams},
		{"uri object", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":{}}}`, CodeInvalidParams},
		{"uri array subscribe", `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":["a"]}}`, CodeInvalidParams},
		{"version number", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}}`, CodeInvalidParams},
	}
	var in Inspection
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Inspect([]byte(tt.body), &in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Inspect = %v (%T), want *Error code %d", err, err, tt.code)
			}
			if e.Code != tt.code {
				t.Errorf("code = %d (%s), want %d", e.Code, e.Message, tt.code)
			}
			if e.Code == CodeParseError && len(in.Messages) != 0 {
				t.Errorf("parse error left %d messages", len(in.Messages))
			}
		})
	}
	// The deepest accepted nesting is MaxDepth levels.
	ok := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":` +
		strings.Repeat("[", MaxDepth-3) + strings.Repeat("]", MaxDepth-3) + "}}"
	if err := Inspect([]byte(ok), &in); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	if err := Inspect([]byte(deep[5:len(deep)-1]), &in); err == nil || err.(*Error).Code != CodeInvalidRequest {
		t.Errorf("depth %d object body: %v", MaxDepth-1, err) // valid JSON, not a JSON-RPC message
	}
}

func TestInspectErrorKeepsID(t *testing.T) {
	var in Inspection
	err := Inspect([]byte(`{"jsonrpc":"2.0","id":"q1","method":"tools/call","params":{"name":1}}`), &in)
	if err == nil || err.(*Error).Code != CodeInvalidParams {
		t.Fatalf("err = %v", err)
	}
	if len(in.Messages) != 1 || in.Messages[0].ID != `"q1"` || in.Messages[0].Kind != KindInvalid {
		t.Fatalf("messages = %+v", in.Messages)
	}
	err = Inspect([]byte(`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2}]`), &in)
	if err == nil || !strings.Contains(err.Error(), "batch element 1") {
		t.Fatalf("err = %v", err)
	}
}

func TestInspectDoesNotAliasBody(t *testing.T) {
	body := []byte(`{"jsonrpc":"2.0","id":123456,"method":"vendor/custom","params":{"name":"unique-tool-name","_meta":{"io.modelcontextprotocol/protocolVersion":"2030-01-01"}}}`)
	body2 := []byte(`{"jsonrpc":"2.0","id":"abcdef","method":"tools/call","params":{"name":"another-tool"}}`)
	var in Inspection
	for _, b := range [][]byte{body, body2} {
		if err := Inspect(b, &in); err != nil {
			t.Fatal(err)
		}
		before := in.Messages[0]
		for i := range b {
			b[i] = 'X'
		}
		if !reflect.DeepEqual(in.Messages[0], before) {
			t.Fatalf("message changed after body was overwritten: %+v", in.Messages[0])
		}
		if strings.Contains(before.Method+before.ID+before.Name+before.ProtocolVersion, "X") {
			t.Fatalf("strings alias body: %+v", before)
		}
	}
}

// TestUnquoteMatchesEncodingJSON checks that names are unescaped exactly as
// encoding/json would (which is what Go upstreams see).
func TestUnquoteMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`plain`, `\"\\\/\b\f\n\r\t`, `\u0041\u00e9\u65e5`, `\ud83d\ude00`, `\ud83d`, `\ude00`,
		`\ud83dx`, `\ud83d\u0041`, `\ud83d\ud83d\ude00`, "\xff\xfe", "a\xc3", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", `é\u00e9`, `\u0000`, `\uFFFF\uFFFE`,
	} {
		checkUnquote(t, s)
	}
}

func checkUnquote(t *testing.T, s string) {
	t.Helper()
	var want string
	if err := json.Unmarshal([]byte(`"`+s+`"`), &want); err != nil {
		return
	}
	p := parser{b: []byte(`"` + s + `"`)}
	sp, _, err := p.scanString()
	if err != nil {
		t.Fatalf("scanString(%q): %v (encoding/json accepts it)", s, err)
	}
	if got := string(jsonstr.AppendUnquote(nil, p.b[sp.s:sp.e])); got != want {
		t.Errorf("unquote(%q) = %q, encoding/json says %q", s, got, want)
	}
}

func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`a\u00e9`, `\ud83d\ude00`, `\ud800`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, `"`) {
			return
		}
		checkUnquote(t, s)
	})
}

// TestValidityMatchesEncodingJSON checks that Inspect accepts exactly the JSON that
// encoding/json accepts (up to the depth limit).
func TestValidityMatchesEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":[1,2.5,-0,1e5,1E-5,true,false,null,"\u0000",{}]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":1 }}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":.5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":+5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\'"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":[,]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":0x10}}`,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\x7f\"}}",
	} {
		checkValidity(t, []byte(body))
	}
}

func checkValidity(t *testing.T, body []byte) {
	t.Helper()
	var in Inspection
	err := Inspect(body, &in)
	isParseErr := err != nil && err.(*Error).Code == CodeParseError
	if json.Valid(body) == isParseErr {
		t.Errorf("Inspect(%q) = %v but json.Valid = %v", body, err, json.Valid(body))
	}
}

func TestKindString(t *testing.T) {
	for k, s := range map[Kind]string{KindInvalid: "invalid", KindRequest: "request",
		KindNotification: "notification", KindResponse: "response", Kind(99): "invalid"} {
		if k.String() != s {
			t.Errorf("%d.String() = %q", k, k.String())
		}
	}
}

func TestCacheBounded(t *testing.T) {
	var in Inspection
	for i := 0; i < 3*cacheMaxEntries; i++ {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa(i) + `"}}`
		if err := Inspect([]byte(body), &in); err != nil {
			t.Fatal(err)
		}
		if len(in.cache) > cacheMaxEntries {
			t.Fatalf("cache grew to %d", len(in.cache))
		}
	}
	long := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + strings.Repeat("y", cacheMaxLen+1) + `"}}`
	if err := Inspect([]byte(long), &in); err != nil {
		t.Fatal(err)
	}
	if _, ok := in.cache[strings.Repeat("y", cacheMaxLen+1)]; ok {
		t.Fatal("over-long name cached")
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func TestSmallInt(t *testing.T) {
	for n := 0; n < 10000; n++ {
		s := itoa(n)
		got, ok := smallInt([]byte(s))
		if !ok || got != s {
			t.Fatalf("smallInt(%s) = %q, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "10000", "-1", "01", "1.5", "1e3"} {
		if _, ok := smallInt([]byte(s)); ok {
			t.Errorf("smallInt(%q) ok", s)
		}
	}
}

func FuzzInspect(f *testing.F) {
	seeds := []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,{"b":null}]}}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]`,
		`{"jsonrpc":"2.0","id":"a","result":{}}`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
		`{"\u006aso\u006erpc":"2\u002e0","\u0069d":1,"met\u0068od":"tools\/call","params":{"name":"\ud83d\ude00"}}`,
		`[]`, `[[]]`, `{}`, `1`, `"x"`, `{"a":` + strings.Repeat("[", 70),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in Inspection
		err := Inspect(body, &in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.Code == CodeParseError && json.Valid(body) {
				t.Fatalf("parse error %v for valid JSON", e)
			}
			if e.Code != CodeParseError && !strings.HasPrefix(e.Message, "JSON nesting") && !json.Valid(body) {
				t.Fatalf("error %v (not a parse error) for invalid JSON", e)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON")
		}
		if len(in.Messages) == 0 || (!in.Batch && len(in.Messages) != 1) {
			t.Fatalf("Batch=%v with %d messages", in.Batch, len(in.Messages))
		}
		// Cross-check against a plain decode (case-sensitive, as go-sdk decodes).
		var generic any
		if err := json.Unmarshal(body, &generic); err != nil {
			t.Fatalf("encoding/json rejects accepted body: %v", err)
		}
		objs := []any{generic}
		if in.Batch {
			objs = generic.([]any)
		}
		if len(objs) != len(in.Messages) {
			t.Fatalf("%d messages, %d elements", len(in.Messages), len(objs))
		}
		for i, m := range in.Messages {
			obj := objs[i].(map[string]any)
			if obj["jsonrpc"] != "2.0" {
				t.Fatalf("jsonrpc = %v", obj["jsonrpc"])
			}
			switch m.Kind {
			case KindRequest, KindNotification:
				if m.Method == "" || obj["method"] != m.Method {
					t.Fatalf("method %q vs %v", m.Method, obj["method"])
				}
				_, hasID := obj["id"]
				if hasID != (m.Kind == KindRequest) || (hasID && obj["id"] == nil) {
					t.Fatalf("kind %v with id %v", m.Kind, obj["id"])
				}
				want := ""
				params, _ := obj["params"].(map[string]any)
				switch m.Method {
				case "tools/call", "prompts/get":
					want, _ = params["name"].(string)
				case "resources/read", "resources/subscribe", "resources/unsubscribe":
					want, _ = params["uri"].(string)
				}
				if m.Name != want {
					t.Fatalf("name %q, want %q", m.Name, want)
				}
				meta, _ := params["_meta"].(map[string]any)
				pv, _ := meta[MetaKeyProtocolVersion].(string)
				if m.ProtocolVersion != pv {
					t.Fatalf("protocol version %q, want %q", m.ProtocolVersion, pv)
				}
			case KindResponse:
				if m.Method != "" || m.Name != "" {
					t.Fatalf("response with method/name: %+v", m)
				}
				if _, ok := obj["id"]; !ok {
					t.Fatal("response without id")
				}
			default:
				t.Fatalf("accepted message of kind %v", m.Kind)
			}
			if m.ID != "" {
				var v any
				if err := json.Unmarshal([]byte(m.ID), &v); err != nil {
					t.Fatalf("ID %q is not JSON: %v", m.ID, err)
				}
				switch v.(type) {
				case string, float64, nil:
				default:
					t.Fatalf("ID %q of type %T", m.ID, v)
				}
			}
			resp := AppendErrorResponse(nil, m.ID, CodeInternalError, m.Name)
			if !json.Valid(resp) {
				t.Fatalf("invalid error response %q", resp)
			}
		}
	})
}

var benchToolsCall = func() []byte {
	var args strings.Builder
	args.WriteString(`{"query":"SELECT * FROM users WHERE id = 42","options":{"limit":100,"timeout":30.5,"tags":[`)
	for i := 0; args.Len() < 1000; i++ {
		if i > 0 {
			args.WriteByte(',')
		}
		args.WriteString(`"tag-` + itoa(i) + `"`)
	}
	args.WriteString(`],"nested":{"a":{"b":{"c":[true,false,null]}}},"text":"line1\nline2 \u00e9 \"quoted\""}}`)
	return []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"execute_sql","arguments":` +
		args.String() + `,"_meta":{"progressToken":"tok-1","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"ExampleClient","version":"1.0.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}`)
}()

func BenchmarkInspectToolsCall(b *testing.B) {
	var in Inspection
	b.SetBytes(int64(len(benchToolsCall)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Inspect(benchToolsCall, &in); err != nil {
			b.Fatal(err)
		}
	}
	if in.Messages[0].Name != "execute_sql" {
		b.Fatal(in.Messages[0])
	}
}

// BenchmarkInspectToolsCallColdName defeats the name cache: the worst case, one
// allocation for the name.
func BenchmarkInspectToolsCallColdName(b *testing.B) {
	var in Inspection
	b.SetBytes(int64(len(benchToolsCall)))
	b.ReportAllocs()
	for b.Loop() {
		clear(in.cache)
		if err := Inspect(benchToolsCall, &in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInspectBatch(b *testing.B) {
	body := []byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"golang","limit":10}}},
{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///projects/app/README.md"}},
{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":0.5,"total":1}},
{"jsonrpc":"2.0","id":"srv-7","result":{"content":[{"type":"text","text":"ok"}]}},
{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"review","arguments":{"code":"x := 1"}}}]`)
	var in Inspection
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Inspect(body, &in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingJSON is a reference point: what decoding the envelope costs with
// encoding/json.
func BenchmarkEncodingJSON(b *testing.B) {
	type params struct {
		Name string `json:"name"`
	}
	type envelope struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  params          `json:"params"`
	}
	b.SetBytes(int64(len(benchToolsCall)))
	b.ReportAllocs()
	for b.Loop() {
		var e envelope
		if err := json.Unmarshal(benchToolsCall, &e); err != nil {
			b.Fatal(err)
		}
	}
}
