package jsonrpc

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// ProtocolVersionStandardHeaders is the first protocol revision whose Streamable HTTP
// POSTs must carry the Mcp-Method / Mcp-Name request headers.
const ProtocolVersionStandardHeaders = "2026-07-28"

// RequiresNameHeader reports whether a request with this method must carry Mcp-Name
// under protocol 2026-07-28 (the value mirrors params.name or params.uri).
func RequiresNameHeader(method string) bool {
	switch method {
	case "tools/call", "resources/read", "prompts/get":
		return true
	}
	return false
}

// CheckHeaders validates the MCP-Protocol-Version, Mcp-Method and Mcp-Name request header
// values (as returned by http.Header.Get: "" means absent) against the inspected body.
// It returns nil or an *Error, with CodeHeaderMismatch unless noted; the caller answers
// HTTP 400 with that JSON-RPC error (echoing the request id).
//
// Rules, from the 2026-07-28 specification (docs/specification/2026-07-28/basic/
// transports/streamable-http.mdx in github.com/modelcontextprotocol/modelcontextprotocol,
// sections "Request Metadata", "Value Encoding", "Case Sensitivity", "Server
// Validation"; the draft revision is identical), cross-checked with go-sdk
// mcp/streamable_headers.go validateMcpHeaders and mcp/streamable.go, and with the
// conformance suite's src/scenarios/server/http-standard-headers.ts:
//
//   - Every POST carries MCP-Protocol-Version, and its value MUST equal the body's
//     params._meta["io.modelcontextprotocol/protocolVersion"]. Checked whenever the body
//     carries that field, whatever the header says: a body declaring a version the
//     header does not (including an absent header) is rejected, as go-sdk does. A body
//     without the field is not rejected here (the spec makes it -32602 Invalid params,
//     the upstream's job).
//   - The requirements below (headers that must be present, no batches) apply only
//     when MCP-Protocol-Version >= "2026-07-28" (an absent header means 2025-03-26;
//     older revisions define no such headers). An Mcp-Method or Mcp-Name header sent
//     on an older revision is still compared with the body as below (an upstream may
//     route by it), and on a batch it is a mismatch.
//   - A 2026-07-28 body is a single message: a batch is CodeInvalidRequest.
//   - Mcp-Method is REQUIRED on requests and MUST equal "method" (values are
//     case-sensitive). For notifications the revision defines no header requirement,
//     so an absent Mcp-Method passes but a present one must match; on a response body
//     (which has no method) a present Mcp-Method is a mismatch.
//   - Mcp-Name is REQUIRED on tools/call and prompts/get (mirrors params.name) and
//     resources/read (mirrors params.uri) and MUST equal that value. A value of the
//     form "=?base64?<std base64>?=" is decoded before comparing (servers MUST decode
//     it); undecodable base64 is a mismatch. When sent on resources/subscribe or
//     resources/unsubscribe it is compared with params.uri; on other methods it is
//     ignored (the spec gives it no meaning there).
//   - Header values are compared after trimming surrounding spaces and tabs (RFC 9110
//     OWS; the conformance suite requires "  name  " to be accepted). A value holding a
//     control character is rejected (spec: "A header value contains invalid
//     characters"). Raw non-ASCII values are compared as sent: the spec says clients
//     MUST base64 them, but go-sdk's client sends them raw and go-sdk's server accepts.
//   - Mismatch messages follow the spec's example ("Header mismatch: Mcp-Name header
//     value 'foo' does not match body value 'bar'"), with values quoted and truncated.
//
// Mcp-Param-* headers (tool arguments annotated x-mcp-header) need the tool's schema
// and are not checked here; intermediaries MUST forward them untouched.
func CheckHeaders(protocolVersion, mcpMethod, mcpName string, in *Inspection) error {
	pv := trimOWS(protocolVersion)
	for i := range in.Messages {
		if mv := in.Messages[i].ProtocolVersion; mv != "" && mv != pv {
			if pv == "" {
				return mismatch("MCP-Protocol-Version header is required: request _meta " +
					strconv.Quote(MetaKeyProtocolVersion) + " is " + quote(mv))
			}
			return mismatch("Header mismatch: MCP-Protocol-Version header value " + quote(pv) +
				" does not match body _meta " + strconv.Quote(MetaKeyProtocolVersion) + " value " + quote(mv))
		}
	}
	// Revisions before 2026-07-28 define no Mcp-Method / Mcp-Name headers, so nothing
	// is required there; but an upstream (or a later hop) may route by them, so when a
	// client sends them they must agree with the body on every revision.
	standard := pv != "" && pv >= ProtocolVersionStandardHeaders
	if !standard && mcpMethod == "" && mcpName == "" {
		return nil
	}
	if in.Batch {
		if !standard {
			return mismatch("Mcp-Method and Mcp-Name headers cannot describe a JSON-RPC batch")
		}
		return &Error{Code: CodeInvalidRequest,
			Message: "JSON-RPC batches are not allowed in protocol version " + quote(pv)}
	}
	if len(in.Messages) != 1 {
		return &Error{Code: CodeInvalidRequest, Message: "expected one JSON-RPC message"}
	}
	m := &in.Messages[0]

	method := trimOWS(mcpMethod)
	if hasCTL(method) {
		return mismatch("Mcp-Method header value contains invalid characters")
	}
	switch m.Kind {
	case KindRequest:
		if method == "" && standard {
			return mismatch("Mcp-Method header is required")
		}
	case KindResponse, KindInvalid:
		if method != "" {
			return mismatch("Header mismatch: Mcp-Method header value " + quote(method) +
				" but the body is not a request")
		}
		return nil
	}
	if method != "" && method != m.Method {
		return mismatch("Header mismatch: Mcp-Method header value " + quote(method) +
			" does not match body value " + quote(m.Method))
	}

	name := trimOWS(mcpName)
	switch m.Method {
	case "tools/call", "resources/read", "prompts/get":
		if name == "" && m.Kind == KindRequest && standard {
			return mismatch("Mcp-Name header is required for " + m.Method)
		}
	case "resources/subscribe", "resources/unsubscribe":
	default:
		return nil
	}
	if name == "" {
		return nil
	}
	if hasCTL(name) {
		return mismatch("Mcp-Name header value contains invalid characters")
	}
	decoded, ok := decodeSentinel(name)
	if !ok {
		return mismatch("Mcp-Name header value " + quote(name) + " has invalid base64 encoding")
	}
	if decoded != m.Name {
		return mismatch("Header mismatch: Mcp-Name header value " + quote(name) +
			" does not match body value " + quote(m.Name))
	}
	return nil
}

func mismatch(msg string) *Error {
	return &Error{Code: CodeHeaderMismatch, Message: msg}
}

func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

const (
	sentinelPrefix = "=?base64?"
	sentinelSuffix = "?="
)

// decodeSentinel decodes an "=?base64?...?=" header value; other values are returned
// unchanged. Padded standard base64 is what the spec shows; unpadded is accepted too.
func decodeSentinel(v string) (string, bool) {
	if len(v) < len(sentinelPrefix)+len(sentinelSuffix) ||
		!strings.HasPrefix(v, sentinelPrefix) || !strings.HasSuffix(v, sentinelSuffix) {
		return v, true
	}
	enc := v[len(sentinelPrefix) : len(v)-len(sentinelSuffix)]
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(enc); err != nil {
			return "", false
		}
	}
	return string(b), true
}

const maxQuoted = 128

// quote renders an untrusted value for an error message: single-quoted like the spec's
// example, truncated, with non-printable characters escaped.
func quote(s string) string {
	suffix := ""
	if len(s) > maxQuoted {
		cut := maxQuoted
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s, suffix = s[:cut], "..."
	}
	q := strconv.Quote(s)
	return "'" + q[1:len(q)-1] + suffix + "'"
}
