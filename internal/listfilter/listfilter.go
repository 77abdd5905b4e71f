// Package listfilter removes the tools, prompts, resources and resource templates a
// caller may not use from MCP list responses as they pass through the gateway.
//
// The responses to tools/list, prompts/list, resources/list and
// resources/templates/list carry their items in one array of the result:
//
//	{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a",…},{"name":"b",…}],"nextCursor":"…"}}
//
// The filter keeps an item only if Allow says so for the item's name (tools, prompts),
// uri (resources) or uriTemplate (resource templates). Everything else — other members
// of the result such as nextCursor and _meta, every member of a kept item, other
// messages, whitespace — is copied byte for byte: kept items are never re-encoded, so
// numbers, escapes and key order reach the client exactly as the upstream sent them.
//
// FilterJSON handles a whole application/json body (one response, or a protocol
// 2025-03-26 batch array). SSEFilter handles a text/event-stream body as a stream,
// holding at most one event at a time. Both scan the input once, byte by byte, without
// building values, and both fail closed: input they cannot read with certainty is an
// error, never passed through.
//
// # Wiring into the gateway
//
// The gateway wraps the response only when the request (or one element of a batch)
// is a list call, and only for a 2xx answer:
//
//   - Lookup: either key a table by CanonicalID of each list request's raw id and
//     return AnyList for ids not in it, or simply return (AnyList, true) for every id —
//     a POST's response only carries answers to that POST's requests, and AnyList
//     filters each list by its own kind, so no id bookkeeping is needed and an
//     upstream that re-encodes ids cannot slip a list past the filter. Returning false
//     for an unknown id fails open.
//   - application/json: read the body (bounded), FilterJSON it, delete Content-Length
//     (or set it to the new length) and write the result.
//   - text/event-stream: Write each upstream chunk to an SSEFilter over the client's
//     ResponseWriter, flush after each Write, Close at the end; delete Content-Length.
//   - the filter reads plain bytes: ask the upstream for "Accept-Encoding: identity"
//     on list calls and fail closed on any other Content-Encoding.
//   - any error: fail closed. Before anything was written, answer with a JSON-RPC
//     error; in a stream, stop copying and end the response (the client then sees no
//     response for its request, or the gateway writes a JSON-RPC error event for it).
//
// The package uses only the standard library and has no Caddy dependency.
package listfilter

import (
	"errors"
	"strconv"
)

// Kind says which list a response answers: which result array is filtered and which
// member of each item names it.
type Kind uint8

// The kinds. The zero Kind is not a valid kind.
const (
	// Tools: result.tools, items named by "name" (tools/list).
	Tools Kind = iota + 1
	// Prompts: result.prompts, items named by "name" (prompts/list).
	Prompts
	// Resources: result.resources, items named by "uri" (resources/list).
	Resources
	// ResourceTemplates: result.resourceTemplates, items named by "uriTemplate"
	// (resources/templates/list).
	ResourceTemplates
	// AnyList is for a response whose request is not known for certain. Each of the
	// four arrays present in its result is filtered as its own kind (result.tools as
	// Tools, result.prompts as Prompts, …); Allow is called with that concrete kind,
	// never with AnyList. Results of other methods have none of these arrays and pass
	// unchanged, so AnyList is a safe answer for a response Lookup cannot place.
	AnyList
)

var kindInfo = [...]struct{ name, field, key string }{
	Tools:             {"tools", "tools", "name"},
	Prompts:           {"prompts", "prompts", "name"},
	Resources:         {"resources", "resources", "uri"},
	ResourceTemplates: {"resourceTemplates", "resourceTemplates", "uriTemplate"},
	AnyList:           {"any", "", ""},
}

func (k Kind) valid() bool { return k >= Tools && k <= AnyList }

// String returns the kind's name: "tools", "prompts", "resources",
// "resourceTemplates", "any", or "Kind(n)" for an invalid kind.
func (k Kind) String() string {
	if !k.valid() {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindInfo[k].name
}

// Field returns the member of the result holding the items ("tools", …), or "" for
// AnyList and invalid kinds.
func (k Kind) Field() string {
	if !k.valid() {
		return ""
	}
	return kindInfo[k].field
}

// NameKey returns the member of an item that names it: "name", "uri" or
// "uriTemplate"; "" for AnyList and invalid kinds.
func (k Kind) NameKey() string {
	if !k.valid() {
		return ""
	}
	return kindInfo[k].key
}

// KindOf returns the Kind of a list method: tools/list, prompts/list, resources/list
// or resources/templates/list.
func KindOf(method string) (Kind, bool) {
	switch method {
	case "tools/list":
		return Tools, true
	case "prompts/list":
		return Prompts, true
	case "resources/list":
		return Resources, true
	case "resources/templates/list":
		return ResourceTemplates, true
	}
	return 0, false
}

// Lookup tells which list a response answers, from the response's id. The id is
// passed in the form CanonicalID gives (for ordinary ids such as 1 or "a", the raw
// JSON exactly as sent), so the gateway should key its table of pending list requests
// by CanonicalID of each request's raw id.
//
// Lookup is called only for messages that have both "id" and "result". Returning
// false passes the response unchanged; returning a Kind filters it. An invalid Kind
// with true is treated as AnyList. Lookup must not be nil.
type Lookup func(id string) (Kind, bool)

// Allow reports whether the caller may see the item of the given kind (never AnyList)
// named name. name is unescaped exactly as encoding/json would decode it (invalid
// UTF-8 and unpaired surrogates become U+FFFD), i.e. it is the name the client will
// see and later send in tools/call, prompts/get or resources/read. The string does not
// alias any buffer and may be retained. Allow must not be nil.
type Allow func(kind Kind, name string) bool

// MaxDepth is the deepest nesting of objects and arrays accepted in a body or an
// event's message (the outermost value is level 1). It matches the go-sdk's decoding
// limit; deeper input is an error wrapping ErrTooDeep.
const MaxDepth = 1000

// Errors. Every error the package returns is a *Error wrapping one of these, or an
// error from the SSEFilter's destination writer.
var (
	// ErrSyntax: the body or an event's data is not valid JSON (RFC 8259, as
	// encoding/json's Valid accepts it).
	ErrSyntax = errors.New("malformed JSON")
	// ErrTooDeep: nesting deeper than MaxDepth.
	ErrTooDeep = errors.New("JSON nested too deeply")
	// ErrAmbiguous: a message has two "id", "result" or "error" members, or a member
	// whose key differs from one of these only in case (clients disagree on which one
	// counts).
	ErrAmbiguous = errors.New("ambiguous JSON-RPC message")
	// ErrListShape: a response Lookup mapped to a list has a non-null "error" next to
	// its "result", a result that is not an object, or a list member that is not an
	// array.
	ErrListShape = errors.New("malformed list response")
	// ErrEventTooLarge: an SSE event exceeds the SSEFilter's maximum event size.
	ErrEventTooLarge = errors.New("SSE event too large")
	// ErrClosed: Write after Close.
	ErrClosed = errors.New("write after close")
)

// Error describes why a body or an event could not be filtered.
type Error struct {
	// Err is one of the package's sentinel errors.
	Err error
	// Offset is the byte offset in the body (FilterJSON) or in the event's data
	// (SSEFilter, after joining data lines) where the problem was found; for
	// ErrEventTooLarge, the offset in the stream where the event starts.
	Offset int64
	// Detail is a short human-readable explanation (may be empty).
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	s := "listfilter: " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s + " at offset " + strconv.FormatInt(e.Offset, 10)
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }
