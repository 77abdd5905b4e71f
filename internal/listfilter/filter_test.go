package listfilter

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// ids maps canonical ids to kinds for the tests: 1 tools, 2 prompts, 3 resources,
// 4 resource templates, "a" any.
func testLookup(id string) (Kind, bool) {
	switch id {
	case "1":
		return Tools, true
	case "2":
		return Prompts, true
	case "3":
		return Resources, true
	case "4":
		return ResourceTemplates, true
	case `"a"`:
		return AnyList, true
	}
	return 0, false
}

// allowSet allows the listed "kind:name" pairs.
func allowSet(pairs ...string) Allow {
	m := map[string]bool{}
	for _, p := range pairs {
		m[p] = true
	}
	return func(k Kind, name string) bool { return m[k.String()+":"+name] }
}

func allowAll(Kind, string) bool  { return true }
func allowNone(Kind, string) bool { return false }

func TestFilterJSON(t *testing.T) {
	pol := allowSet("tools:a", "tools:c", "prompts:p1", "resources:file:///ok",
		"resourceTemplates:file:///{x}", "tools:name", "tools:\u00e9", "tools:\ufffd")
	tests := []struct {
		name, in, want string
	}{
		{"tools keep a and c",
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","n":1.0e+2},{"name":"b"},{"name":"c","d":"\u00e9"}]}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","n":1.0e+2},{"name":"c","d":"\u00e9"}]}}`},
		{"drop first",
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"},{"name":"a"},{"name":"c"}]}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"c"}]}}`},
		{"drop last",
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"c"},{"name":"b"}]}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"c"}]}}`},
		{"drop all",
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"x"},{"name":"y"}]}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}`},
		{"keep all is byte for byte",
			"{ \"id\" : 1 , \"result\" : { \"tools\" : [ {\"name\":\"a\"} ,\n {\"name\":\"c\"} ] } }",
			"{ \"id\" : 1 , \"result\" : { \"tools\" : [ {\"name\":\"a\"} ,\n {\"name\":\"c\"} ] } }"},
		{"pretty printed keeps layout of kept items",
			"{\n  \"id\": 1,\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"x\"},\n      {\"name\": \"a\"},\n      {\"name\": \"y\"},\n      {\"name\": \"c\"}\n    ]\n  }\n}",
			"{\n  \"id\": 1,\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"a\"},\n      {\"name\": \"c\"}\n    ]\n  }\n}"},
		{"empty list",
			`{"id":1,"result":{"tools":[]}}`,
			`{"id":1,"result":{"tools":[]}}`},
		{"result before id (TypeScript SDK order), cursor and _meta kept",
			`{"result":{"_meta":{"k":[1,2]},"tools":[{"name":"b"},{"name":"a"}],"nextCursor":"c\u0031=="},"jsonrpc":"2.0","id":1}`,
			`{"result":{"_meta":{"k":[1,2]},"tools":[{"name":"a"}],"nextCursor":"c\u0031=="},"jsonrpc":"2.0","id":1}`},
		{"prompts by name",
			`{"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"p1"},{"name":"p2"}],"nextCursor":"x"}}`,
			`{"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"p1"}],"nextCursor":"x"}}`},
		{"resources by uri",
			`{"jsonrpc":"2.0","id":3,"result":{"resources":[{"uri":"file:///ok","name":"a"},{"uri":"file:///secret","name":"a"}]}}`,
			`{"jsonrpc":"2.0","id":3,"result":{"resources":[{"uri":"file:///ok","name":"a"}]}}`},
		{"resource templates by uriTemplate",
			`{"jsonrpc":"2.0","id":4,"result":{"resourceTemplates":[{"uriTemplate":"file:///{y}","name":"a"},{"uriTemplate":"file:///{x}","name":"b"}]}}`,
			`{"jsonrpc":"2.0","id":4,"result":{"resourceTemplates":[{"uriTemplate":"file:///{x}","name":"b"}]}}`},
		{"only the kind's array is filtered",
			`{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"zz"}],"tools":[{"name":"zz"}]}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"zz"}],"tools":[]}}`},
		{"any list filters every array by its own kind",
			`{"jsonrpc":"2.0","id":"a","result":{"prompts":[{"name":"p1"},{"name":"a"}],"tools":[{"name":"a"},{"name":"p1"}],"resources":[{"uri":"file:///ok"},{"uri":"x"}]}}`,
			`{"jsonrpc":"2.0","id":"a","result":{"prompts":[{"name":"p1"}],"tools":[{"name":"a"}],"resources":[{"uri":"file:///ok"}]}}`},
		{"unknown id untouched",
			`{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"x"}]}}`,
			`{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"x"}]}}`},
		{"no id untouched",
			`{"jsonrpc":"2.0","result":{"tools":[{"name":"x"}]}}`,
			`{"jsonrpc":"2.0","result":{"tools":[{"name":"x"}]}}`},
		{"error response untouched",
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"x","data":{"tools":[{"name":"x"}]}}}`,
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"x","data":{"tools":[{"name":"x"}]}}}`},
		{"error null with result is filtered",
			`{"jsonrpc":"2.0","id":1,"error":null,"result":{"tools":[{"name":"x"}]}}`,
			`{"jsonrpc":"2.0","id":1,"error":null,"result":{"tools":[]}}`},
		{"notification and request untouched",
			`{"jsonrpc":"2.0","method":"notifications/progress","params":{"result":{"tools":[{"name":"x"}]}}}`,
			`{"jsonrpc":"2.0","method":"notifications/progress","params":{"result":{"tools":[{"name":"x"}]}}}`},
		{"nested tools arrays are not lists",
			`{"id":1,"result":{"tools":[{"name":"a","tools":[{"name":"x"}]}],"other":{"tools":[{"name":"x"}]}}}`,
			`{"id":1,"result":{"tools":[{"name":"a","tools":[{"name":"x"}]}],"other":{"tools":[{"name":"x"}]}}}`},
		{"result without the list",
			`{"id":1,"result":{"nextCursor":"x"}}`,
			`{"id":1,"result":{"nextCursor":"x"}}`},
		{"items lacking names dropped",
			`{"id":1,"result":{"tools":[{"name":"a"},{},{"title":"a"},{"name":null},{"name":1},"a",["a"],null,{"name":"c"}]}}`,
			`{"id":1,"result":{"tools":[{"name":"a"},{"name":"c"}]}}`},
		{"duplicate name dropped, even if both allowed",
			`{"id":1,"result":{"tools":[{"name":"a","name":"c"},{"name":"b","name":"a"},{"name":"a"}]}}`,
			`{"id":1,"result":{"tools":[{"name":"a"}]}}`},
		{"case variant of name key dropped",
			`{"id":1,"result":{"tools":[{"name":"a","Name":"b"},{"NAME":"a"},{"na\u006dE":"a","name":"a"},{"c":1,"name":"c"}]}}`,
			`{"id":1,"result":{"tools":[{"c":1,"name":"c"}]}}`},
		{"escaped key and value decoded before Allow",
			`{"id":1,"result":{"tools":[{"na\u006de":"\u0061"},{"name":"\u00e9"},{"name":"n\u0061me"},{"name":"\u0062"}]}}`,
			`{"id":1,"result":{"tools":[{"na\u006de":"\u0061"},{"name":"\u00e9"},{"name":"n\u0061me"}]}}`},
		{"invalid UTF-8 and lone surrogates become U+FFFD",
			"{\"id\":1,\"result\":{\"tools\":[{\"name\":\"\xff\"},{\"name\":\"\\ud800\"},{\"name\":\"\\u00e9\xff\"}]}}",
			"{\"id\":1,\"result\":{\"tools\":[{\"name\":\"\xff\"},{\"name\":\"\\ud800\"}]}}"},
		{"case variant of the list field is filtered too",
			`{"id":1,"result":{"Tools":[{"name":"x"},{"name":"a"}],"tools":[{"name":"y"}],"toolſ":[{"name":"z"}]}}`,
			`{"id":1,"result":{"Tools":[{"name":"a"}],"tools":[],"toolſ":[]}}`},
		{"escaped list field",
			`{"id":1,"result":{"t\u006fols":[{"name":"x"}]}}`,
			`{"id":1,"result":{"t\u006fols":[]}}`},
		{"canonical ids: escaped string",
			`{"id":"\u0061","result":{"tools":[{"name":"x"}]}}`,
			`{"id":"\u0061","result":{"tools":[]}}`},
		{"canonical ids: 1.0 and 1e0",
			`[{"id":1.0,"result":{"tools":[{"name":"x"}]}},{"id":10e-1,"result":{"tools":[{"name":"x"}]}}]`,
			`[{"id":1.0,"result":{"tools":[]}},{"id":10e-1,"result":{"tools":[]}}]`},
		{"batch with mixed kinds",
			`[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"p1"}]}},` +
				`{"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"a"},{"name":"p1"}]}},` +
				`{"jsonrpc":"2.0","id":7,"result":{"content":[]}},` +
				`{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"m"}},` +
				`{"jsonrpc":"2.0","id":4,"result":{"resourceTemplates":[{"uriTemplate":"file:///{x}"},{"uriTemplate":"q"}]}}]`,
			`[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}},` +
				`{"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"p1"}]}},` +
				`{"jsonrpc":"2.0","id":7,"result":{"content":[]}},` +
				`{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"m"}},` +
				`{"jsonrpc":"2.0","id":4,"result":{"resourceTemplates":[{"uriTemplate":"file:///{x}"}]}}]`},
		{"batch with non-object elements",
			` [ 1 , {"id":1,"result":{"tools":[{"name":"x"}]}} , "s" ] `,
			` [ 1 , {"id":1,"result":{"tools":[]}} , "s" ] `},
		{"empty batch", `[]`, `[]`},
		{"scalar body", ` 12 `, ` 12 `},
		{"list response without result object fields", `{"id":1,"result":{}}`, `{"id":1,"result":{}}`},
		{"result of a non-list request with tools member untouched",
			`{"id":5,"result":{"tools":"anything"}}`,
			`{"id":5,"result":{"tools":"anything"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix:")
			got, err := FilterJSON(prefix, []byte(tc.in), testLookup, pol)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if string(got) != "prefix:"+tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got[len(prefix):], tc.want)
			}
			if json.Valid([]byte(tc.in)) && !json.Valid(got[len(prefix):]) {
				t.Fatal("output is not valid JSON")
			}
			// Allow-all keeps exactly the items with a usable name.
			all, err := FilterJSON(nil, []byte(tc.in), testLookup, allowAll)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(all) {
				t.Fatalf("allow-all output invalid: %s", all)
			}
		})
	}
}

func TestFilterJSONErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"empty", ``, ErrSyntax},
		{"whitespace", " \n", ErrSyntax},
		{"truncated", `{"id":1,"result":{"tools":[{"name":"a"}`, ErrSyntax},
		{"trailing data", `{"id":1} x`, ErrSyntax},
		{"two values", `{} {}`, ErrSyntax},
		{"bad literal", `{"id":tru}`, ErrSyntax},
		{"bad number", `{"id":01}`, ErrSyntax},
		{"control char in string", "{\"id\":\"a\x01\"}", ErrSyntax},
		{"bad escape", `{"id":"\x"}`, ErrSyntax},
		{"trailing comma", `{"id":1,}`, ErrSyntax},
		{"trailing comma in list", `{"id":1,"result":{"tools":[{"name":"a"},]}}`, ErrSyntax},
		{"missing colon", `{"id" 1}`, ErrSyntax},
		{"batch truncated", `[{"id":1},`, ErrSyntax},
		{"duplicate id", `{"id":1,"result":{"tools":[]},"id":9}`, ErrAmbiguous},
		{"duplicate result", `{"id":1,"result":{"tools":[{"name":"x"}]},"result":{"tools":[]}}`, ErrAmbiguous},
		{"duplicate error", `{"id":1,"error":null,"error":null}`, ErrAmbiguous},
		{"case variant id", `{"ID":1,"result":{"tools":[{"name":"x"}]}}`, ErrAmbiguous},
		{"case variant result", `{"id":1,"Result":{"tools":[{"name":"x"}]},"result":{}}`, ErrAmbiguous},
		{"escaped duplicate id", `{"id":1,"\u0069d":2}`, ErrAmbiguous},
		{"ambiguity in a batch", `[{"id":9,"result":{}},{"id":1,"id":1}]`, ErrAmbiguous},
		{"list with error", `{"id":1,"result":{"tools":[]},"error":{"code":1}}`, ErrListShape},
		{"list result not object", `{"id":1,"result":[{"name":"x"}]}`, ErrListShape},
		{"list result null", `{"id":1,"result":null}`, ErrListShape},
		{"list field not array", `{"id":1,"result":{"tools":{"0":{"name":"x"}}}}`, ErrListShape},
		{"list field null", `{"id":1,"result":{"tools":null}}`, ErrListShape},
		{"case variant list field not array", `{"id":1,"result":{"tools":[],"TOOLS":"x"}}`, ErrListShape},
		{"any: field not array", `{"id":"a","result":{"resources":{}}}`, ErrListShape},
		{"too deep", `{"id":1,"x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, ErrTooDeep},
		{"too deep in item", `{"id":1,"result":{"tools":[{"name":"a","s":` + strings.Repeat("{\"a\":", MaxDepth) + "1" + strings.Repeat("}", MaxDepth) + `}]}}`, ErrTooDeep},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := FilterJSON(dst, []byte(tc.in), testLookup, allowAll)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Error() == "" {
				t.Fatalf("error %T is not *Error", err)
			}
			if string(got) != "keep" {
				t.Fatalf("dst modified on error: %q", got)
			}
		})
	}
	// Nesting up to MaxDepth is fine.
	ok := `{"id":1,"x":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`
	if _, err := FilterJSON(nil, []byte(ok), testLookup, allowAll); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
}

func TestLookupArguments(t *testing.T) {
	var seen []string
	lookup := func(id string) (Kind, bool) { seen = append(seen, id); return 0, false }
	body := `[{"id":1,"result":{}},{"id":"x\u0041","result":{}},{"id":null,"result":{}},` +
		`{"id":2,"error":{}},{"method":"m","id":3},{"id":-0,"result":1},{"id":1E2,"result":1}]`
	out, err := FilterJSON(nil, []byte(body), lookup, allowAll)
	if err != nil || string(out) != body {
		t.Fatalf("%s %v", out, err)
	}
	want := []string{"1", `"xA"`, "null", "0", "100"}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("lookup saw %q, want %q", seen, want)
	}
}

func TestAllowArguments(t *testing.T) {
	type call struct {
		k    Kind
		name string
	}
	var seen []call
	allow := func(k Kind, name string) bool { seen = append(seen, call{k, name}); return true }
	body := `{"id":"a","result":{"tools":[{"name":"t\u00e9\ud83d\ude00"},{"x":1}],"resourceTemplates":[{"uriTemplate":"u/{a}"}],"resources":[{"uri":"r\"q"}],"prompts":[{"name":""}]}}`
	if _, err := FilterJSON(nil, []byte(body), testLookup, allow); err != nil {
		t.Fatal(err)
	}
	want := []call{{Tools, "té😀"}, {ResourceTemplates, "u/{a}"}, {Resources, `r"q`}, {Prompts, ""}}
	if len(seen) != len(want) {
		t.Fatalf("allow saw %v, want %v", seen, want)
	}
	for k := range want {
		if seen[k] != want[k] {
			t.Fatalf("allow saw %v, want %v", seen, want)
		}
	}
}

func TestInvalidKindIsAnyList(t *testing.T) {
	lookup := func(string) (Kind, bool) { return 0, true }
	out, err := FilterJSON(nil, []byte(`{"id":1,"result":{"prompts":[{"name":"x"}],"content":[{"name":"x"}]}}`), lookup, allowNone)
	if err != nil || string(out) != `{"id":1,"result":{"prompts":[],"content":[{"name":"x"}]}}` {
		t.Fatalf("%s %v", out, err)
	}
}

func TestCanonicalID(t *testing.T) {
	tests := map[string]string{
		`1`:                      `1`,
		`-7`:                     `-7`,
		`0`:                      `0`,
		`-0`:                     `0`,
		`1.0`:                    `1`,
		`1e2`:                    `100`,
		`1.5`:                    `1.5`,
		`-0.0`:                   `0`,
		`123456789012345`:        `123456789012345`,
		`12345678901234567890`:   `12345678901234567000`,
		`12345678901234567891`:   `12345678901234567000`,
		`1e21`:                   `1e+21`,
		`1e400`:                  `1e400`,
		`"a"`:                    `"a"`,
		`"\u0061"`:               `"a"`,
		`"\/"`:                   `"/"`,
		`"a\"b\\c\n\u0001\t\r"`:  `"a\"b\\c\n\u0001\t\r"`,
		`"\u00e9"`:               `"é"`,
		`"\ud800"`:               "\"\ufffd\"",
		"\"\xff\"":               "\"\ufffd\"",
		`"\u2028<>&"`:            "\"\u2028<>&\"",
		`null`:                   `null`,
		`true`:                   `true`,
		`{"a":1}`:                `{"a":1}`,
		``:                       ``,
		`"unterminated`:          `"unterminated`,
		`"bad\escape"`:           `"bad\escape"`,
		`01`:                     `01`,
		`1.`:                     `1.`,
		`--1`:                    `--1`,
		`"é"`:                    `"é"`,
		`9007199254740993`:       `9007199254740992`,
		`900719925474099`:        `900719925474099`,
		`-900719925474099.0e-0`:  `-900719925474099`,
		`0.1e1`:                  `1`,
		`"\ud83d\ude00"`:         `"😀"`,
		`"x\u0000"`:              `"x\u0000"`,
		`1E+2`:                   `100`,
		`100000000000000000000`:  `100000000000000000000`,
		`1000000000000000000000`: `1e+21`,
	}
	for in, want := range tests {
		if got := CanonicalID(in); got != want {
			t.Errorf("CanonicalID(%s) = %s, want %s", in, got, want)
		}
	}
	// Every spelling encoding/json decodes to the same string gives the same id.
	for _, s := range []string{"a", "é", "\u2028", "\x00\x1f", `"\`, "😀"} {
		b, _ := json.Marshal(s)
		want := CanonicalID(string(b))
		esc := `"`
		for _, r := range s {
			if r > 0xffff {
				esc += string(r)
				continue
			}
			esc += `\u` + strconv.FormatInt(0x10000+int64(r), 16)[1:]
		}
		esc += `"`
		if got := CanonicalID(esc); got != want {
			t.Errorf("CanonicalID(%s) = %s, want %s", esc, got, want)
		}
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		k                   Kind
		method, str, field  string
		nameKey             string
		methodMapsBackExact bool
	}{
		{Tools, "tools/list", "tools", "tools", "name", true},
		{Prompts, "prompts/list", "prompts", "prompts", "name", true},
		{Resources, "resources/list", "resources", "resources", "uri", true},
		{ResourceTemplates, "resources/templates/list", "resourceTemplates", "resourceTemplates", "uriTemplate", true},
	} {
		if k, ok := KindOf(tc.method); !ok || k != tc.k {
			t.Errorf("KindOf(%q) = %v, %v", tc.method, k, ok)
		}
		if tc.k.String() != tc.str || tc.k.Field() != tc.field || tc.k.NameKey() != tc.nameKey {
			t.Errorf("%v: %q %q %q", tc.k, tc.k.String(), tc.k.Field(), tc.k.NameKey())
		}
	}
	if _, ok := KindOf("tools/call"); ok {
		t.Error("KindOf(tools/call) ok")
	}
	if AnyList.String() != "any" || AnyList.Field() != "" || Kind(0).String() != "Kind(0)" || Kind(9).NameKey() != "" {
		t.Error("AnyList / invalid kind strings")
	}
}

func TestFilterJSONKeptItemsAreExactBytes(t *testing.T) {
	body := toolsListBody(200, `"id":1`)
	keep := func(_ Kind, name string) bool { return strings.HasSuffix(name, "7") }
	out, err := FilterJSON(nil, body, testLookup, keep)
	if err != nil {
		t.Fatal(err)
	}
	var in, got struct {
		Result struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, raw := range in.Result.Tools {
		var t struct{ Name string }
		json.Unmarshal(raw, &t)
		if strings.HasSuffix(t.Name, "7") {
			want = append(want, string(raw))
		}
	}
	if len(got.Result.Tools) != len(want) || len(want) != 20 {
		t.Fatalf("kept %d items, want %d", len(got.Result.Tools), len(want))
	}
	for k := range want {
		if string(got.Result.Tools[k]) != want[k] {
			t.Fatalf("item %d changed:\n%s\n%s", k, got.Result.Tools[k], want[k])
		}
	}
	if got.Result.NextCursor != in.Result.NextCursor || got.Result.NextCursor == "" {
		t.Fatal("nextCursor lost")
	}
}
