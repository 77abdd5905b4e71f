package listfilter

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

var ssePolicy = allowSet("tools:a", "tools:c", "prompts:p1")

// runSSE writes in to a new SSEFilter in chunks of the given sizes (cycled; none
// means one Write) and closes it.
func runSSE(in []byte, lookup Lookup, allow Allow, max int, sizes ...int) ([]byte, error) {
	var out bytes.Buffer
	w := NewSSEFilter(&out, lookup, allow)
	if max > 0 {
		w.SetMaxEventSize(max)
	}
	for k := 0; len(in) > 0; k++ {
		n := len(in)
		if len(sizes) > 0 && sizes[k%len(sizes)] > 0 && sizes[k%len(sizes)] < n {
			n = sizes[k%len(sizes)]
		}
		m, err := w.Write(in[:n])
		if err != nil {
			return out.Bytes(), err
		}
		if m != n {
			return out.Bytes(), io.ErrShortWrite
		}
		in = in[n:]
	}
	err := w.Close()
	return out.Bytes(), err
}

const (
	tToolsResp   = `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"x"},{"name":"a"},{"name":"b"}],"nextCursor":"n"}}`
	tToolsFilt   = `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"nextCursor":"n"}}`
	tProgress    = `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"result":{"tools":[{"name":"x"}]}}}`
	tServerReq   = `{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{"tools":[{"name":"x"}]}}`
	tErrorResp   = `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad cursor"}}`
	tPromptsResp = `{"result":{"prompts":[{"name":"p1"},{"name":"p2"}]},"jsonrpc":"2.0","id":2}`
	tPromptsFilt = `{"result":{"prompts":[{"name":"p1"}]},"jsonrpc":"2.0","id":2}`
)

func TestSSEFilter(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"priming, notifications, response",
			"id: 0\ndata: \n\n" +
				"event: message\ndata: " + tProgress + "\n\n" +
				"event: message\ndata: " + tServerReq + "\n\n" +
				"event: message\nid: 7\ndata: " + tToolsResp + "\n\n",
			"id: 0\ndata: \n\n" +
				"event: message\ndata: " + tProgress + "\n\n" +
				"event: message\ndata: " + tServerReq + "\n\n" +
				"event: message\nid: 7\ndata: " + tToolsFilt + "\n\n"},
		{"CRLF",
			"id: 0\r\ndata:\r\n\r\nevent: message\r\ndata: " + tProgress + "\r\n\r\nevent: message\r\ndata: " + tToolsResp + "\r\nid: 9\r\n\r\n",
			"id: 0\r\ndata:\r\n\r\nevent: message\r\ndata: " + tProgress + "\r\n\r\nevent: message\r\ndata: " + tToolsFilt + "\r\nid: 9\r\n\r\n"},
		{"CR",
			"retry: 1000\r\rdata: " + tToolsResp + "\r\r",
			"retry: 1000\r\rdata: " + tToolsFilt + "\r\r"},
		{"mixed line endings",
			"data: " + tToolsResp + "\r\n: c\r\n",
			"data: " + tToolsFilt + "\r\n: c\r\n"},
		{"no space after colon",
			"data:" + tToolsResp + "\n\n",
			"data: " + tToolsFilt + "\n\n"},
		{"several data lines joined, comments and fields kept in place",
			"id: 5\r\ndata: {\"id\":1,\r\n: comment\r\ndata: \"result\":{\"tools\":[{\"name\":\"x\"},\r\ndata:{\"name\":\"a\"}]}}\r\nretry: 10\r\n\r\n",
			"id: 5\r\ndata: {\"id\":1, \"result\":{\"tools\":[{\"name\":\"a\"}]}}\r\n: comment\r\nretry: 10\r\n\r\n"},
		{"several data lines, unchanged, byte for byte",
			"data: {\"id\":1,\ndata:\"result\":{\"tools\":[{\"name\":\"a\"}]}}\n\n",
			"data: {\"id\":1,\ndata:\"result\":{\"tools\":[{\"name\":\"a\"}]}}\n\n"},
		{"error response untouched",
			"event: message\ndata: " + tErrorResp + "\n\n",
			"event: message\ndata: " + tErrorResp + "\n\n"},
		{"batch in one event",
			"data: [" + tToolsResp + "," + tPromptsResp + "]\n\n",
			"data: [" + tToolsFilt + "," + tPromptsFilt + "]\n\n"},
		{"one event per response",
			"data: " + tPromptsResp + "\n\ndata: " + tToolsResp + "\n\n",
			"data: " + tPromptsFilt + "\n\ndata: " + tToolsFilt + "\n\n"},
		{"leading BOM",
			"\xef\xbb\xbfdata: " + tToolsResp + "\n\n",
			"\xef\xbb\xbfdata: " + tToolsFilt + "\n\n"},
		{"events without data",
			": keepalive\n\nretry: 5\n\nid: 1\nevent: x\n\n\n\n",
			": keepalive\n\nretry: 5\n\nid: 1\nevent: x\n\n\n\n"},
		{"whitespace-only data passes",
			"data:\ndata:\n\ndata:  \n\n",
			"data:\ndata:\n\ndata:  \n\n"},
		{"data field without colon",
			"data\n\ndata: " + tToolsResp + "\ndata\n\n",
			"data\n\ndata: " + tToolsFilt + " \n\n"},
		{"other event types are filtered too",
			"event: custom\ndata: " + tToolsResp + "\n\n",
			"event: custom\ndata: " + tToolsFilt + "\n\n"},
		{"not a data field",
			"datax: " + tToolsResp + "\nData: " + tToolsResp + "\n\n",
			"datax: " + tToolsResp + "\nData: " + tToolsResp + "\n\n"},
		{"trailing event without blank line is filtered at Close",
			"data: " + tToolsResp + "\n",
			"data: " + tToolsFilt + "\n"},
		{"trailing partial line at Close",
			"data: " + tToolsResp,
			"data: " + tToolsFilt},
		{"trailing comment at Close",
			"data: " + tToolsResp + "\n\n: bye",
			"data: " + tToolsFilt + "\n\n: bye"},
		{"empty stream", "", ""},
		{"legacy endpoint event passes, later events filtered",
			"event: endpoint\ndata: /message?sessionId=abc\n\nevent: message\ndata: " + tToolsResp + "\n\n",
			"event: endpoint\ndata: /message?sessionId=abc\n\nevent: message\ndata: " + tToolsFilt + "\n\n"},
		{"endpoint event with JSON data is filtered",
			"event:endpoint\ndata: " + tToolsResp + "\n\n",
			"event:endpoint\ndata: " + tToolsFilt + "\n\n"},
		{"removed data line between CR and LF lines (fuzz)",
			"data\rdata:" + tToolsResp + "\n\n",
			"data:  " + tToolsFilt + "\r\n\n"},
		{"removed data line after a CR comment",
			"data: {\"id\":1,\n: c\rdata: \"result\":{\"tools\":[{\"name\":\"x\"}]}}\n\n",
			"data: {\"id\":1, \"result\":{\"tools\":[]}}\n: c\r\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runSSE([]byte(tc.in), testLookup, ssePolicy, 0)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
			// Any split gives the same bytes.
			for _, sizes := range [][]int{{1}, {2}, {3, 1, 7}, {64}} {
				got, err := runSSE([]byte(tc.in), testLookup, ssePolicy, 0, sizes...)
				if err != nil || string(got) != tc.want {
					t.Fatalf("sizes %v: got %q, %v", sizes, got, err)
				}
			}
		})
	}
}

// The "data field without colon" case: "data" adds an empty line to the data, so the
// message ends with "\n", which becomes a space in the rewritten single line.
func TestSSEDataWithoutColonSemantics(t *testing.T) {
	got, err := runSSE([]byte("data: "+tToolsResp+"\ndata\n\n"), testLookup, ssePolicy, 0)
	if err != nil {
		t.Fatal(err)
	}
	ev := parseSSE(got)
	if len(ev) != 1 || ev[0].data != tToolsFilt+" " {
		t.Fatalf("%q", ev)
	}
}

func sseSplitCorpus() []string {
	return []string{
		"\xef\xbb\xbfid: 0\r\ndata:\r\n\r\n: c\r\nevent: message\r\ndata: " + tProgress + "\r\n\r\n" +
			"data: {\"id\":1,\r\ndata: \"result\":{\"tools\":[{\"name\":\"x\"},{\"name\":\"a\"}]}}\r\nid: 3\r\n\r\n" +
			"data: " + tPromptsResp + "\r\r" + "data: " + tToolsResp + "\n\n: end\r",
		"id: 0\ndata: \n\nevent: message\ndata: " + tToolsResp + "\n\n",
		"data: " + tToolsResp + "\r\r\n\rdata: " + tToolsResp + "\r\n\r\n",
	}
}

func TestSSESplitEverywhere(t *testing.T) {
	for ci, in := range sseSplitCorpus() {
		want, err := runSSE([]byte(in), testLookup, ssePolicy, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Every single split point, then every pair of split points.
		for i := 0; i <= len(in); i++ {
			got, err := runSSE([]byte(in), testLookup, ssePolicy, 0, i, len(in))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("corpus %d split at %d: got %q, %v\nwant %q", ci, i, got, err, want)
			}
		}
		if ci > 0 {
			continue // pairs on the first (richest) stream only
		}
		for i := 1; i < len(in); i++ {
			for j := 1; i+j < len(in); j++ {
				got, err := runSSE([]byte(in), testLookup, ssePolicy, 0, i, j, len(in))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("splits at %d and %d: got %q, %v", i, i+j, got, err)
				}
			}
		}
		// Semantics: the same events are dispatched, with filtered data.
		evIn, evOut := parseSSE([]byte(in)), parseSSE(want)
		if len(evIn) != len(evOut) {
			t.Fatalf("%d events in, %d out", len(evIn), len(evOut))
		}
	}
}

func TestSSEWritesCompleteEventsDuringWrite(t *testing.T) {
	var out bytes.Buffer
	w := NewSSEFilter(&out, testLookup, ssePolicy)
	ev := "data: " + tToolsResp + "\n"
	if _, err := w.Write([]byte(ev)); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || !w.Pending() {
		t.Fatalf("incomplete event written: %q", out.String())
	}
	if _, err := w.Write([]byte("\n: ping\n")); err != nil {
		t.Fatal(err)
	}
	if out.String() != "data: "+tToolsFilt+"\n\n" || !w.Pending() {
		t.Fatalf("after blank line: %q", out.String())
	}
	if _, err := w.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	if out.String() != "data: "+tToolsFilt+"\n\n: ping\n\n" || w.Pending() {
		t.Fatalf("after second event: %q", out.String())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("data: 1\n\n")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSSEDoesNotRetainCallerBuffer(t *testing.T) {
	in := []byte("data: " + tToolsResp + "\n\n")
	var out bytes.Buffer
	w := NewSSEFilter(&out, testLookup, ssePolicy)
	half := len(in) / 2
	buf := append([]byte(nil), in[:half]...)
	if _, err := w.Write(buf); err != nil {
		t.Fatal(err)
	}
	for k := range buf {
		buf[k] = 'X'
	}
	if _, err := w.Write(in[half:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "data: "+tToolsFilt+"\n\n" {
		t.Fatalf("%q", out.String())
	}
}

func TestSSEErrors(t *testing.T) {
	good := "data: " + tProgress + "\n\n"
	tests := []struct {
		name, in string
		max      int
		want     error
		written  string
	}{
		{"invalid JSON", good + "data: {\"id\":1,\n\n" + good, 0, ErrSyntax, good},
		{"not JSON", good + "data: hello\n\n", 0, ErrSyntax, good},
		{"not JSON, type message", good + "event: message\ndata: /message\n\n", 0, ErrSyntax, good},
		{"not JSON, endpoint type overridden", good + "event: endpoint\nevent: x\ndata: /message\n\n", 0, ErrSyntax, good},
		{"endpoint type but ambiguous JSON", "event: endpoint\ndata: {\"id\":1,\"id\":2}\n\n", 0, ErrAmbiguous, ""},
		{"ambiguous", good + "data: {\"id\":1,\"ID\":2,\"result\":{}}\n\n", 0, ErrAmbiguous, good},
		{"list shape", "data: {\"id\":1,\"result\":{\"tools\":{}}}\n\n", 0, ErrListShape, ""},
		{"event too large", good + "data: " + tProgress + " \n\n", len(good), ErrEventTooLarge, good},
		{"pending event too large", good + "data: " + tProgress + "   ", len(good), ErrEventTooLarge, good},
		{"comment-only event too large", good + ":" + strings.Repeat("x", len(good)) + "\n\n", len(good), ErrEventTooLarge, good},
		{"truncated at Close", good + "data: {\"id\":1,\"result\":{\"tools\":[", 0, ErrSyntax, good},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, sizes := range [][]int{nil, {1}, {5}} {
				got, err := runSSE([]byte(tc.in), testLookup, ssePolicy, tc.max, sizes...)
				if !errors.Is(err, tc.want) {
					t.Fatalf("sizes %v: error %v, want %v", sizes, err, tc.want)
				}
				if string(got) != tc.written {
					t.Fatalf("sizes %v: wrote %q, want %q", sizes, got, tc.written)
				}
			}
		})
	}
	// Exactly the limit is fine.
	if _, err := runSSE([]byte(good+good), testLookup, ssePolicy, len(good)); err != nil {
		t.Fatalf("event of exactly max size: %v", err)
	}
	// The error sticks.
	var out bytes.Buffer
	w := NewSSEFilter(&out, testLookup, ssePolicy)
	_, err := w.Write([]byte("data: x\n\n"))
	if !errors.Is(err, ErrSyntax) {
		t.Fatal(err)
	}
	if _, err2 := w.Write([]byte(good)); err2 != err {
		t.Fatalf("later Write: %v", err2)
	}
	if err2 := w.Close(); err2 != err {
		t.Fatalf("Close: %v", err2)
	}
	if out.Len() != 0 {
		t.Fatalf("wrote %q", out.String())
	}
}

type failWriter struct {
	n   int // successful writes left
	out bytes.Buffer
}

var errDst = errors.New("client gone")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errDst
	}
	f.n--
	return f.out.Write(p)
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestSSEDestinationErrors(t *testing.T) {
	fw := &failWriter{n: 1}
	w := NewSSEFilter(fw, testLookup, ssePolicy)
	if _, err := w.Write([]byte("data: " + tProgress + "\n\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("data: " + tToolsResp + "\n\n")); err != errDst {
		t.Fatalf("Write: %v", err)
	}
	if _, err := w.Write([]byte("data: " + tProgress + "\n\n")); err != errDst {
		t.Fatalf("later Write: %v", err)
	}
	if err := w.Close(); err != errDst {
		t.Fatalf("Close: %v", err)
	}
	w = NewSSEFilter(shortWriter{}, testLookup, ssePolicy)
	if _, err := w.Write([]byte("data: " + tProgress + "\n\n")); err != io.ErrShortWrite {
		t.Fatalf("short write: %v", err)
	}
}

func TestSSELargeEventAcrossManyWrites(t *testing.T) {
	body := toolsListBody(1000, `"id":1`)
	in := sseStream(body)
	allow := benchPolicy(1000)
	want, err := FilterJSON(nil, body, testLookup, allow)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1000, 32 << 10, 100 << 10} {
		got, err := runSSE(in, testLookup, allow, 0, size)
		if err != nil {
			t.Fatal(err)
		}
		ev := parseSSE(got)
		if len(ev) != 3 || ev[0].data != "" || ev[0].id != "0" || ev[2].data != string(want) || ev[2].id != "1" {
			t.Fatalf("size %d: %d events", size, len(ev))
		}
	}
	// A limit just below the event size fails it, wherever the writes split.
	for _, size := range []int{0, 1000, 32 << 10} {
		_, err := runSSE(in, testLookup, allow, len(body), size)
		if !errors.Is(err, ErrEventTooLarge) {
			t.Fatalf("size %d: %v", size, err)
		}
	}
}

// sseEvent is one event as an SSE client dispatches it.
type sseEvent struct{ typ, data, id string }

// parseSSE is a reference parser following the WHATWG event-stream interpretation:
// events are dispatched at blank lines only (an incomplete event at the end is
// discarded), and only if they have a data line (the priming event's empty data line
// dispatches an event with empty data).
func parseSSE(b []byte) []sseEvent {
	b = bytes.TrimPrefix(b, bom)
	var evs []sseEvent
	var typ, lastID string
	var data strings.Builder
	hasData := false
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			break // incomplete line: discarded at end of stream
		}
		line := string(b[:i])
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i++
		}
		b = b[i+1:]
		if line == "" {
			if hasData {
				t := typ
				if t == "" {
					t = "message"
				}
				evs = append(evs, sseEvent{t, strings.TrimSuffix(data.String(), "\n"), lastID})
			}
			typ, hasData = "", false
			data.Reset()
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch name {
		case "event":
			typ = value
		case "data":
			hasData = true
			data.WriteString(value)
			data.WriteByte('\n')
		case "id":
			if !strings.Contains(value, "\x00") {
				lastID = value
			}
		}
	}
	return evs
}
