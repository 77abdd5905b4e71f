package listfilter

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sync"
)

// DefaultMaxEventSize is an SSEFilter's default limit on the size of one event, line
// terminators included.
const DefaultMaxEventSize = 16 << 20

// chunkSize bounds how much of a Write is appended to a held incomplete event at a
// time, so that the held bytes never exceed the event limit by more than this.
const chunkSize = 64 << 10

// SSEFilter is an io.Writer filter over a text/event-stream body: the answer to a POST
// (zero or more server requests and notifications, then the response) or any other
// MCP event stream. It parses the stream per the WHATWG Server-Sent Events rules
// (CRLF, LF or CR line endings, a leading BOM, comment lines, any field order, "data:"
// with or without a space, several data lines joined with LF) and passes each event's
// data — one JSON-RPC message or batch — through the same filter as FilterJSON.
//
// An event whose message is unchanged, or that has no data (such as the priming event
// of protocol 2025-11-25: an id and an empty data line), is written byte for byte. An
// event with dropped items is rewritten: its data lines are replaced by a single
// "data: " line holding the filtered message (line breaks between JSON tokens become
// spaces) with the first data line's terminator, at the first data line's place; its
// id, event and retry fields, comments and the blank line that ends it stay where they
// were. Data that is only JSON whitespace (no message) passes unchanged, and so does
// the data of an event of type "endpoint" that is not JSON (the first event of the
// legacy 2024-11-05 GET /sse stream, a URI; see internal/sse). The event type does not
// matter otherwise: events of any other type are filtered (the go-sdk's legacy SSE
// client reads every event after the first as a message, whatever its type).
//
// Complete events are written to dst during the Write that completes them; only the
// current incomplete event is held back, up to the maximum event size
// (DefaultMaxEventSize unless SetMaxEventSize). Use: for each chunk read from upstream,
// call Write, then flush the http.ResponseWriter; every event completed by that chunk
// is then delivered. When the upstream body ends, call Close.
//
// Errors fail closed: an event that is too large, whose data is not valid JSON, or
// whose message FilterJSON would reject is dropped — nothing of it is written — and
// Write returns a *Error (events before it have been written). The error, or an error
// from dst, is returned by every later Write and by Close; the caller should end the
// response.
//
// An SSEFilter is not safe for concurrent use.
type SSEFilter struct {
	dst io.Writer
	max int
	s   *sseScratch // nil once closed or failed

	cur        []byte  // bytes being processed: s.buf, or the caller's buffer
	offset     int64   // stream offset of cur[0]
	blockStart int     // start of the current event in cur
	emitStart  int     // cur[emitStart:blockStart] is unchanged events not yet written
	lineStart  int     // start of the current incomplete line in cur
	scan       int     // bytes of cur already searched for line endings
	typ        sseLine // the current event's last "event" line, if hasType
	hasType    bool
	crPending  bool // the last line ended with CR: a following LF belongs to it
	first      bool // the next line is the stream's first (may start with a BOM)
	closed     bool
	err        error
}

// sseScratch is an SSEFilter's reusable memory, pooled between responses.
type sseScratch struct {
	f      filter
	buf    []byte    // held bytes: the current incomplete event starts at buf[0]
	data   []sseLine // data lines of the current event
	out    []byte    // a rewritten event
	joined []byte    // the data of an event with several data lines
}

var ssePool = sync.Pool{New: func() any { return new(sseScratch) }}

// maxPooled is the largest buffer kept for reuse.
const maxPooled = 1 << 20

// release returns the scratch memory to the pool.
func (w *SSEFilter) release() {
	s := w.s
	if s == nil {
		return
	}
	w.s, w.cur = nil, nil
	s.f.release()
	if cap(s.buf) > maxPooled {
		s.buf = nil
	}
	if cap(s.out) > maxPooled {
		s.out = nil
	}
	if cap(s.joined) > maxPooled {
		s.joined = nil
	}
	if cap(s.data) > 1<<10 {
		s.data = nil
	}
	s.buf, s.data, s.out, s.joined = s.buf[:0], s.data[:0], s.out[:0], s.joined[:0]
	ssePool.Put(s)
}

// sseLine is one complete line of the current event: content cur[start:end], line
// terminator cur[end:next].
type sseLine struct{ start, end, next int }

// NewSSEFilter returns a filter writing to dst. lookup and allow are as for
// FilterJSON and must not be nil.
func NewSSEFilter(dst io.Writer, lookup Lookup, allow Allow) *SSEFilter {
	s := ssePool.Get().(*sseScratch)
	s.f.lookup, s.f.allow = lookup, allow
	return &SSEFilter{dst: dst, max: DefaultMaxEventSize, first: true, s: s}
}

// Held is the number of bytes of the current incomplete event the filter holds back
// (0 between events), for a caller that bounds the memory of many filters at once.
func (w *SSEFilter) Held() int {
	if w.s == nil {
		return 0
	}
	return len(w.s.buf)
}

// SetMaxEventSize sets the largest event, in bytes including line terminators, the
// filter accepts (n <= 0 restores DefaultMaxEventSize). The filter holds at most one
// event plus 64 KiB.
func (w *SSEFilter) SetMaxEventSize(n int) {
	if n <= 0 {
		n = DefaultMaxEventSize
	}
	w.max = n
}

// Pending reports whether the filter holds bytes of an incomplete event that have not
// been written to dst.
func (w *SSEFilter) Pending() bool { return w.s != nil && len(w.s.buf) > 0 }

// Write implements io.Writer. It returns len(p), nil unless an event fails or dst
// fails (see SSEFilter).
func (w *SSEFilter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, &Error{Err: ErrClosed, Offset: w.offset}
	}
	n := 0
	for len(p) > 0 && w.err == nil {
		if len(w.s.buf) == 0 {
			// Nothing held: parse the caller's buffer in place and keep only the
			// incomplete tail.
			w.cur = p
			w.process()
			w.retain(true)
			n += len(p)
			p = nil
		} else {
			k := min(len(p), chunkSize)
			w.s.buf = append(w.s.buf, p[:k]...)
			w.cur = w.s.buf
			w.process()
			w.retain(false)
			n += k
			p = p[k:]
		}
	}
	if w.err != nil {
		w.release()
		return n, w.err
	}
	return n, nil
}

// Close filters and writes a trailing event that lacks its final blank line (SSE
// clients discard it, lenient ones may not, so it is treated like a complete event)
// and ends the stream: later Writes fail. It does not close dst.
func (w *SSEFilter) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	if len(w.s.buf) > 0 {
		w.cur = w.s.buf
		if w.lineStart < len(w.cur) {
			w.line(sseLine{w.lineStart, len(w.cur), len(w.cur)})
		}
		if w.event(len(w.cur)) {
			w.write(w.cur[w.emitStart:])
		}
	}
	w.release()
	return w.err
}

var bom = []byte("\xef\xbb\xbf")

// process parses cur from scan on, handling each event that completes.
func (w *SSEFilter) process() {
	cur := w.cur
	for w.scan < len(cur) {
		if w.crPending {
			w.crPending = false
			if cur[w.scan] == '\n' {
				// Second byte of a CRLF whose CR ended the previous line.
				if n := len(w.s.data); n > 0 && w.s.data[n-1].next == w.scan {
					w.s.data[n-1].next++
				}
				w.scan++
				w.lineStart = w.scan
				continue
			}
		}
		rest := cur[w.scan:]
		i := bytes.IndexByte(rest, '\n')
		seg := rest
		if i >= 0 {
			seg = rest[:i]
		}
		if j := bytes.IndexByte(seg, '\r'); j >= 0 {
			i = j
		}
		if i < 0 {
			w.scan = len(cur)
			break
		}
		end := w.scan + i
		w.crPending = cur[end] == '\r'
		w.scan = end + 1
		l := sseLine{w.lineStart, end, end + 1}
		w.lineStart = w.scan
		if w.line(l) {
			continue
		}
		// A blank line: the event cur[blockStart:l.next] is complete.
		if !w.event(l.next) {
			return
		}
		w.blockStart = l.next
		w.s.data = w.s.data[:0]
		w.hasType = false
	}
	if len(cur)-w.blockStart > w.max {
		w.fail(w.blockStart, &Error{Err: ErrEventTooLarge, Offset: w.offset + int64(w.blockStart)})
	}
}

// line records l if it is a data line and reports whether it is non-blank.
func (w *SSEFilter) line(l sseLine) bool {
	if w.first {
		w.first = false
		if bytes.HasPrefix(w.cur[l.start:l.end], bom) {
			l.start += len(bom)
		}
	}
	if l.start == l.end {
		return false
	}
	s := w.cur[l.start:l.end]
	switch {
	case len(s) >= 4 && string(s[:4]) == "data" && (len(s) == 4 || s[4] == ':'):
		w.s.data = append(w.s.data, l)
	case len(s) >= 5 && string(s[:5]) == "event" && (len(s) == 5 || s[5] == ':'):
		w.typ, w.hasType = l, true
	}
	return true
}

// isEndpoint reports whether the current event's type is "endpoint".
func (w *SSEFilter) isEndpoint() bool {
	if !w.hasType {
		return false
	}
	v := w.cur[w.typ.start+5 : w.typ.end]
	if len(v) > 0 {
		v = v[1:] // the colon
		if len(v) > 0 && v[0] == ' ' {
			v = v[1:]
		}
	}
	return string(v) == "endpoint"
}

// dataValue returns the value of a data line: after "data:" and one optional space.
func dataValue(s []byte) []byte {
	s = s[4:]
	if len(s) > 0 {
		s = s[1:] // the colon
		if len(s) > 0 && s[0] == ' ' {
			s = s[1:]
		}
	}
	return s
}

func allWhitespace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// event handles the event cur[blockStart:end]: unchanged events stay in the run of
// bytes to write, a changed one is written rewritten. It reports false on failure.
func (w *SSEFilter) event(end int) bool {
	cur, start := w.cur, w.blockStart
	if end-start > w.max {
		w.fail(start, &Error{Err: ErrEventTooLarge, Offset: w.offset + int64(start)})
		return false
	}
	if len(w.s.data) == 0 {
		return true
	}
	var data []byte
	if len(w.s.data) == 1 {
		l := w.s.data[0]
		data = dataValue(cur[l.start:l.end])
	} else {
		w.s.joined = w.s.joined[:0]
		for k, l := range w.s.data {
			if k > 0 {
				w.s.joined = append(w.s.joined, '\n')
			}
			w.s.joined = append(w.s.joined, dataValue(cur[l.start:l.end])...)
		}
		data = w.s.joined
	}
	if allWhitespace(data) {
		return true
	}
	changed, err := w.s.f.run(data)
	if err != nil || !changed {
		w.s.f.b = nil // do not retain the caller's buffer
		if err != nil {
			if errors.Is(err, ErrSyntax) && w.isEndpoint() {
				return true // the legacy transport's endpoint URI
			}
			w.fail(start, err)
			return false
		}
		return true
	}
	if !w.write(cur[w.emitStart:start]) {
		w.s.f.b = nil
		return false
	}
	d0 := w.s.data[0]
	out := append(slices.Grow(w.s.out[:0], end-start+8), cur[start:d0.start]...)
	out = append(out, "data: "...)
	mark := len(out)
	out = w.s.f.emit(out)
	w.s.f.b = nil
	if len(w.s.data) > 1 {
		// Line breaks can only be whitespace between JSON tokens.
		for k := mark; k < len(out); k++ {
			if out[k] == '\n' {
				out[k] = ' '
			}
		}
	}
	out = append(out, cur[d0.end:d0.next]...)
	prev := d0.next
	for _, l := range w.s.data[1:] {
		out = appendKept(out, cur[prev:l.start])
		prev = l.next
	}
	out = appendKept(out, cur[prev:end])
	w.s.out = out
	w.emitStart = end
	return w.write(out)
}

// appendKept appends the bytes that followed a removed data line. If they start with
// LF (an empty line: the removed line's terminator held any CR) and out ends with a
// lone CR, the two would read as one CRLF and the empty line would vanish; a LF is
// added so that the CR ends its line as a CRLF and the empty line stays.
func appendKept(out, kept []byte) []byte {
	if len(kept) > 0 && kept[0] == '\n' && len(out) > 0 && out[len(out)-1] == '\r' {
		out = append(out, '\n')
	}
	return append(out, kept...)
}

// fail writes the unchanged events before the one at start, then records err.
func (w *SSEFilter) fail(start int, err error) {
	if w.write(w.cur[w.emitStart:start]) {
		w.err = err
	}
	w.emitStart = start
}

// retain writes the complete unchanged events and keeps the incomplete event in buf.
func (w *SSEFilter) retain(direct bool) {
	if w.err == nil {
		w.write(w.cur[w.emitStart:w.blockStart])
	}
	if w.err != nil {
		return
	}
	bs := w.blockStart
	if direct {
		w.s.buf = append(w.s.buf[:0], w.cur[bs:]...)
	} else if bs > 0 {
		n := copy(w.s.buf, w.s.buf[bs:])
		w.s.buf = w.s.buf[:n]
	}
	for k := range w.s.data {
		w.s.data[k].start -= bs
		w.s.data[k].end -= bs
		w.s.data[k].next -= bs
	}
	w.typ.start -= bs
	w.typ.end -= bs
	w.typ.next -= bs
	w.offset += int64(bs)
	w.scan -= bs
	w.lineStart -= bs
	w.blockStart, w.emitStart = 0, 0
	w.cur = nil
}

// write writes b to dst, recording a failure.
func (w *SSEFilter) write(b []byte) bool {
	if w.err != nil {
		return false
	}
	if len(b) == 0 {
		return true
	}
	n, err := w.dst.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
		return false
	}
	return true
}
