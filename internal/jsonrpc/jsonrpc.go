// Package jsonrpc inspects MCP JSON-RPC 2.0 request bodies on the gateway's hot path.
//
// Inspect scans a body once, validating it as JSON and extracting only what routing and
// policy need (kind, method, id, tool/prompt name or resource URI, per-request protocol
// version). It never builds values for params: nested data is skipped byte by byte.
// The package uses only the standard library and the internal jsonscan and jsonstr
// packages; it has no Caddy dependency.
package jsonrpc

import (
	"strconv"
	"unicode/utf8"

	"github.com/caddymcp/caddymcp/internal/jsonscan"
)

// Standard JSON-RPC 2.0 error codes and the MCP codes the gateway emits.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603

	// CodeHeaderMismatch is HeaderMismatch from protocol 2026-07-28: an HTTP header
	// disagrees with the body, or a required header is missing (answer with HTTP 400).
	CodeHeaderMismatch = -32020
)

// Error is a JSON-RPC error object. Inspect and CheckHeaders return *Error.
type Error struct {
	Code    int
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	return "jsonrpc error " + strconv.Itoa(e.Code) + ": " + e.Message
}

// AppendErrorResponse appends a JSON-RPC error response
//
//	{"jsonrpc":"2.0","id":<id>,"error":{"code":<code>,"message":"<message>"}}
//
// to dst and returns the extended slice. id is raw JSON as found in Message.ID; "" (or
// anything that is not a single JSON string or number) is written as null. message is
// escaped so that the output is valid JSON and safe to embed in HTML: '"', '\\', control
// characters, '<', '>', '&', U+2028 and U+2029 are escaped, and invalid UTF-8 becomes
// U+FFFD.
func AppendErrorResponse(dst []byte, id string, code int, message string) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if validID(id) {
		dst = append(dst, id...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, message)
	return append(dst, "}}"...)
}

// validID reports whether id is exactly one JSON string or number.
func validID(id string) bool {
	if id == "" || (id[0] != '"' && id[0] != '-' && (id[0] < '0' || id[0] > '9')) {
		return false
	}
	b := []byte(id) // does not escape; no allocation for short ids
	var i int
	var err jsonscan.Err
	if id[0] == '"' {
		i, _, err = jsonscan.String(b, 0)
	} else {
		i, err = jsonscan.Number(b, 0)
	}
	return err == 0 && i == len(b)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a quoted JSON string, escaped as described for
// AppendErrorResponse.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
