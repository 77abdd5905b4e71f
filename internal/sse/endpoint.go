// Package sse rewrites the endpoint event of the legacy MCP HTTP+SSE transport
// (protocol 2024-11-05) as the stream passes through the gateway.
//
// In that transport the client opens GET /sse; the server answers text/event-stream and
// its first event is
//
//	event: endpoint
//	data: /message?sessionId=abc
//
// naming the URI (relative or absolute) the client must POST its messages to. The
// gateway rewrites that URI to its own public path; every other byte passes through
// untouched. The package uses only the standard library.
package sse

import (
	"bytes"
	"io"
	"strings"
)

// MaxHold is how far into the stream the endpoint event must end for it to be
// rewritten. If the first MaxHold bytes hold no complete endpoint event, the
// EndpointRewriter gives up and passes the whole stream through unchanged. The
// decision depends only on the byte stream, not on how it was split into writes.
const MaxHold = 64 << 10

// EndpointRewriter is an io.Writer filter over an SSE stream (the body of a
// text/event-stream response). Until the first complete event whose event type is
// "endpoint" it parses the stream per the WHATWG Server-Sent Events rules (CRLF, LF or
// CR line endings, comment lines, any field order, "data:" with or without a space,
// multiple data lines, a leading BOM). Each complete event before it is written to dst
// unchanged as soon as it is complete, and only the current incomplete event is held
// back. The endpoint event's data value is passed to the rewrite function and its data
// lines are replaced by the result; its other lines (event, id, retry, comments) and
// line endings are kept. If rewrite returns its argument unchanged, the event is
// written byte for byte. From then on, Write hands each buffer to dst directly, with no
// copying or buffering.
//
// An event of type "endpoint" with no data line is not dispatched by SSE clients, so it
// is passed through and the search continues.
//
// Use: wrap the upstream response body copy — for each chunk read from upstream, call
// Write, then Flush the http.ResponseWriter (as for any SSE stream). Flushing is always
// safe: whatever Write has passed to dst is complete events or, after the endpoint
// event, raw stream bytes; held-back bytes simply arrive later. When the upstream body
// ends (EOF or error), call Close so that a trailing incomplete event is not lost.
//
// An EndpointRewriter is not safe for concurrent use.
type EndpointRewriter struct {
	dst     io.Writer
	rewrite func(uri string) string

	buf        []byte // held bytes; buf[0:blockStart] are complete events not yet written
	blockStart int    // start of the current (incomplete) event block in buf
	lineStart  int    // start of the current incomplete line in buf
	scan       int    // bytes of buf already scanned for line endings
	lines      []line // complete data and event lines of the current block
	consumed   int64  // stream offset of buf[0]
	crPending  bool   // the last line ended with CR: a following LF belongs to it
	first      bool   // the next line is the stream's first (may start with a BOM)

	passthrough bool
	rewritten   bool
	err         error
}

// line is one complete line of the current block: content buf[start:end], line
// terminator buf[end:next].
type line struct{ start, end, next int }

// NewEndpointRewriter returns a rewriter writing to dst. rewrite receives the
// endpoint event's data (the URI as the server sent it) and returns the URI the client
// should see; it is called at most once, and may also record the original URI (e.g. to
// keep the session's POSTs on the same upstream).
func NewEndpointRewriter(dst io.Writer, rewrite func(uri string) string) *EndpointRewriter {
	return &EndpointRewriter{dst: dst, rewrite: rewrite, first: true}
}

// Pending reports whether the rewriter holds bytes that have not yet been written to
// dst: an incomplete event before (or being) the endpoint event. It is false once the
// endpoint event has been written or the rewriter gave up (MaxHold) or was closed.
// When Pending is false, everything passed to Write so far has been passed to dst, so
// a flush of the underlying ResponseWriter delivers all of it. When it is true, the
// caller should still flush (complete events already written are delivered) but must
// not assume the client has seen everything; the held bytes follow when their event
// completes, when MaxHold is exceeded, or at Close.
func (w *EndpointRewriter) Pending() bool {
	return !w.passthrough && len(w.buf) > 0
}

// Rewritten reports whether the endpoint event was found and passed to rewrite.
func (w *EndpointRewriter) Rewritten() bool { return w.rewritten }

// Done reports whether the rewriter now passes writes straight through (the endpoint
// event was handled, MaxHold was exceeded, or Close was called).
func (w *EndpointRewriter) Done() bool { return w.passthrough }

// Close writes any held-back bytes to dst unchanged and switches to pass-through (later
// Writes still reach dst). Call it when the upstream stream ends. It does not close dst.
func (w *EndpointRewriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.passthrough {
		return nil
	}
	w.passthrough = true
	err := w.emit(w.buf)
	w.release()
	return err
}

// Write implements io.Writer. It returns len(p) unless dst fails; an error from dst is
// returned by this and every later call.
func (w *EndpointRewriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.passthrough {
		n, err := w.dst.Write(p)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		if err != nil {
			w.err = err
		}
		return n, err
	}
	w.buf = append(w.buf, p...)
	w.process()
	if w.err != nil {
		return len(p), w.err
	}
	return len(p), nil
}

// process scans the newly appended bytes, writes complete non-endpoint events, and
// handles the endpoint event or the MaxHold limit.
func (w *EndpointRewriter) process() {
	for w.scan < len(w.buf) {
		if w.crPending {
			w.crPending = false
			if w.buf[w.scan] == '\n' {
				// Second byte of a CRLF whose CR ended the previous line.
				if n := len(w.lines); n > 0 && w.lines[n-1].next == w.scan {
					w.lines[n-1].next++
				}
				w.scan++
				w.lineStart = w.scan
				continue
			}
		}
		i := bytes.IndexAny(w.buf[w.scan:], "\r\n")
		if i < 0 {
			w.scan = len(w.buf)
			break
		}
		end := w.scan + i
		w.crPending = w.buf[end] == '\r'
		w.scan = end + 1
		l := line{start: w.lineStart, end: end, next: end + 1}
		w.lineStart = w.scan
		if w.first {
			w.first = false
			if bytes.HasPrefix(w.buf[l.start:l.end], bom) {
				l.start += len(bom)
			}
		}
		if l.start != l.end {
			// Only data and event lines matter; others stay in the raw bytes.
			if name, _, ok := w.field(l); ok && (string(name) == "data" || string(name) == "event") {
				w.lines = append(w.lines, l)
			}
			continue
		}
		// A blank line: the block buf[blockStart:l.next] is complete.
		if w.consumed+int64(l.next) > MaxHold {
			w.giveUp()
			return
		}
		if w.isEndpoint() {
			w.handleEndpoint(l.next)
			return
		}
		w.blockStart = l.next
		w.lines = w.lines[:0]
	}
	if w.consumed+int64(len(w.buf)) > MaxHold {
		w.giveUp()
		return
	}
	// Write the complete events and keep only the current block.
	if w.blockStart > 0 {
		if w.emit(w.buf[:w.blockStart]) != nil {
			return
		}
		w.consumed += int64(w.blockStart)
		n := copy(w.buf, w.buf[w.blockStart:])
		w.buf = w.buf[:n]
		for k := range w.lines {
			w.lines[k].start -= w.blockStart
			w.lines[k].end -= w.blockStart
			w.lines[k].next -= w.blockStart
		}
		w.scan -= w.blockStart
		w.lineStart -= w.blockStart
		w.blockStart = 0
	}
}

var bom = []byte("\xef\xbb\xbf")

// field splits an SSE line into field name and value (one leading space removed).
// Comment lines return ok == false.
func (w *EndpointRewriter) field(l line) (name, value []byte, ok bool) {
	s := w.buf[l.start:l.end]
	if len(s) > 0 && s[0] == ':' {
		return nil, nil, false
	}
	i := bytes.IndexByte(s, ':')
	if i < 0 {
		return s, nil, true
	}
	value = s[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return s[:i], value, true
}

// isEndpoint reports whether the current block dispatches an event of type
// "endpoint": its last event field says so and it has at least one data line.
func (w *EndpointRewriter) isEndpoint() bool {
	var eventType []byte
	hasData := false
	for _, l := range w.lines {
		name, value, ok := w.field(l)
		if !ok {
			continue
		}
		switch string(name) {
		case "event":
			eventType = value
		case "data":
			hasData = true
		}
	}
	return hasData && string(eventType) == "endpoint"
}

// handleEndpoint rewrites the endpoint block buf[blockStart:end], writes everything
// held up to and including it, then the rest of buf, and switches to pass-through.
func (w *EndpointRewriter) handleEndpoint(end int) {
	var values []string
	firstData := -1
	for k, l := range w.lines {
		if name, value, ok := w.field(l); ok && string(name) == "data" {
			if firstData < 0 {
				firstData = k
			}
			values = append(values, string(value))
		}
	}
	old := strings.Join(values, "\n")
	uri := w.rewrite(old)
	w.rewritten = true
	w.passthrough = true

	var out []byte
	if uri == old {
		out = w.buf[:end]
	} else {
		out = make([]byte, 0, end+len(uri)+16)
		cursor := 0
		for k, l := range w.lines {
			name, _, ok := w.field(l)
			if !ok || string(name) != "data" {
				continue
			}
			out = append(out, w.buf[cursor:l.start]...)
			cursor = l.next
			if k == firstData {
				out = appendDataLines(out, uri, w.buf[l.start:l.end], w.buf[l.end:l.next])
			}
		}
		out = append(out, w.buf[cursor:end]...)
	}
	if w.emit(out) == nil && end < len(w.buf) {
		w.emit(w.buf[end:])
	}
	w.release()
}

// appendDataLines appends value as data lines, in the style of the original line orig
// ("data:" or "data: ") with terminator eol. Line breaks in value (CRLF, CR or LF)
// start a new data line, so the client reassembles the same value (with LF).
func appendDataLines(out []byte, value string, orig, eol []byte) []byte {
	prefix := "data:"
	if bytes.HasPrefix(orig, []byte("data: ")) {
		prefix = "data: "
	}
	for {
		i := strings.IndexAny(value, "\r\n")
		piece := value
		if i >= 0 {
			piece = value[:i]
		}
		out = append(out, prefix...)
		if prefix == "data:" && strings.HasPrefix(piece, " ") {
			out = append(out, ' ') // keep the value's own leading space
		}
		out = append(out, piece...)
		out = append(out, eol...)
		if i < 0 {
			return out
		}
		if value[i] == '\r' && i+1 < len(value) && value[i+1] == '\n' {
			i++
		}
		value = value[i+1:]
	}
}

// giveUp writes everything held unchanged and switches to pass-through.
func (w *EndpointRewriter) giveUp() {
	w.passthrough = true
	w.emit(w.buf)
	w.release()
}

func (w *EndpointRewriter) release() {
	w.buf, w.lines = nil, nil
}

func (w *EndpointRewriter) emit(b []byte) error {
	if len(b) == 0 || w.err != nil {
		return w.err
	}
	n, err := w.dst.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
	}
	return err
}
