package sse

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"testing"
)

func gw(uri string) string { return "/gw/abc" + uri }

// writeAll writes in in chunks of the given sizes (cycled; 0 means all at once) and
// closes the rewriter.
func writeAll(t testing.TB, in []byte, rewrite func(string) string, sizes ...int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := NewEndpointRewriter(&out, rewrite)
	for k := 0; len(in) > 0; k++ {
		n := len(in)
		if len(sizes) > 0 && sizes[k%len(sizes)] > 0 && sizes[k%len(sizes)] < n {
			n = sizes[k%len(sizes)]
		}
		m, err := w.Write(in[:n])
		if err != nil || m != n {
			t.Fatalf("Write = %d, %v; want %d", m, err, n)
		}
		in = in[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestEndpointRewriter(t *testing.T) {
	const rest = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
	tests := []struct {
		name, in, want, uri string // uri: value passed to rewrite ("" = not called)
	}{
		{"basic LF",
			"event: endpoint\ndata: /message?sessionId=abc\n\n" + rest,
			"event: endpoint\ndata: /gw/abc/message?sessionId=abc\n\n" + rest, "/message?sessionId=abc"},
		{"CRLF",
			"event: endpoint\r\ndata: /message?sessionId=abc\r\n\r\n" + rest,
			"event: endpoint\r\ndata: /gw/abc/message?sessionId=abc\r\n\r\n" + rest, "/message?sessionId=abc"},
		{"CR",
			"event: endpoint\rdata: /m\r\r" + rest,
			"event: endpoint\rdata: /gw/abc/m\r\r" + rest, "/m"},
		{"mixed endings",
			"event: endpoint\r\ndata: /m\r\n\n",
			"event: endpoint\r\ndata: /gw/abc/m\r\n\n", "/m"},
		{"no space after colon",
			"event:endpoint\ndata:/m\n\n",
			"event:endpoint\ndata:/gw/abc/m\n\n", "/m"},
		{"two spaces keep one",
			"event: endpoint\ndata:  /m\n\n",
			"event: endpoint\ndata: /gw/abc /m\n\n", " /m"},
		{"data after event order swapped",
			"data: /m\nevent: endpoint\nid: 7\n\n",
			"data: /gw/abc/m\nevent: endpoint\nid: 7\n\n", "/m"},
		{"comment and retry first",
			": ping\n\nretry: 3000\n\n: hello\nevent: endpoint\n: inner\ndata: /m\n\n" + rest,
			": ping\n\nretry: 3000\n\n: hello\nevent: endpoint\n: inner\ndata: /gw/abc/m\n\n" + rest, "/m"},
		{"events before endpoint",
			"event: message\ndata: hello\n\ndata: x\n\nevent: endpoint\ndata: /m\n\n",
			"event: message\ndata: hello\n\ndata: x\n\nevent: endpoint\ndata: /gw/abc/m\n\n", "/m"},
		{"multiple data lines",
			"event: endpoint\ndata: /mes\r\n: c\ndata:sage\r\n\r\n",
			"event: endpoint\ndata: /gw/abc/mes\r\ndata: sage\r\n: c\n\r\n", "/mes\nsage"},
		{"absolute URI",
			"event: endpoint\ndata: http://127.0.0.1:8080/messages/?session_id=9f\n\n",
			"event: endpoint\ndata: /gw/abchttp://127.0.0.1:8080/messages/?session_id=9f\n\n",
			"http://127.0.0.1:8080/messages/?session_id=9f"},
		{"last event field wins",
			"event: endpoint\nevent: message\ndata: /a\n\nevent: message\nevent: endpoint\ndata: /b\n\n",
			"event: endpoint\nevent: message\ndata: /a\n\nevent: message\nevent: endpoint\ndata: /gw/abc/b\n\n", "/b"},
		{"endpoint without data is not an event",
			"event: endpoint\n\nevent: endpoint\ndata\n\n",
			"event: endpoint\n\nevent: endpoint\ndata:/gw/abc\n\n", ""},
		{"field name case-sensitive",
			"Event: endpoint\ndata: /a\n\nevent: endpoint\nDATA: x\ndata: /b\n\n",
			"Event: endpoint\ndata: /a\n\nevent: endpoint\nDATA: x\ndata: /gw/abc/b\n\n", "/b"},
		{"event value needs exact match",
			"event: endpoint \ndata: /a\n\nevent:  endpoint\ndata: /a\n\nevent: endpoint\ndata: /b\n\n",
			"event: endpoint \ndata: /a\n\nevent:  endpoint\ndata: /a\n\nevent: endpoint\ndata: /gw/abc/b\n\n", "/b"},
		{"BOM",
			"\xef\xbb\xbfevent: endpoint\ndata: /m\n\n",
			"\xef\xbb\xbfevent: endpoint\ndata: /gw/abc/m\n\n", "/m"},
		{"only first endpoint rewritten",
			"event: endpoint\ndata: /a\n\nevent: endpoint\ndata: /b\n\n",
			"event: endpoint\ndata: /gw/abc/a\n\nevent: endpoint\ndata: /b\n\n", "/a"},
		{"no endpoint",
			"event: message\ndata: x\n\n: ping\n\ndata: partial",
			"event: message\ndata: x\n\n: ping\n\ndata: partial", ""},
		{"incomplete endpoint at EOF",
			"event: endpoint\ndata: /m\n",
			"event: endpoint\ndata: /m\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sizes := range [][]int{{0}, {1}, {2}, {3}, {7}, {1, 5, 2}} {
				var got string
				rewrite := func(uri string) string {
					if got != "" {
						t.Fatal("rewrite called twice")
					}
					got = uri
					return gw(uri)
				}
				out := writeAll(t, []byte(tt.in), rewrite, sizes...)
				if string(out) != tt.want {
					t.Fatalf("sizes %v:\n got %q\nwant %q", sizes, out, tt.want)
				}
				if got != tt.uri {
					t.Fatalf("sizes %v: rewrite got %q, want %q", sizes, got, tt.uri)
				}
				if id := writeAll(t, []byte(tt.in), func(s string) string { return s }, sizes...); string(id) != tt.in {
					t.Fatalf("identity sizes %v:\n got %q\nwant %q", sizes, id, tt.in)
				}
			}
		})
	}
}

func TestRewriteToMultilineValue(t *testing.T) {
	out := writeAll(t, []byte("event: endpoint\r\ndata:/m\r\n\r\n"), func(string) string { return "a\nb\r\n c\rd" })
	want := "event: endpoint\r\ndata:a\r\ndata:b\r\ndata:  c\r\ndata:d\r\n\r\n"
	if string(out) != want {
		t.Fatalf("got %q want %q", out, want)
	}
}

// recorder records each Write (copying, as io.Writer requires) and the address of
// each buffer it was handed.
type recorder struct {
	buf   bytes.Buffer
	ptrs  []*byte
	err   error
	short bool
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) > 0 {
		r.ptrs = append(r.ptrs, &p[0])
	}
	if r.short {
		r.buf.Write(p[:len(p)-1])
		return len(p) - 1, nil
	}
	r.buf.Write(p)
	return len(p), nil
}

func (r *recorder) String() string { return r.buf.String() }

func TestStreamingBehaviour(t *testing.T) {
	var rec recorder
	w := NewEndpointRewriter(&rec, gw)
	write := func(s string) {
		t.Helper()
		if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	write(": ping\n")
	if !w.Pending() || rec.String() != "" {
		t.Fatalf("incomplete comment block: pending=%v out=%q", w.Pending(), rec.String())
	}
	write("\nevent: message\ndata: early\n\nevent: endp")
	// Complete events before the endpoint event are written at once.
	if got := rec.String(); got != ": ping\n\nevent: message\ndata: early\n\n" {
		t.Fatalf("complete events not written: %q", got)
	}
	if !w.Pending() || w.Done() || w.Rewritten() {
		t.Fatal("want pending, not done")
	}
	write("oint\ndata: /m\n\ndata: after")
	if w.Pending() || !w.Done() || !w.Rewritten() {
		t.Fatalf("after endpoint: pending=%v done=%v rewritten=%v", w.Pending(), w.Done(), w.Rewritten())
	}
	want := ": ping\n\nevent: message\ndata: early\n\nevent: endpoint\ndata: /gw/abc/m\n\ndata: after"
	if rec.String() != want {
		t.Fatalf("got %q want %q", rec.String(), want)
	}
	// Afterwards, the caller's buffer goes straight to dst: no copy.
	p := []byte("data: x\n\n")
	write(string(p)) // warm
	nWrites := len(rec.ptrs)
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if len(rec.ptrs) != nWrites+1 || rec.ptrs[nWrites] != &p[0] {
		t.Fatal("pass-through copied the buffer")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = NewEndpointRewriter(discard{}, gw)
	w.Write([]byte("event: endpoint\ndata: /m\n\n"))
	if allocs := testing.AllocsPerRun(100, func() { w.Write(p) }); allocs != 0 {
		t.Fatalf("pass-through allocates %v per write", allocs)
	}
}

func TestCloseFlushesPending(t *testing.T) {
	var rec recorder
	w := NewEndpointRewriter(&rec, gw)
	w.Write([]byte("data: x\n\nevent: endpoint\ndata: /m"))
	if rec.String() != "data: x\n\n" || !w.Pending() {
		t.Fatalf("out %q pending %v", rec.String(), w.Pending())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rec.String() != "data: x\n\nevent: endpoint\ndata: /m" || w.Pending() || w.Rewritten() {
		t.Fatalf("after Close: %q", rec.String())
	}
	w.Write([]byte("\n\n"))
	if rec.String() != "data: x\n\nevent: endpoint\ndata: /m\n\n" {
		t.Fatalf("write after Close: %q", rec.String())
	}
}

func TestMaxHold(t *testing.T) {
	// A stream whose first MaxHold bytes hold no endpoint event passes through unchanged.
	filler := "data: " + strings.Repeat("x", 1000) + "\n\n"
	var in strings.Builder
	for in.Len() < MaxHold-10 {
		in.WriteString(filler)
	}
	endpoint := "event: endpoint\ndata: /m\n\n"
	late := in.String() + endpoint
	for _, sizes := range [][]int{{0}, {1}, {4096}, {999}} {
		if out := writeAll(t, []byte(late), gw, sizes...); string(out) != late {
			t.Fatalf("sizes %v: late endpoint was rewritten", sizes)
		}
	}
	// Many small events before the endpoint within the limit are fine.
	early := strings.Repeat(": ping\n\n", (MaxHold-len(endpoint))/8) + endpoint
	if len(early) > MaxHold {
		t.Fatal("test setup")
	}
	want := strings.Replace(early, "/m", "/gw/abc/m", 1)
	for _, sizes := range [][]int{{0}, {1}, {333}} {
		if out := writeAll(t, []byte(early), gw, sizes...); string(out) != want {
			t.Fatalf("sizes %v: endpoint ending at %d not rewritten", sizes, len(early))
		}
	}
	// One huge line: the rewriter gives up and stops holding bytes.
	var rec recorder
	w := NewEndpointRewriter(&rec, gw)
	big := []byte("data: " + strings.Repeat("y", MaxHold))
	w.Write(big)
	if w.Pending() || !w.Done() || rec.String() != string(big) {
		t.Fatal("did not give up on an over-long event")
	}
}

func TestWriteErrors(t *testing.T) {
	boom := errors.New("boom")
	rec := &recorder{err: boom}
	w := NewEndpointRewriter(rec, gw)
	if n, err := w.Write([]byte("event: endpoint\ndata: /m\n\n")); !errors.Is(err, boom) || n != 26 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, boom) {
		t.Fatalf("sticky error: %v", err)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close = %v", err)
	}
	// Short writes are errors.
	w = NewEndpointRewriter(&recorder{short: true}, gw)
	if _, err := w.Write([]byte("data: x\n\n")); err == nil {
		t.Fatal("short write not reported")
	}
	w = NewEndpointRewriter(&recorder{short: true}, gw)
	w.Write([]byte("event: endpoint\ndata: /m\n\n"))
	if _, err := w.Write([]byte("ab")); err == nil {
		t.Fatal("short pass-through write not reported")
	}
	// Errors while held bytes are pending surface from Close.
	rec = &recorder{}
	w = NewEndpointRewriter(rec, gw)
	w.Write([]byte("data: partial"))
	rec.err = boom
	if err := w.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close = %v", err)
	}
}

// reference rewrites the whole stream at once with a deliberately simple, separate
// implementation of the same rules.
func reference(in []byte, rewrite func(string) string) []byte {
	type ln struct {
		content []byte
		start   int // offset of content
		next    int // offset after the terminator
	}
	var block []ln
	blockStart := 0
	first := true
	for i := 0; i < len(in); {
		j := i
		for j < len(in) && in[j] != '\r' && in[j] != '\n' {
			j++
		}
		if j == len(in) {
			break // incomplete line
		}
		next := j + 1
		if in[j] == '\r' && next < len(in) && in[next] == '\n' {
			next++
		}
		content, start := in[i:j], i
		if first && bytes.HasPrefix(content, []byte("\xef\xbb\xbf")) {
			content, start = content[3:], start+3
		}
		first = false
		if len(content) > 0 {
			block = append(block, ln{content, start, next})
			i = next
			continue
		}
		end := j + 1 // the block ends at the blank line's first terminator byte
		if end > MaxHold {
			return in
		}
		var evType string
		var data []string
		for _, l := range block {
			if l.content[0] == ':' {
				continue
			}
			name, value, found := strings.Cut(string(l.content), ":")
			if !found {
				value = ""
			}
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				evType = value
			case "data":
				data = append(data, value)
			}
		}
		if evType == "endpoint" && len(data) > 0 {
			old := strings.Join(data, "\n")
			uri := rewrite(old)
			if uri == old {
				return in
			}
			var out []byte
			cursor, done := blockStart, false
			for _, l := range block {
				name, _, _ := strings.Cut(string(l.content), ":")
				if l.content[0] == ':' || name != "data" {
					continue
				}
				out = append(out, in[cursor:l.start]...)
				if !done {
					eol := in[l.start+len(l.content) : l.next]
					out = appendDataLines(out, uri, l.content, eol)
					done = true
				}
				cursor = l.next
			}
			return append(append(append(in[:blockStart:blockStart], out...), in[cursor:end]...), in[end:]...)
		}
		block, blockStart, i = block[:0], end, next
	}
	return in
}

func FuzzEndpointRewriter(f *testing.F) {
	for _, s := range []string{
		"event: endpoint\ndata: /message?sessionId=abc\n\nevent: message\ndata: {}\n\n",
		"event: endpoint\r\ndata: /m\r\n\r\n",
		"event: endpoint\rdata: /m\r\r\n",
		": ping\n\nretry: 10\n\ndata: a\ndata: b\nevent: endpoint\n\n",
		"\xef\xbb\xbfevent:endpoint\ndata\n\n",
		"data: x\r\r\n\n\r\n",
	} {
		f.Add([]byte(s), int64(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed int64) {
		rng := rand.New(rand.NewSource(seed))
		sizes := make([]int, 1+rng.Intn(8))
		for i := range sizes {
			sizes[i] = 1 + rng.Intn(16)
		}
		identity := func(s string) string { return s }
		if out := writeAll(t, in, identity, sizes...); !bytes.Equal(out, in) {
			t.Fatalf("identity changed the stream:\n in %q\nout %q", in, out)
		}
		if out := writeAll(t, in, identity, 1); !bytes.Equal(out, in) {
			t.Fatalf("identity (byte by byte) changed the stream:\n in %q\nout %q", in, out)
		}
		want := reference(in, gw)
		if out := writeAll(t, in, gw, sizes...); !bytes.Equal(out, want) {
			t.Fatalf("rewrite with sizes %v:\n in %q\nout %q\nref %q", sizes, in, out, want)
		}
		if out := writeAll(t, in, gw); !bytes.Equal(out, want) {
			t.Fatalf("rewrite in one write:\n in %q\nout %q\nref %q", in, out, want)
		}
	})
}

func BenchmarkEndpointRewriter(b *testing.B) {
	in := []byte(": ping\n\nevent: endpoint\r\ndata: /message?sessionId=0123456789abcdef\r\n\r\n")
	msg := []byte("event: message\ndata: " + strings.Repeat("x", 1024) + "\n\n")
	b.ReportAllocs()
	for b.Loop() {
		w := NewEndpointRewriter(discard{}, gw)
		w.Write(in)
		for k := 0; k < 10; k++ {
			w.Write(msg)
		}
		w.Close()
	}
}

func BenchmarkPassThrough(b *testing.B) {
	w := NewEndpointRewriter(discard{}, gw)
	w.Write([]byte("event: endpoint\ndata: /m\n\n"))
	msg := []byte("event: message\ndata: " + strings.Repeat("x", 1024) + "\n\n")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		w.Write(msg)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
