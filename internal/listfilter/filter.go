package listfilter

import (
	"bytes"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/caddymcp/caddymcp/internal/jsonstr"
)

// FilterJSON filters one JSON body — a JSON-RPC message, or a protocol 2025-03-26
// batch (an array of messages) — appends the result to dst and returns the extended
// slice. dst must not overlap body (filtering in place is not supported).
//
// For each message that has both "id" and "result", Lookup is called with
// CanonicalID of the id; when it returns a Kind, the result's list array
// (result.tools, …; see Kind) keeps only the items for which Allow returns true. Every
// result member named the list field is filtered: a duplicate, and a key that differs
// from the field only in case ("Tools", which Go's encoding/json would accept).
//
// An item is dropped without asking Allow when it is not an object, when its name
// member ("name", "uri" or "uriTemplate") is missing or not a string, or when the item
// has that member twice or has a member whose key differs from it only in case: JSON
// decoders disagree on which duplicate wins (most take the last, some the first) and
// encoding/json matches keys case-insensitively, so no choice would be safe for every
// client. The name is unescaped before Allow sees it.
//
// Every other byte — other messages, responses with a non-null "error", other result
// members such as nextCursor and _meta, the members and whitespace of kept items — is
// copied unchanged; when nothing is dropped the output is the input byte for byte.
//
// The whole body is validated (RFC 8259, nesting at most MaxDepth). On error nothing
// is appended and the error is a *Error wrapping ErrSyntax, ErrTooDeep, ErrAmbiguous
// (a message with duplicate or case-variant "id", "result" or "error" keys: which
// request it answers, or which result the client sees, is then unclear) or
// ErrListShape; the gateway should then fail closed. The output is valid JSON whenever
// the call succeeds.
//
// Cost: one pass over the body plus one copy of it. Allocation: the output (none if
// dst has room), one string per list response holding all its item names, and for
// ids longer than one byte one string per response with a result (the id for Lookup).
func FilterJSON(dst, body []byte, lookup Lookup, allow Allow) ([]byte, error) {
	f := filterPool.Get().(*filter)
	f.lookup, f.allow = lookup, allow
	changed, err := f.run(body)
	if err == nil {
		if changed {
			dst = f.emit(slices.Grow(dst, len(body)))
		} else {
			dst = append(dst, body...)
		}
	}
	f.release()
	filterPool.Put(f)
	if err != nil {
		return dst, err // not the nil *Error in an interface
	}
	return dst, nil
}

var filterPool = sync.Pool{New: func() any { return new(filter) }}

// filter is the scanning and rewriting core shared by FilterJSON and SSEFilter. It
// handles one body at a time: run scans and decides, emit writes the filtered body.
type filter struct {
	scanner
	lookup Lookup
	allow  Allow

	msgs   []msgRec
	arrays []arrRec
	items  []itemRec
	key    []byte // unescaped member key
	names  []byte // unescaped item names of the current response
	idbuf  []byte
}

// msgRec records what a message object says.
type msgRec struct {
	idS, idE   int // raw id value; idS < 0: no id
	hasResult  bool
	resultObj  bool
	errNonNull bool
	arrFirst   int // its list arrays are arrays[arrFirst:arrEnd]
	arrEnd     int
}

// arrRec records one member of a result whose key is (or folds to) a list field.
type arrRec struct {
	field       Kind
	open, close int // offsets of '[' and ']'; open < 0: the value is not an array
	first, end  int // its items are items[first:end]
	filter      bool
}

// itemRec records one array element.
type itemRec struct {
	start, end int // the element's bytes
	ns, ne     int // name string contents in the body (ns < 0: no usable name); after decide, offsets in names
	esc        bool
	keep       bool
}

func (f *filter) release() {
	f.lookup, f.allow = nil, nil
	f.b = nil
	// Keep reasonably sized scratch space for the next body; drop outliers.
	if cap(f.items) > 1<<14 {
		f.items = nil
	}
	if cap(f.arrays) > 1<<10 {
		f.arrays = nil
	}
	if cap(f.msgs) > 1<<10 {
		f.msgs = nil
	}
	if cap(f.names) > 1<<18 {
		f.names = nil
	}
	if cap(f.key) > 1<<12 {
		f.key = nil
	}
}

// run scans body, calls Lookup and Allow, and reports whether any item is dropped.
func (f *filter) run(body []byte) (changed bool, err *Error) {
	f.b, f.i = body, 0
	f.msgs, f.arrays, f.items = f.msgs[:0], f.arrays[:0], f.items[:0]
	if err := f.scanBody(); err != nil {
		return false, err
	}
	return f.decide()
}

func (f *filter) scanBody() *Error {
	b := f.b
	f.ws()
	if f.i >= len(b) {
		return f.errAt(ErrSyntax, "empty input")
	}
	switch b[f.i] {
	case '{':
		if err := f.message(1); err != nil {
			return err
		}
	case '[':
		if !f.open(']') {
			for {
				var err *Error
				if f.peek() == '{' {
					err = f.message(2)
				} else {
					err = f.skip(2)
				}
				if err != nil {
					return err
				}
				done, err := f.next(']')
				if err != nil {
					return err
				}
				if done {
					break
				}
			}
		}
	default:
		if err := f.skip(1); err != nil {
			return err
		}
	}
	f.ws()
	if f.i < len(b) {
		return f.errAt(ErrSyntax, "data after the top-level value")
	}
	return nil
}

// unescaped returns the key k unescaped if needed, in f.key.
func (f *filter) unescaped(k []byte, esc bool) []byte {
	if !esc {
		return k
	}
	f.key = jsonstr.AppendUnquote(f.key[:0], k)
	return f.key
}

// foldEq reports whether k equals name under Unicode simple case folding (as
// bytes.EqualFold, and encoding/json's key matching). name is ASCII lower case.
func foldEq(k []byte, name string) bool {
	// A rune folding to an ASCII letter is at most 3 bytes long (U+212A KELVIN SIGN).
	if len(k) < len(name) || len(k) > 3*len(name) || (k[0]|0x20 != name[0] && k[0] < utf8.RuneSelf) {
		return false
	}
	var buf [32]byte
	return bytes.EqualFold(k, append(buf[:0], name...))
}

// Top-level key classes.
const (
	topOther = iota
	topID
	topResult
	topError
	topLookalike
)

func classifyTop(k []byte) int {
	switch string(k) {
	case "id":
		return topID
	case "result":
		return topResult
	case "error":
		return topError
	}
	if foldEq(k, "id") || foldEq(k, "result") || foldEq(k, "error") {
		return topLookalike
	}
	return topOther
}

var topNames = [...]string{topID: `"id"`, topResult: `"result"`, topError: `"error"`}

// message scans the object at f.i, nesting level depth, and records it.
func (f *filter) message(depth int) *Error {
	m := msgRec{idS: -1, arrFirst: len(f.arrays)}
	var seen uint8
	if !f.open('}') {
		for {
			keyAt := f.i
			k, esc, err := f.memberKey()
			if err != nil {
				return err
			}
			cls := classifyTop(f.unescaped(k, esc))
			switch cls {
			case topLookalike:
				return &Error{Err: ErrAmbiguous, Offset: int64(keyAt), Detail: "key " +
					string(f.b[keyAt:keyAt+len(k)+2]) + " differs only in case from a JSON-RPC member"}
			case topID, topResult, topError:
				if seen&(1<<cls) != 0 {
					return &Error{Err: ErrAmbiguous, Offset: int64(keyAt), Detail: "duplicate key " + topNames[cls]}
				}
				seen |= 1 << cls
			}
			switch cls {
			case topID:
				start := f.i
				if err := f.skip(depth + 1); err != nil {
					return err
				}
				m.idS, m.idE = start, f.i
			case topResult:
				m.hasResult = true
				if f.i < len(f.b) && f.b[f.i] == '{' {
					m.resultObj = true
					err = f.result(depth + 1)
				} else {
					err = f.skip(depth + 1)
				}
			case topError:
				m.errNonNull = f.i >= len(f.b) || f.b[f.i] != 'n'
				err = f.skip(depth + 1)
			default:
				err = f.skip(depth + 1)
			}
			if err != nil {
				return err
			}
			done, err := f.next('}')
			if err != nil {
				return err
			}
			if done {
				break
			}
		}
	}
	m.arrEnd = len(f.arrays)
	f.msgs = append(f.msgs, m)
	return nil
}

// classifyField returns the Kind whose list field k is (or folds to), or 0.
func classifyField(k []byte) Kind {
	switch string(k) {
	case "tools":
		return Tools
	case "prompts":
		return Prompts
	case "resources":
		return Resources
	case "resourceTemplates":
		return ResourceTemplates
	}
	for kind := Tools; kind <= ResourceTemplates; kind++ {
		if foldEq(k, kindInfo[kind].field) {
			return kind
		}
	}
	return 0
}

// result scans a result object, recording its list arrays.
func (f *filter) result(depth int) *Error {
	if depth > MaxDepth {
		return f.tooDeep()
	}
	if f.open('}') {
		return nil
	}
	for {
		k, esc, err := f.memberKey()
		if err != nil {
			return err
		}
		if field := classifyField(f.unescaped(k, esc)); field != 0 {
			if f.i < len(f.b) && f.b[f.i] == '[' {
				err = f.array(depth+1, field)
			} else {
				f.arrays = append(f.arrays, arrRec{field: field, open: -1})
				err = f.skip(depth + 1)
			}
		} else {
			err = f.skip(depth + 1)
		}
		if err != nil {
			return err
		}
		done, err := f.next('}')
		if err != nil || done {
			return err
		}
	}
}

// array scans a list array, recording its items.
func (f *filter) array(depth int, field Kind) *Error {
	if depth > MaxDepth {
		return f.tooDeep()
	}
	a := arrRec{field: field, open: f.i, first: len(f.items)}
	if !f.open(']') {
		for {
			var err *Error
			if f.peek() == '{' {
				err = f.item(depth+1, kindInfo[field].key)
			} else {
				start := f.i
				err = f.skip(depth + 1)
				f.items = append(f.items, itemRec{start: start, end: f.i, ns: -1})
			}
			if err != nil {
				return err
			}
			done, err := f.next(']')
			if err != nil {
				return err
			}
			if done {
				break
			}
		}
	}
	a.close = f.i - 1
	a.end = len(f.items)
	f.arrays = append(f.arrays, a)
	return nil
}

// item scans an object element of a list array and records it with its name.
func (f *filter) item(depth int, nameKey string) *Error {
	if depth > MaxDepth {
		return f.tooDeep()
	}
	it := itemRec{start: f.i, ns: -1}
	named, bad := false, false
	if !f.open('}') {
		for {
			k, esc, err := f.memberKey()
			if err != nil {
				return err
			}
			k = f.unescaped(k, esc)
			if string(k) == nameKey {
				bad = bad || named
				named = true
				if f.i < len(f.b) && f.b[f.i] == '"' {
					it.ns, it.esc, err = f.scanString()
					it.ne = f.i - 1
				} else {
					bad = true
					err = f.skip(depth + 1)
				}
			} else {
				if foldEq(k, nameKey) {
					bad = true
				}
				err = f.skip(depth + 1)
			}
			if err != nil {
				return err
			}
			done, err := f.next('}')
			if err != nil {
				return err
			}
			if done {
				break
			}
		}
	}
	if bad || !named {
		it.ns = -1
	}
	it.end = f.i
	f.items = append(f.items, it)
	return nil
}

// decide calls Lookup for each response with a result and Allow for each item of the
// lists to filter, marking the items to keep. It reports whether any item is dropped.
func (f *filter) decide() (changed bool, err *Error) {
	for mi := range f.msgs {
		m := &f.msgs[mi]
		if !m.hasResult || m.idS < 0 {
			continue
		}
		f.idbuf = appendCanonicalID(f.idbuf[:0], f.b[m.idS:m.idE])
		kind, ok := f.lookup(string(f.idbuf))
		if !ok {
			continue
		}
		if !kind.valid() {
			kind = AnyList
		}
		if m.errNonNull {
			return false, &Error{Err: ErrListShape, Offset: int64(m.idS), Detail: "list response has both \"result\" and \"error\""}
		}
		if !m.resultObj {
			return false, &Error{Err: ErrListShape, Offset: int64(m.idS), Detail: "list result is not an object"}
		}
		// Collect the names of all items to judge, then make one string of them.
		f.names = f.names[:0]
		for ai := m.arrFirst; ai < m.arrEnd; ai++ {
			a := &f.arrays[ai]
			if kind != AnyList && a.field != kind {
				continue
			}
			if a.open < 0 {
				return false, &Error{Err: ErrListShape, Offset: int64(m.idS), Detail: "result member for " +
					a.field.String() + " is not an array"}
			}
			a.filter = true
			for ii := a.first; ii < a.end; ii++ {
				it := &f.items[ii]
				if it.ns < 0 {
					continue
				}
				raw := f.b[it.ns:it.ne]
				off := len(f.names)
				if it.esc || !utf8.Valid(raw) {
					f.names = jsonstr.AppendUnquote(f.names, raw)
				} else {
					f.names = append(f.names, raw...)
				}
				it.ns, it.ne = off, len(f.names)
			}
		}
		names := string(f.names)
		for ai := m.arrFirst; ai < m.arrEnd; ai++ {
			a := &f.arrays[ai]
			if !a.filter {
				continue
			}
			for ii := a.first; ii < a.end; ii++ {
				it := &f.items[ii]
				it.keep = it.ns >= 0 && f.allow(a.field, names[it.ns:it.ne])
				changed = changed || !it.keep
			}
		}
	}
	return changed, nil
}

// emit appends the filtered body to dst. Kept bytes are copied in as few runs as
// possible: with nothing dropped, one copy of the whole body.
func (f *filter) emit(dst []byte) []byte {
	b := f.b
	runS, runE := 0, 0
	add := func(s, e int) {
		if s == runE {
			runE = e
			return
		}
		dst = append(dst, b[runS:runE]...)
		runS, runE = s, e
	}
	cur := 0
	for ai := range f.arrays {
		a := &f.arrays[ai]
		if !a.filter || a.first == a.end {
			continue
		}
		items := f.items[a.first:a.end]
		dropped := false
		for k := range items {
			if !items[k].keep {
				dropped = true
				break
			}
		}
		if !dropped {
			continue
		}
		// Everything up to the first element, including '[' and the whitespace
		// after it; then each kept element, preceded by its own separator (", ")
		// unless it is the first one kept; then the whitespace before ']'.
		add(cur, items[0].start)
		first := true
		for k := range items {
			if !items[k].keep {
				continue
			}
			if first {
				add(items[k].start, items[k].end)
				first = false
			} else {
				add(items[k-1].end, items[k].end)
			}
		}
		add(items[len(items)-1].end, a.close)
		cur = a.close
	}
	add(cur, len(b))
	return append(dst, b[runS:runE]...)
}
