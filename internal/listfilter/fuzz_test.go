package listfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// This file checks FilterJSON and SSEFilter against a reference built on
// encoding/json: the input is decoded token by token (keeping duplicate keys and key
// order), filtered by the documented rules on decoded values, and compared with the
// output decoded by encoding/json.

// node is a JSON value with object members kept in order, duplicates included.
type node struct {
	kind  byte // '{', '[', 's' string, 'n' number, 'b' bool, 'z' null
	keys  []string
	vals  []*node // object values or array elements
	str   string
	num   json.Number
	truth bool
}

func decodeOrdered(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := readNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return n, nil
}

func readNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		n := &node{kind: byte(v)}
		for dec.More() {
			if v == '{' {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k.(string))
			}
			c, err := readNode(dec)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, c)
		}
		if _, err := dec.Token(); err != nil { // closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return &node{kind: 's', str: v}, nil
	case json.Number:
		return &node{kind: 'n', num: v}, nil
	case bool:
		return &node{kind: 'b', truth: v}, nil
	default:
		return &node{kind: 'z'}, nil
	}
}

// toAny converts n to what encoding/json decodes (later duplicate keys win).
func toAny(n *node) any {
	switch n.kind {
	case '{':
		m := map[string]any{}
		for k := range n.keys {
			m[n.keys[k]] = toAny(n.vals[k])
		}
		return m
	case '[':
		a := []any{}
		for _, c := range n.vals {
			a = append(a, toAny(c))
		}
		return a
	case 's':
		return n.str
	case 'n':
		return n.num
	case 'b':
		return n.truth
	}
	return nil
}

func decodeAny(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func depthOf(data []byte) int {
	depth, max, inStr, esc := 0, 0, false, false
	for _, c := range data {
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case inStr && c == '"':
			inStr = false
		case inStr:
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			max = maxInt(max, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// refFilter filters the decoded body in place per the documented rules. It returns
// how many elements the filtered lists had and how many were dropped, or the sentinel
// error FilterJSON must return.
func refFilter(root *node, lookup Lookup, allow Allow) (items, dropped int, err error) {
	var msgs []*node
	switch root.kind {
	case '{':
		msgs = []*node{root}
	case '[':
		for _, c := range root.vals {
			if c.kind == '{' {
				msgs = append(msgs, c)
			}
		}
	}
	// Pass 1 (scanning): ambiguous members.
	for _, m := range msgs {
		seen := map[string]bool{}
		for _, k := range m.keys {
			switch k {
			case "id", "result", "error":
				if seen[k] {
					return 0, 0, ErrAmbiguous
				}
				seen[k] = true
			default:
				if strings.EqualFold(k, "id") || strings.EqualFold(k, "result") || strings.EqualFold(k, "error") {
					return 0, 0, ErrAmbiguous
				}
			}
		}
	}
	// Pass 2: list responses.
	for _, m := range msgs {
		var id, result, errv *node
		for k, key := range m.keys {
			switch key {
			case "id":
				id = m.vals[k]
			case "result":
				result = m.vals[k]
			case "error":
				errv = m.vals[k]
			}
		}
		if id == nil || result == nil {
			continue
		}
		var canon string
		switch id.kind {
		case 's':
			canon = string(appendQuote(nil, id.str))
		case 'n':
			canon = CanonicalID(id.num.String())
		case 'z':
			canon = "null"
		case 'b':
			canon = "false"
			if id.truth {
				canon = "true"
			}
		default:
			continue // raw object/array ids never match the test lookups
		}
		kind, ok := lookup(canon)
		if !ok {
			continue
		}
		if !kind.valid() {
			kind = AnyList
		}
		if errv != nil && errv.kind != 'z' {
			return 0, 0, ErrListShape
		}
		if result.kind != '{' {
			return 0, 0, ErrListShape
		}
		for k, key := range result.keys {
			var field Kind
			for f := Tools; f <= ResourceTemplates; f++ {
				if strings.EqualFold(key, f.Field()) {
					field = f
				}
			}
			if field == 0 || (kind != AnyList && field != kind) {
				continue
			}
			arr := result.vals[k]
			if arr.kind != '[' {
				return 0, 0, ErrListShape
			}
			items += len(arr.vals)
			kept := []*node{}
			for _, it := range arr.vals {
				if it.kind != '{' {
					continue
				}
				var name *node
				n, exact := 0, false
				for j, ik := range it.keys {
					if strings.EqualFold(ik, field.NameKey()) {
						n++
						exact = ik == field.NameKey()
						name = it.vals[j]
					}
				}
				if n == 1 && exact && name.kind == 's' && allow(field, name.str) {
					kept = append(kept, it)
				}
			}
			dropped += len(arr.vals) - len(kept)
			arr.vals = kept
		}
	}
	return items, dropped, nil
}

func evenNames(_ Kind, name string) bool { return len(name)%2 == 0 }

// checkFilterJSON checks FilterJSON on body against the reference for several
// policies.
func checkFilterJSON(t *testing.T, body []byte) {
	t.Helper()
	for pi, allow := range []Allow{allowAll, allowNone, evenNames} {
		out, err := FilterJSON(nil, body, testLookup, allow)
		valid := json.Valid(body)
		if !valid {
			// Usually ErrSyntax; an ambiguity or depth error found earlier in the
			// body may come first.
			if err == nil {
				t.Fatalf("policy %d: invalid JSON accepted: %q", pi, out)
			}
			continue
		}
		if errors.Is(err, ErrSyntax) {
			t.Fatalf("policy %d: valid JSON rejected: %v", pi, err)
		}
		if depthOf(body) > MaxDepth {
			if !errors.Is(err, ErrTooDeep) && !errors.Is(err, ErrAmbiguous) {
				t.Fatalf("policy %d: too deep: %v", pi, err)
			}
			continue
		}
		if errors.Is(err, ErrTooDeep) {
			t.Fatalf("policy %d: depth %d rejected", pi, depthOf(body))
		}
		root, derr := decodeOrdered(body)
		if derr != nil {
			t.Fatalf("reference decoder: %v", derr)
		}
		_, dropped, wantErr := refFilter(root, testLookup, allow)
		if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Fatalf("policy %d: error %v, want %v", pi, err, wantErr)
		}
		if err != nil {
			continue
		}
		if !json.Valid(out) {
			t.Fatalf("policy %d: invalid output %q", pi, out)
		}
		got, derr := decodeAny(out)
		if derr != nil {
			t.Fatal(derr)
		}
		want := toAny(root)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("policy %d:\n in %s\ngot %s", pi, body, out)
		}
		if dropped == 0 && !bytes.Equal(out, body) {
			t.Fatalf("policy %d: nothing dropped but bytes changed:\n in %s\ngot %s", pi, body, out)
		}
		if pi == 1 {
			checkNoneSurvive(t, out)
		}
	}
}

// checkNoneSurvive asserts that no list response in out has an element left.
func checkNoneSurvive(t *testing.T, out []byte) {
	t.Helper()
	root, err := decodeOrdered(out)
	if err != nil {
		t.Fatal(err)
	}
	if items, _, err := refFilter(root, testLookup, allowAll); err != nil || items != 0 {
		t.Fatalf("allow-none output still lists %d items (%v): %s", items, err, out)
	}
}

func jsonSeeds() []string {
	var seeds []string
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","n":1.0e+2},{"name":"bb"},{"name":"c"}],"nextCursor":"x"}}`,
		`{"result":{"_meta":{"k":[1,2]},"prompts":[{"name":"bb"},{"name":"a"}]},"jsonrpc":"2.0","id":2}`,
		`{"id":3,"result":{"resources":[{"uri":"file:///ok"},{"uri":"ab"}]}}`,
		`{"id":4,"result":{"resourceTemplates":[{"uriTemplate":"a{b}"},{"uriTemplate":"ab"}]}}`,
		`{"id":"a","result":{"tools":[{"name":"ab"}],"Prompts":[{"name":"x"},{"name":"xy"}]}}`,
		`[{"id":1,"result":{"tools":[{"name":"ab"},{"name":"a"}]}},{"id":2,"error":{"code":1}},3,{"id":"\u0061","result":{}}]`,
		`{"id":1,"result":{"tools":[{"name":"a","name":"bb"},{"Name":"ab"},{"na\u006de":"cd"},{},1]}}`,
		`{"id":1.0,"result":{"tools":[{"name":"\u00e9\ud800"}]}}`,
		`{"id":1,"result":{"tools":null}}`,
		`{"id":1,"ID":2}`,
		"{\n \"id\" : 1 ,\n \"result\" : { \"tools\" : [ { \"name\" : \"ab\" } , { \"name\" : \"a\" } ] }\n}\n",
		`[]`, `1`, `"x"`, `{}`, `{"id":1,"result":1}`,
	} {
		seeds = append(seeds, s)
	}
	return seeds
}

func TestReferenceJSON(t *testing.T) {
	for _, s := range jsonSeeds() {
		checkFilterJSON(t, []byte(s))
	}
	checkFilterJSON(t, toolsListBody(50, `"id":1`))
}

func FuzzFilterJSON(f *testing.F) {
	for _, s := range jsonSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFilterJSON(t, body)
	})
}

// checkSSE checks SSEFilter on stream: the same bytes whatever the split, and the
// dispatched events equal to the input's with each message filtered per the
// reference.
func checkSSE(t *testing.T, stream []byte, seed byte) {
	t.Helper()
	max := 0
	if seed&1 == 1 {
		max = 32 + int(seed)*2
	}
	for pi, allow := range []Allow{allowAll, allowNone, evenNames} {
		want, wantErr := runSSE(stream, testLookup, allow, max)
		for _, sizes := range [][]int{{1}, {int(seed%7) + 1, int(seed%13) + 1, int(seed) + 1}} {
			got, err := runSSE(stream, testLookup, allow, max, sizes...)
			if !bytes.Equal(got, want) || !sameErr(err, wantErr) {
				t.Fatalf("policy %d sizes %v: got %q, %v\nwant %q, %v", pi, sizes, got, err, want, wantErr)
			}
		}
		if wantErr != nil {
			continue
		}
		evIn, evOut := parseSSE(stream), parseSSE(want)
		if len(evIn) != len(evOut) {
			t.Fatalf("policy %d: %d events in, %d out\n in %q\nout %q", pi, len(evIn), len(evOut), stream, want)
		}
		for k := range evIn {
			in, out := evIn[k], evOut[k]
			if in.typ != out.typ || in.id != out.id {
				t.Fatalf("policy %d event %d: type/id %q/%q became %q/%q", pi, k, in.typ, in.id, out.typ, out.id)
			}
			if allWhitespace([]byte(in.data)) {
				if in.data != out.data {
					t.Fatalf("policy %d event %d: data %q became %q", pi, k, in.data, out.data)
				}
				continue
			}
			root, err := decodeOrdered([]byte(in.data))
			if err != nil && in.typ == "endpoint" {
				if in.data != out.data {
					t.Fatalf("policy %d event %d: endpoint data %q became %q", pi, k, in.data, out.data)
				}
				continue
			}
			if err != nil || depthOf([]byte(in.data)) > MaxDepth {
				t.Fatalf("policy %d event %d: filter accepted %q (%v)", pi, k, in.data, err)
			}
			if _, _, err := refFilter(root, testLookup, allow); err != nil {
				t.Fatalf("policy %d event %d: filter accepted %q, reference says %v", pi, k, in.data, err)
			}
			got, err := decodeAny([]byte(out.data))
			if err != nil {
				t.Fatalf("policy %d event %d: output data %q: %v", pi, k, out.data, err)
			}
			if !reflect.DeepEqual(got, toAny(root)) {
				t.Fatalf("policy %d event %d:\n in %q\ngot %q", pi, k, in.data, out.data)
			}
			if pi == 1 {
				checkNoneSurvive(t, []byte(out.data))
			}
		}
	}
}

func sameErr(a, b error) bool {
	var ea, eb *Error
	if errors.As(a, &ea) && errors.As(b, &eb) {
		return ea.Err == eb.Err
	}
	return a == b
}

func sseSeeds() []string {
	seeds := sseSplitCorpus()
	return append(seeds,
		"id: 0\ndata: \n\nevent: message\ndata: "+tProgress+"\n\ndata: "+tToolsResp+"\n\n",
		"data: {\"id\":1,\r\ndata: \"result\":{\"tools\":[{\"name\":\"x\"},\r\n: c\r\ndata:{\"name\":\"ab\"}]}}\r\n\r\n",
		"data: ["+tToolsResp+","+tPromptsResp+"]\n\n",
		"data: "+tToolsResp,
		"data: x\n\n",
		": only a comment\r\rretry: 1\r\r",
		"data\ndata\n\n",
		"event: endpoint\ndata: /message?sessionId=1\n\nevent: message\ndata: "+tToolsResp+"\n\n",
	)
}

func TestReferenceSSE(t *testing.T) {
	for _, s := range sseSeeds() {
		for _, seed := range []byte{0, 1, 6, 200} {
			checkSSE(t, []byte(s), seed)
		}
	}
}

func FuzzSSEFilter(f *testing.F) {
	for _, s := range sseSeeds() {
		f.Add([]byte(s), byte(0))
		f.Add([]byte(s), byte(5))
	}
	f.Fuzz(func(t *testing.T, stream []byte, seed byte) {
		checkSSE(t, stream, seed)
	})
}
