package listfilter

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/caddymcp/caddymcp/internal/jsonscan"
	"github.com/caddymcp/caddymcp/internal/jsonstr"
)

// CanonicalID returns the form of a raw JSON-RPC id that Lookup receives.
//
// Upstreams do not always echo an id byte for byte: the TypeScript SDK parses and
// re-serialises it, so "\u0061" comes back as "a" and 1.0 as 1. CanonicalID maps
// every spelling of the same value to one string, so that a response is matched to
// its request however the upstream re-encoded the id:
//
//   - a string is decoded (as encoding/json does: invalid UTF-8 and unpaired
//     surrogates become U+FFFD) and re-encoded with only '"', '\\' and control
//     characters escaped; a string without escapes and with valid UTF-8 is returned
//     unchanged;
//   - an integer of at most 15 digits is returned unchanged ("-0" becomes "0");
//     any other number becomes the float64 it denotes, printed without exponent when
//     it is integral and below 1e21 (as JavaScript prints it), else in shortest 'g'
//     form — so ids beyond 2^53 that differ only past float64 precision collide (the
//     gateway should treat colliding ids in one batch as unknown);
//   - anything else (null, true, …) is returned unchanged.
//
// raw should be one valid JSON value without surrounding whitespace; other input is
// returned unchanged.
func CanonicalID(raw string) string {
	if canonicalSame([]byte(raw)) {
		return raw
	}
	return string(appendCanonicalID(nil, []byte(raw)))
}

// canonicalSame reports whether raw is already canonical (the common case: a short
// integer, or a string without escapes).
func canonicalSame(raw []byte) bool {
	if len(raw) == 0 {
		return true
	}
	switch c := raw[0]; {
	case c == '"':
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return true // not a string: returned unchanged
		}
		body := raw[1 : len(raw)-1]
		for _, c := range body {
			if c == '\\' || c == '"' || c < 0x20 {
				return false
			}
		}
		return utf8.Valid(body)
	case c == '-' || (c >= '0' && c <= '9'):
		digits := raw
		if c == '-' {
			digits = raw[1:]
		}
		if len(digits) == 0 || len(digits) > 15 {
			return false
		}
		for _, d := range digits {
			if d < '0' || d > '9' {
				return false
			}
		}
		return string(raw) != "-0"
	}
	return true
}

// appendCanonicalID appends the canonical form of raw (see CanonicalID) to dst.
func appendCanonicalID(dst, raw []byte) []byte {
	if canonicalSame(raw) {
		return append(dst, raw...)
	}
	if raw[0] == '"' {
		if !validString(raw) {
			return append(dst, raw...)
		}
		mark := len(dst)
		dst = jsonstr.AppendUnquote(dst, raw[1:len(raw)-1])
		// Re-encode in place: decode into the tail, then encode from a copy. The id is
		// short; a second small buffer keeps this simple.
		dec := string(dst[mark:])
		dst = dst[:mark]
		return appendQuote(dst, dec)
	}
	if !validNumber(raw) {
		return append(dst, raw...)
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil { // out of range
		return append(dst, raw...)
	}
	if v == 0 {
		return append(dst, '0')
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e21 {
		return strconv.AppendFloat(dst, v, 'f', -1, 64)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// validString reports whether raw is exactly one JSON string.
func validString(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '"' {
		return false
	}
	i, _, err := jsonscan.String(raw, 0)
	return err == 0 && i == len(raw)
}

// validNumber reports whether raw is exactly one JSON number.
func validNumber(raw []byte) bool {
	i, err := jsonscan.Number(raw, 0)
	return err == 0 && i == len(raw)
}

// appendQuote appends s as a JSON string escaping only '"', '\\' and control
// characters. s must be valid UTF-8.
func appendQuote(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
