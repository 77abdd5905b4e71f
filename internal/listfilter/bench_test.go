package listfilter

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// realisticTool returns a tool definition of about 500 bytes, shaped like those of
// real servers (GitHub, filesystem, databases): title, a sentence-long description
// with an escape or two, an input schema and annotations.
func realisticTool(i int) string {
	return fmt.Sprintf(`{"name":"tool_%04d","title":"Search repositories %d",`+
		`"description":"Search for GitHub repositories matching a query. Returns up to `+
		`\"per_page\" results.\nUse before get_file_contents.",`+
		`"inputSchema":{"type":"object","properties":{"query":{"type":"string",`+
		`"description":"Search query (GitHub syntax), e.g. \"language:go stars:>100\""},`+
		`"page":{"type":"number","minimum":1},`+
		`"perPage":{"type":"number","maximum":100}},"required":["query"],`+
		`"additionalProperties":false},"annotations":{"readOnlyHint":true,"openWorldHint":true}}`, i, i)
}

// toolsListBody returns a tools/list response with n tools and a nextCursor.
func toolsListBody(n int, idMember string) []byte {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0",` + idMember + `,"result":{"tools":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(realisticTool(i))
	}
	b.WriteString(`],"nextCursor":"eyJvZmZzZXQiOjEwMDB9"}}`)
	return []byte(b.String())
}

// benchPolicy allows every other tool by a map lookup, like a policy with an
// explicit tool list.
func benchPolicy(n int) Allow {
	allowed := make(map[string]bool, n)
	for i := 0; i < n; i += 2 {
		allowed[fmt.Sprintf("tool_%04d", i)] = true
	}
	return func(_ Kind, name string) bool { return allowed[name] }
}

func TestRealisticToolSize(t *testing.T) {
	body := toolsListBody(1000, `"id":1`)
	per := len(body) / 1000
	if per < 450 || per > 600 {
		t.Fatalf("tool size %d bytes, want ~500", per)
	}
}

func BenchmarkFilterJSON1000Tools(b *testing.B) {
	body := toolsListBody(1000, `"id":1`)
	allow := benchPolicy(1000)
	dst := make([]byte, 0, len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out, err := FilterJSON(dst[:0], body, testLookup, allow)
		if err != nil || len(out) >= len(body) {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterJSON1000ToolsAllowAll measures the common case of nothing dropped
// (one copy of the body).
func BenchmarkFilterJSON1000ToolsAllowAll(b *testing.B) {
	body := toolsListBody(1000, `"id":1`)
	dst := make([]byte, 0, len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := FilterJSON(dst[:0], body, testLookup, allowAll); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterJSON1000ToolsColdDst includes allocating the output buffer.
func BenchmarkFilterJSON1000ToolsColdDst(b *testing.B) {
	body := toolsListBody(1000, `"id":1`)
	allow := benchPolicy(1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := FilterJSON(nil, body, testLookup, allow); err != nil {
			b.Fatal(err)
		}
	}
}

func sseStream(body []byte) []byte {
	return []byte("id: 0\ndata: \n\n" + // priming event
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n" +
		"event: message\nid: 1\ndata: " + string(body) + "\n\n")
}

// BenchmarkSSEFilter1000Tools filters a POST's event stream (priming event, a
// notification, the 1,000-tool response) with a new SSEFilter per response, as the
// gateway does, written in one piece or in the 32 KiB pieces of Caddy's proxy copy
// buffer.
func BenchmarkSSEFilter1000Tools(b *testing.B) {
	stream := sseStream(toolsListBody(1000, `"id":1`))
	allow := benchPolicy(1000)
	for _, chunk := range []int{0, 32 << 10} {
		name := "oneWrite"
		if chunk > 0 {
			name = "32KiBWrites"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				w := NewSSEFilter(io.Discard, testLookup, allow)
				p := stream
				for len(p) > 0 {
					n := len(p)
					if chunk > 0 && chunk < n {
						n = chunk
					}
					if _, err := w.Write(p[:n]); err != nil {
						b.Fatal(err)
					}
					p = p[n:]
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSSEFilterSmallEvents measures the per-event overhead for a stream of
// progress notifications (nothing to filter).
func BenchmarkSSEFilterSmallEvents(b *testing.B) {
	ev := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n"
	stream := []byte(strings.Repeat(ev, 1000))
	var sink bytes.Buffer
	sink.Grow(len(stream))
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		sink.Reset()
		w := NewSSEFilter(&sink, testLookup, allowAll)
		if _, err := w.Write(stream); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}
