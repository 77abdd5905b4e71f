package jsonrpc

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/caddymcp/caddymcp/internal/jsonscan"
	"github.com/caddymcp/caddymcp/internal/jsonstr"
)

// Kind classifies a JSON-RPC message.
type Kind uint8

const (
	KindInvalid      Kind = iota // not a valid JSON-RPC message (the zero value)
	KindRequest                  // has "method" and an "id"
	KindNotification             // has "method" and no "id"
	KindResponse                 // has "result" or "error" (and an "id"), no "method"
)

// String returns a lower-case name for k.
func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return "invalid"
}

// MaxDepth is the deepest nesting of objects and arrays Inspect accepts; the body's
// outermost value is level 1.
const MaxDepth = 64

// MetaKeyProtocolVersion is the params._meta key carrying the per-request protocol
// version in protocol 2026-07-28 (spec 2026-07-28 basic/index.mdx, "Per-request protocol
// fields", where it is required on every request).
const MetaKeyProtocolVersion = "io.modelcontextprotocol/protocolVersion"

// Message is what the gateway needs to know about one JSON-RPC message. Its strings
// never alias the inspected body, so the body buffer may be reused afterwards.
type Message struct {
	Kind Kind
	// Method is "method", unescaped; "" for responses.
	Method string
	// ID is the raw JSON of "id" exactly as sent (e.g. `1`, `"abc"`, `null`), or ""
	// when there is no "id" member.
	ID string
	// Name is params.name for tools/call and prompts/get, params.uri for
	// resources/read, resources/subscribe and resources/unsubscribe (unescaped), and ""
	// otherwise or when absent.
	Name string
	// ProtocolVersion is params._meta["io.modelcontextprotocol/protocolVersion"] (sent
	// on every request by protocol 2026-07-28 clients), or "" when absent.
	ProtocolVersion string
	// Ref is what a completion/complete completes: RefPrompt (Name is params.ref.name)
	// or RefResource (Name is params.ref.uri); RefNone for other methods.
	Ref RefKind
	// Resources are the URIs of a subscriptions/listen request's
	// params.notifications.resourceSubscriptions (protocol 2026-07-28), nil otherwise.
	Resources []string
}

// RefKind is the kind of a completion/complete reference.
type RefKind uint8

const (
	RefNone     RefKind = iota
	RefPrompt           // "ref/prompt"
	RefResource         // "ref/resource"
)

// Inspection is the result of Inspect. Reuse one (for example from a sync.Pool) across
// requests: Inspect reuses the Messages slice and keeps a small cache of recently seen
// names so that repeated tool names cost no allocation.
type Inspection struct {
	// Batch reports that the body was a JSON array (a protocol 2025-03-26 batch).
	Batch bool
	// Messages has one entry for a non-batch body, one per element for a batch.
	Messages []Message

	scratch []byte            // unescaping buffer, reused
	cache   map[string]string // small intern cache for names, URIs and unknown methods
}

const (
	cacheMaxEntries = 256
	cacheMaxLen     = 128
)

// Inspect parses body, one JSON-RPC message or a batch, into dst.
//
// The whole body is validated as JSON (RFC 8259: no trailing data, no comments, no
// BOM), with objects and arrays nested at most MaxDepth levels. Unknown members and
// params are skipped without building values.
//
// Errors are *Error:
//   - CodeParseError: the body is not valid JSON (dst.Messages is then empty);
//   - CodeInvalidRequest: nesting deeper than MaxDepth (dst.Messages empty), a body that
//     is not an object or array, an empty batch, a batch element that is not an object,
//     a missing or non-"2.0" "jsonrpc", a non-string or empty "method", an "id" that is
//     not a string, number or null, a request with a null id, a message with both
//     "method" and "result"/"error", a response without "id" or with both "result" and
//     "error", or an object that is none of request, notification or response;
//   - CodeInvalidParams: params.name (tools/call, prompts/get) or params.uri
//     (resources/read, resources/subscribe, resources/unsubscribe) or the _meta
//     protocol version is present but not a string.
//
// For the non-parse errors dst.Messages still describes every element (Kind may be
// KindInvalid), so an error response can echo the request's ID.
//
// Duplicate and look-alike keys: a member whose key (after unescaping) repeats one of
// the keys Inspect reads — "jsonrpc", "id", "method", "params", "result", "error" at the
// top level, "name", "uri", "_meta" in params, the protocol version key in _meta — is
// rejected with CodeInvalidRequest, and so is a key that differs from one of the first
// eight only by case (compared with Unicode simple folding, e.g. "Method", "paramſ").
// Upstreams disagree on duplicates (first or last wins) and Go's encoding/json matches
// struct fields case-insensitively, so accepting either would let the upstream act on
// a method or name other than the one the gateway's policy saw. Other duplicate keys
// are not examined.
//
// Strings are unescaped exactly as encoding/json does (invalid UTF-8 and unpaired
// surrogates become U+FFFD).
func Inspect(body []byte, dst *Inspection) error {
	dst.Batch = false
	dst.Messages = dst.Messages[:0]
	p := parser{b: body, in: dst, scratch: dst.scratch[:0], elem: -1}

	var err *Error
	p.ws()
	if p.i >= len(body) {
		err = &Error{Code: CodeParseError, Message: "parse error: empty body"}
	} else {
		switch body[p.i] {
		case '{':
			err = p.message(1)
		case '[':
			dst.Batch = true
			p.i++
			p.ws()
			if p.i < len(body) && body[p.i] == ']' {
				p.i++
				p.semantic(CodeInvalidRequest, "empty batch")
				break
			}
			for p.elem = 0; ; p.elem++ {
				if p.i < len(body) && body[p.i] == '{' {
					err = p.message(2)
				} else {
					err = p.skipValue(2)
					p.semantic(CodeInvalidRequest, "batch element is not an object")
				}
				if err != nil {
					break
				}
				p.ws()
				if p.i < len(body) && body[p.i] == ',' {
					p.i++
					p.ws()
					continue
				}
				if p.i < len(body) && body[p.i] == ']' {
					p.i++
					break
				}
				err = p.syntaxErr()
				break
			}
		default:
			err = p.skipValue(1)
			p.semantic(CodeInvalidRequest, "body is not a JSON object or array")
		}
	}
	if err == nil {
		p.ws()
		if p.i < len(body) {
			err = &Error{Code: CodeParseError, Message: "parse error: invalid character " +
				quoteChar(body[p.i]) + " after top-level value at offset " + strconv.Itoa(p.i)}
		}
	}
	dst.scratch = p.scratch[:0]
	if err != nil {
		dst.Messages = dst.Messages[:0]
		return err
	}
	if p.sem != nil {
		return p.sem
	}
	return nil
}

// fEscaped marks a string containing a backslash escape.
const fEscaped = 1

// span locates a string's contents (between the quotes) in the body.
type span struct {
	s, e  int
	flags uint8
}

type parser struct {
	b       []byte
	i       int
	in      *Inspection
	scratch []byte
	sem     *Error // first non-syntax error; parsing continues to find syntax errors
	elem    int    // batch element index, -1 outside a batch
	subs    []span // subscriptions/listen resource URIs of the messages so far
}

// ws skips JSON whitespace.
func (p *parser) ws() { p.i = jsonscan.WS(p.b, p.i) }

func quoteChar(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return "0x" + string([]byte{hexDigits[c>>4], hexDigits[c&0xf]})
}

func (p *parser) syntaxErr() *Error {
	if p.i >= len(p.b) {
		return &Error{Code: CodeParseError, Message: "parse error: unexpected end of JSON input"}
	}
	return &Error{Code: CodeParseError, Message: "parse error: invalid character " +
		quoteChar(p.b[p.i]) + " at offset " + strconv.Itoa(p.i)}
}

func (p *parser) depthErr() *Error {
	return &Error{Code: CodeInvalidRequest, Message: "JSON nesting exceeds " +
		strconv.Itoa(MaxDepth) + " levels at offset " + strconv.Itoa(p.i)}
}

// semantic records the first non-syntax error.
func (p *parser) semantic(code int, msg string) {
	if p.sem != nil {
		return
	}
	if p.elem >= 0 {
		msg = "batch element " + strconv.Itoa(p.elem) + ": " + msg
	}
	p.sem = &Error{Code: code, Message: msg}
}

// fail records the position i of a jsonscan error e and returns it as an *Error.
func (p *parser) fail(i int, e jsonscan.Err) *Error {
	p.i = i
	if e == jsonscan.TooDeep {
		return p.depthErr()
	}
	return p.syntaxErr()
}

// scanString scans a string starting at the opening quote at p.i and returns the span
// of its contents. It validates escapes and rejects raw control characters.
func (p *parser) scanString() (sp span, flags uint8, err *Error) {
	sp.s = p.i + 1
	i, escaped, e := jsonscan.String(p.b, p.i)
	if escaped {
		flags = fEscaped
	}
	if e != 0 {
		return sp, flags, p.fail(i, e)
	}
	sp.e, sp.flags = i-1, flags
	p.i = i
	return sp, flags, nil
}

func (p *parser) scanNumber() *Error {
	i, e := jsonscan.Number(p.b, p.i)
	if e != 0 {
		return p.fail(i, e)
	}
	p.i = i
	return nil
}

func (p *parser) literal(lit string) *Error {
	i, e := jsonscan.Literal(p.b, p.i, lit)
	if e != 0 {
		return p.fail(i, e)
	}
	p.i = i
	return nil
}

// skipValue validates and skips the value starting at p.i (whitespace already skipped).
// depth is the nesting level the value would occupy if it is an object or array.
func (p *parser) skipValue(depth int) *Error {
	i, e := jsonscan.Skip(p.b, p.i, depth, MaxDepth)
	if e != 0 {
		return p.fail(i, e)
	}
	p.i = i
	return nil
}

// openObject consumes '{' and whitespace; if the object is empty it also consumes '}'.
func (p *parser) openObject() (empty bool, err *Error) {
	p.i, empty = jsonscan.Open(p.b, p.i, '}')
	return empty, nil
}

// memberKey scans `"key" :` and leaves p.i at the start of the value.
func (p *parser) memberKey() (span, uint8, *Error) {
	sp := span{s: p.i + 1}
	end, i, escaped, e := jsonscan.MemberKey(p.b, p.i)
	if escaped {
		sp.flags = fEscaped
	}
	if e != 0 {
		return sp, sp.flags, p.fail(i, e)
	}
	sp.e = end
	p.i = i
	return sp, sp.flags, nil
}

// nextMember consumes whitespace and either ',' (and following whitespace) or the
// closing byte, reporting whether the container ended.
func (p *parser) nextMember(closing byte) (done bool, err *Error) {
	i, done, e := jsonscan.Next(p.b, p.i, closing)
	if e != 0 {
		return false, p.fail(i, e)
	}
	p.i = i
	return done, nil
}

// Key classes.
const (
	keyOther = iota
	keyJSONRPC
	keyID
	keyMethod
	keyParams
	keyResult
	keyError
	keyName
	keyURI
	keyMeta
	keyProtocolVersion
	keyRef
	keyNotifications
	keyLookalike // differs from a significant key only by case
)

var (
	topKeys    = [][]byte{[]byte("jsonrpc"), []byte("id"), []byte("method"), []byte("params"), []byte("result"), []byte("error")}
	paramsKeys = [][]byte{[]byte("name"), []byte("uri"), []byte("_meta"), []byte("ref"), []byte("notifications")}
	refKeys    = [][]byte{[]byte("type"), []byte("name"), []byte("uri")}
	notifKeys  = [][]byte{[]byte("resourceSubscriptions")}
)

func lookalike(k []byte, keys [][]byte) bool {
	for _, sig := range keys {
		// A rune folding to an ASCII letter is at most 3 bytes long (U+212A KELVIN SIGN).
		if len(k) >= len(sig) && len(k) <= 3*len(sig) && bytes.EqualFold(k, sig) {
			return true
		}
	}
	return false
}

// key returns the unescaped key for sp; the result is valid until the next use of
// p.scratch beyond mark.
func (p *parser) key(sp span) []byte {
	if sp.flags&fEscaped == 0 {
		return p.b[sp.s:sp.e]
	}
	mark := len(p.scratch)
	p.scratch = jsonstr.AppendUnquote(p.scratch, p.b[sp.s:sp.e])
	k := p.scratch[mark:]
	p.scratch = p.scratch[:mark]
	return k // still readable: nothing is appended before the caller classifies it
}

func (p *parser) classifyTop(sp span) int {
	k := p.key(sp)
	switch string(k) {
	case "jsonrpc":
		return keyJSONRPC
	case "id":
		return keyID
	case "method":
		return keyMethod
	case "params":
		return keyParams
	case "result":
		return keyResult
	case "error":
		return keyError
	}
	if lookalike(k, topKeys) {
		return keyLookalike
	}
	return keyOther
}

func (p *parser) classifyParams(sp span) int {
	k := p.key(sp)
	switch string(k) {
	case "name":
		return keyName
	case "uri":
		return keyURI
	case "_meta":
		return keyMeta
	case "ref":
		return keyRef
	case "notifications":
		return keyNotifications
	}
	if lookalike(k, paramsKeys) {
		return keyLookalike
	}
	return keyOther
}

// msgState collects what one message object says before its strings are materialised.
type msgState struct {
	seen      uint16 // bit per key class
	jsonrpcOK bool
	id        span // raw JSON of the id, quotes included
	idKind    byte // '"', '0' (number) or 'n' (null)
	method    span
	methodOK  bool
	name      span
	nameKind  byte // 0 absent, 's' string, 'x' other
	uri       span
	uriKind   byte
	pv        span
	pvKind    byte
	hasResult bool
	hasError  bool
	// completion/complete's params.ref
	refSeen                        uint8 // bit per ref key: 1 type, 2 name, 4 uri
	refType, refName, refURI       span
	refTypeOK, refNameOK, refURIOK bool
	refBad                         bool // ref or one of its keys is not of the expected type
	// subscriptions/listen's resource URIs: p.subs[subsFrom:subsTo]
	subsFrom, subsTo int
	subsBad          bool
}

// dup marks key class k as seen and reports whether it had been seen before.
func (st *msgState) dup(k int) bool {
	bit := uint16(1) << k
	if st.seen&bit != 0 {
		return true
	}
	st.seen |= bit
	return false
}

var keyNames = [...]string{
	keyJSONRPC: "jsonrpc", keyID: "id", keyMethod: "method", keyParams: "params",
	keyResult: "result", keyError: "error", keyName: "params.name", keyURI: "params.uri",
	keyMeta: "params._meta", keyProtocolVersion: "params._meta[\"" + MetaKeyProtocolVersion + "\"]",
	keyRef: "params.ref", keyNotifications: "params.notifications",
}

// message parses the object at p.i (nesting level depth) and appends a Message.
func (p *parser) message(depth int) *Error {
	var st msgState
	empty, err := p.openObject()
	if err != nil {
		return err
	}
	for !empty {
		ksp, _, err := p.memberKey()
		if err != nil {
			return err
		}
		k := p.classifyTop(ksp)
		if k != keyOther && k != keyLookalike && st.dup(k) {
			p.semantic(CodeInvalidRequest, "duplicate key \""+keyNames[k]+"\"")
		}
		var c byte
		if p.i < len(p.b) {
			c = p.b[p.i]
		}
		switch {
		case k == keyJSONRPC && c == '"':
			sp, _, err := p.scanString()
			if err != nil {
				return err
			}
			st.jsonrpcOK = p.equalString(sp, "2.0")
		case k == keyID && c == '"':
			start := p.i
			if _, _, err := p.scanString(); err != nil {
				return err
			}
			st.id, st.idKind = span{s: start, e: p.i}, '"'
		case k == keyID && (c == '-' || jsonscan.IsDigit(c)):
			start := p.i
			if err := p.scanNumber(); err != nil {
				return err
			}
			st.id, st.idKind = span{s: start, e: p.i}, '0'
		case k == keyID && c == 'n':
			if err := p.literal("null"); err != nil {
				return err
			}
			st.idKind = 'n'
		case k == keyMethod && c == '"':
			sp, _, err := p.scanString()
			if err != nil {
				return err
			}
			st.method, st.methodOK = sp, true
		case k == keyParams && c == '{':
			if err := p.params(depth+1, &st); err != nil {
				return err
			}
		default:
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			switch k {
			case keyJSONRPC:
				st.jsonrpcOK = false
			case keyID:
				p.semantic(CodeInvalidRequest, "\"id\" must be a string, number or null")
			case keyMethod:
				st.methodOK = false
				p.semantic(CodeInvalidRequest, "\"method\" must be a string")
			case keyResult:
				st.hasResult = true
			case keyError:
				st.hasError = !(c == 'n') // "error": null is treated as absent
			case keyLookalike:
				p.semantic(CodeInvalidRequest, "key "+quote(string(p.key(ksp)))+
					" differs only in case from a JSON-RPC member")
			}
		}
		if empty, err = p.nextMember('}'); err != nil {
			return err
		}
	}
	p.finish(&st)
	return nil
}

func (p *parser) params(depth int, st *msgState) *Error {
	if depth > MaxDepth {
		return p.depthErr()
	}
	empty, err := p.openObject()
	if err != nil {
		return err
	}
	for !empty {
		ksp, _, err := p.memberKey()
		if err != nil {
			return err
		}
		k := p.classifyParams(ksp)
		if (k == keyName || k == keyURI || k == keyMeta || k == keyRef || k == keyNotifications) && st.dup(k) {
			p.semantic(CodeInvalidRequest, "duplicate key \""+keyNames[k]+"\"")
		}
		var c byte
		if p.i < len(p.b) {
			c = p.b[p.i]
		}
		switch {
		case (k == keyName || k == keyURI) && c == '"':
			sp, _, err := p.scanString()
			if err != nil {
				return err
			}
			if k == keyName {
				st.name, st.nameKind = sp, 's'
			} else {
				st.uri, st.uriKind = sp, 's'
			}
		case k == keyMeta && c == '{':
			if err := p.meta(depth+1, st); err != nil {
				return err
			}
		case k == keyRef && c == '{':
			if err := p.ref(depth+1, st); err != nil {
				return err
			}
		case k == keyNotifications && c == '{':
			if err := p.notifications(depth+1, st); err != nil {
				return err
			}
		default:
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			switch k {
			case keyName:
				st.nameKind = 'x'
			case keyURI:
				st.uriKind = 'x'
			case keyRef:
				st.refBad = true
			case keyNotifications:
				st.subsBad = c != 'n'
			case keyLookalike:
				p.semantic(CodeInvalidRequest, "params key "+quote(string(p.key(ksp)))+
					" differs only in case from a key the gateway inspects")
			}
		}
		if empty, err = p.nextMember('}'); err != nil {
			return err
		}
	}
	return nil
}

// ref records completion/complete's params.ref: its type, name and uri strings.
func (p *parser) ref(depth int, st *msgState) *Error {
	if depth > MaxDepth {
		return p.depthErr()
	}
	empty, err := p.openObject()
	if err != nil {
		return err
	}
	for !empty {
		ksp, _, err := p.memberKey()
		if err != nil {
			return err
		}
		k := p.key(ksp)
		var bit uint8
		var dst *span
		var ok *bool
		switch string(k) {
		case "type":
			bit, dst, ok = 1, &st.refType, &st.refTypeOK
		case "name":
			bit, dst, ok = 2, &st.refName, &st.refNameOK
		case "uri":
			bit, dst, ok = 4, &st.refURI, &st.refURIOK
		default:
			if lookalike(k, refKeys) {
				p.semantic(CodeInvalidRequest, "params.ref key "+quote(string(k))+" differs only in case from a key the gateway inspects")
			}
		}
		if bit != 0 {
			if st.refSeen&bit != 0 {
				p.semantic(CodeInvalidRequest, "duplicate key \"params.ref."+string(k)+"\"")
			}
			st.refSeen |= bit
		}
		if dst != nil && p.i < len(p.b) && p.b[p.i] == '"' {
			sp, _, err := p.scanString()
			if err != nil {
				return err
			}
			*dst, *ok = sp, true
		} else {
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			if dst != nil {
				st.refBad = true
			}
		}
		if empty, err = p.nextMember('}'); err != nil {
			return err
		}
	}
	return nil
}

// notifications records subscriptions/listen's params.notifications
// .resourceSubscriptions: the spans of its strings go to p.subs.
func (p *parser) notifications(depth int, st *msgState) *Error {
	if depth > MaxDepth {
		return p.depthErr()
	}
	empty, err := p.openObject()
	if err != nil {
		return err
	}
	seen := false
	for !empty {
		ksp, _, err := p.memberKey()
		if err != nil {
			return err
		}
		k := p.key(ksp)
		switch {
		case string(k) == "resourceSubscriptions":
			if seen {
				p.semantic(CodeInvalidRequest, "duplicate key \"params.notifications.resourceSubscriptions\"")
			}
			seen = true
			if p.i < len(p.b) && p.b[p.i] == '[' {
				if err := p.uriList(depth+1, st); err != nil {
					return err
				}
				break
			}
			if p.i < len(p.b) && p.b[p.i] != 'n' {
				st.subsBad = true
			}
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
		case lookalike(k, notifKeys):
			p.semantic(CodeInvalidRequest, "params.notifications key "+quote(string(k))+" differs only in case from a key the gateway inspects")
			fallthrough
		default:
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
		}
		if empty, err = p.nextMember('}'); err != nil {
			return err
		}
	}
	return nil
}

// uriList records the strings of the array at p.i; any other element marks it bad.
func (p *parser) uriList(depth int, st *msgState) *Error {
	if depth > MaxDepth {
		return p.depthErr()
	}
	empty, _ := p.openObjectOr(']')
	st.subsFrom = len(p.subs)
	for !empty {
		if p.i < len(p.b) && p.b[p.i] == '"' {
			sp, _, err := p.scanString()
			if err != nil {
				return err
			}
			p.subs = append(p.subs, sp)
		} else {
			st.subsBad = true
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
		}
		var err *Error
		if empty, err = p.nextMember(']'); err != nil {
			return err
		}
	}
	st.subsTo = len(p.subs)
	return nil
}

// openObjectOr consumes '[' (or '{') and whitespace; if the container is empty it also
// consumes the closing byte.
func (p *parser) openObjectOr(closing byte) (empty bool, err *Error) {
	p.i, empty = jsonscan.Open(p.b, p.i, closing)
	return empty, nil
}

func (p *parser) meta(depth int, st *msgState) *Error {
	if depth > MaxDepth {
		return p.depthErr()
	}
	empty, err := p.openObject()
	if err != nil {
		return err
	}
	for !empty {
		ksp, _, err := p.memberKey()
		if err != nil {
			return err
		}
		isPV := string(p.key(ksp)) == MetaKeyProtocolVersion
		if isPV && st.dup(keyProtocolVersion) {
			p.semantic(CodeInvalidRequest, "duplicate key \""+keyNames[keyProtocolVersion]+"\"")
		}
		if isPV && p.i < len(p.b) && p.b[p.i] == '"' {
			sp, _, err := p.scanString()
			if err != nil {
				return err
			}
			st.pv, st.pvKind = sp, 's'
		} else {
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			if isPV {
				st.pvKind = 'x'
			}
		}
		if empty, err = p.nextMember('}'); err != nil {
			return err
		}
	}
	return nil
}

// equalString reports whether the unescaped string at sp equals s.
func (p *parser) equalString(sp span, s string) bool {
	if sp.flags&fEscaped == 0 {
		return string(p.b[sp.s:sp.e]) == s
	}
	mark := len(p.scratch)
	p.scratch = jsonstr.AppendUnquote(p.scratch, p.b[sp.s:sp.e])
	eq := string(p.scratch[mark:]) == s
	p.scratch = p.scratch[:mark]
	return eq
}

// finish validates the collected state and appends the Message.
func (p *parser) finish(st *msgState) {
	var m Message
	hasID := st.seen&(1<<keyID) != 0
	hasMethod := st.seen&(1<<keyMethod) != 0
	if hasID {
		m.ID = p.idString(st)
	}
	if st.methodOK {
		m.Method = p.str(st.method, knownMethods)
	}
	if !st.jsonrpcOK {
		p.semantic(CodeInvalidRequest, "missing or invalid \"jsonrpc\": must be \"2.0\"")
	}
	ok := st.jsonrpcOK
	switch {
	case hasMethod:
		switch {
		case !st.methodOK:
			ok = false // already reported
		case st.hasResult || st.hasError:
			ok = false
			p.semantic(CodeInvalidRequest, "message has both \"method\" and \"result\" or \"error\"")
		case m.Method == "":
			ok = false
			p.semantic(CodeInvalidRequest, "\"method\" is empty")
		case hasID && st.idKind == 'n':
			ok = false
			p.semantic(CodeInvalidRequest, "request \"id\" must be a string or number, not null")
		}
		if ok {
			if hasID {
				m.Kind = KindRequest
			} else {
				m.Kind = KindNotification
			}
		}
		switch m.Method {
		case "tools/call", "prompts/get":
			if st.nameKind == 's' {
				m.Name = p.str(st.name, nil)
			} else if st.nameKind == 'x' {
				m.Kind = KindInvalid
				p.semantic(CodeInvalidParams, "params.name must be a string")
			}
		case "resources/read", "resources/subscribe", "resources/unsubscribe":
			if st.uriKind == 's' {
				m.Name = p.str(st.uri, nil)
			} else if st.uriKind == 'x' {
				m.Kind = KindInvalid
				p.semantic(CodeInvalidParams, "params.uri must be a string")
			}
		case "completion/complete":
			// The policy checks the referenced prompt or resource: a reference it
			// cannot read is refused, not passed on.
			switch {
			case st.refBad || !st.refTypeOK:
				m.Kind = KindInvalid
				p.semantic(CodeInvalidParams, "params.ref must be an object with a string \"type\"")
			case p.equalString(st.refType, "ref/prompt") && st.refNameOK:
				m.Ref, m.Name = RefPrompt, p.str(st.refName, nil)
			case p.equalString(st.refType, "ref/resource") && st.refURIOK:
				m.Ref, m.Name = RefResource, p.str(st.refURI, nil)
			default:
				m.Kind = KindInvalid
				p.semantic(CodeInvalidParams, "params.ref must be a ref/prompt with a string name or a ref/resource with a string uri")
			}
		case "subscriptions/listen":
			if st.subsBad {
				m.Kind = KindInvalid
				p.semantic(CodeInvalidParams, "params.notifications.resourceSubscriptions must be an array of strings")
			}
			if st.subsTo > st.subsFrom {
				m.Resources = make([]string, 0, st.subsTo-st.subsFrom)
				for _, sp := range p.subs[st.subsFrom:st.subsTo] {
					m.Resources = append(m.Resources, p.str(sp, nil))
				}
			}
		}
		if st.pvKind == 's' {
			m.ProtocolVersion = p.str(st.pv, knownVersions)
		} else if st.pvKind == 'x' {
			m.Kind = KindInvalid
			p.semantic(CodeInvalidParams, "params._meta[\""+MetaKeyProtocolVersion+"\"] must be a string")
		}
	case st.hasResult || st.hasError:
		switch {
		case st.hasResult && st.hasError:
			p.semantic(CodeInvalidRequest, "response has both \"result\" and \"error\"")
		case !hasID:
			p.semantic(CodeInvalidRequest, "response has no \"id\"")
		case ok:
			m.Kind = KindResponse
		}
	default:
		p.semantic(CodeInvalidRequest, "object is not a JSON-RPC request, notification or response")
	}
	p.in.Messages = append(p.in.Messages, m)
}

func (p *parser) idString(st *msgState) string {
	switch st.idKind {
	case 'n':
		return "null"
	case '0':
		if s, ok := smallInt(p.b[st.id.s:st.id.e]); ok {
			return s
		}
	case 0:
		return "" // id of the wrong type, already reported
	}
	return string(p.b[st.id.s:st.id.e])
}

// str materialises the string at sp: from intern (if non-nil), else from the
// Inspection's cache, else by allocating (and caching short values).
func (p *parser) str(sp span, intern map[string]string) string {
	raw := p.b[sp.s:sp.e]
	mark := len(p.scratch)
	if sp.flags&fEscaped != 0 || !utf8.Valid(raw) {
		p.scratch = jsonstr.AppendUnquote(p.scratch, raw)
		raw = p.scratch[mark:]
	}
	s := p.lookup(raw, intern)
	p.scratch = p.scratch[:mark]
	return s
}

func (p *parser) lookup(raw []byte, intern map[string]string) string {
	if intern != nil {
		if s, ok := intern[string(raw)]; ok {
			return s
		}
	}
	c := p.in.cache
	if s, ok := c[string(raw)]; ok {
		return s
	}
	s := string(raw)
	if len(s) <= cacheMaxLen {
		if c == nil {
			c = make(map[string]string, 32)
			p.in.cache = c
		} else if len(c) >= cacheMaxEntries {
			clear(c)
		}
		c[s] = s
	}
	return s
}

// smallInts holds the decimal forms of 0..9999 back to back, so that small numeric ids
// need no allocation.
var smallInts = func() string {
	b := make([]byte, 0, 38890)
	for n := 0; n < 10000; n++ {
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return string(b)
}()

func smallInt(raw []byte) (string, bool) {
	n := len(raw)
	if n == 0 || n > 4 || (n > 1 && raw[0] == '0') {
		return "", false
	}
	v := 0
	for _, c := range raw {
		if !jsonscan.IsDigit(c) {
			return "", false
		}
		v = v*10 + int(c-'0')
	}
	var off int
	switch n {
	case 1:
		off = v
	case 2:
		off = 10 + (v-10)*2
	case 3:
		off = 190 + (v-100)*3
	default:
		off = 2890 + (v-1000)*4
	}
	return smallInts[off : off+n], true
}

func internSet(list ...string) map[string]string {
	m := make(map[string]string, len(list))
	for _, s := range list {
		m[s] = s
	}
	return m
}

// knownMethods are the MCP methods of protocols 2024-11-05 through 2026-07-28 (schema.ts
// of each revision).
var knownMethods = internSet(
	"initialize", "ping", "server/discover", "subscriptions/listen",
	"tools/list", "tools/call",
	"prompts/list", "prompts/get",
	"resources/list", "resources/templates/list", "resources/read",
	"resources/subscribe", "resources/unsubscribe",
	"completion/complete", "logging/setLevel",
	"roots/list", "sampling/createMessage", "elicitation/create",
	"tasks/get", "tasks/list", "tasks/cancel", "tasks/result",
	"notifications/initialized", "notifications/cancelled", "notifications/progress",
	"notifications/message", "notifications/roots/list_changed",
	"notifications/tools/list_changed", "notifications/prompts/list_changed",
	"notifications/resources/list_changed", "notifications/resources/updated",
	"notifications/elicitation/complete", "notifications/tasks/status",
	"notifications/subscriptions/acknowledged",
)

var knownVersions = internSet("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28")
