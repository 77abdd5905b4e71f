package jsonrpc

import (
	"slices"
	"testing"
)

// Methods that name a prompt or resource somewhere other than params.name/uri expose
// it to the policy, and refuse shapes that could hide it.
func TestInspectReferences(t *testing.T) {
	var in Inspection
	for _, tc := range []struct {
		body string
		ref  RefKind
		name string
		uris []string
		code int
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"secret-prompt"},"argument":{"name":"a","value":"b"}}}`, RefPrompt, "secret-prompt", nil, 0},
		{`{"jsonrpc":"2.0","id":1,"params":{"argument":{},"ref":{"uri":"file:///etc/{x}","type":"ref/resource"}},"method":"completion/complete"}`, RefResource, "file:///etc/{x}", nil, 0},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/\u0070rompt","name":"p"}}}`, RefPrompt, "p", nil, 0},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","name":"b"}}}`, 0, "", nil, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","Name":"b"}}}`, 0, "", nil, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a"},"Ref":{}}}`, 0, "", nil, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/tool","name":"a"}}}`, 0, "", nil, CodeInvalidParams},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","uri":"a"}}}`, 0, "", nil, CodeInvalidParams},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":7}}}`, 0, "", nil, CodeInvalidParams},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{}}`, 0, "", nil, CodeInvalidParams},
		{`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["a://1","b://\u0032"]}}}`, 0, "", []string{"a://1", "b://2"}, 0},
		{`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true}}}`, 0, "", nil, 0},
		{`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a://1",{"uri":"x"}]}}}`, 0, "", nil, CodeInvalidParams},
		{`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":"a://1"}}}`, 0, "", nil, CodeInvalidParams},
		{`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a"],"resourceSubscriptions":["b"]}}}`, 0, "", nil, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a"],"ResourceSubscriptions":["b"]}}}`, 0, "", nil, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a"]},"notifications":{}}}`, 0, "", nil, CodeInvalidRequest},
	} {
		err := Inspect([]byte(tc.body), &in)
		if tc.code != 0 {
			e, _ := err.(*Error)
			if e == nil || e.Code != tc.code {
				t.Errorf("%s: error %v, want code %d", tc.body, err, tc.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		m := in.Messages[0]
		if m.Ref != tc.ref || m.Name != tc.name || !slices.Equal(m.Resources, tc.uris) {
			t.Errorf("%s: ref %d name %q uris %q", tc.body, m.Ref, m.Name, m.Resources)
		}
	}
}
