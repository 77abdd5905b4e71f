// Package jsonscan holds the byte-level JSON (RFC 8259) scanning primitives shared by
// the gateway's allocation-free scanners (internal/jsonrpc, internal/listfilter). They
// validate and skip JSON without building values; string decoding lives in
// internal/jsonstr.
//
// Every function takes the input b and a position i and returns the position after
// what it consumed. On failure it returns an Err and, as the position, the offset of
// the offending byte (len(b) when the input ended early), so that callers can report
// errors in their own types.
package jsonscan

import (
	"encoding/binary"
	"math/bits"
)

// Err says why a scan failed; the zero value means it did not.
type Err uint8

const (
	// Syntax: the input is not valid JSON at the returned offset.
	Syntax Err = 1 + iota
	// TooDeep: the object or array at the returned offset would nest deeper than the
	// limit given to Skip.
	TooDeep
)

// WS returns the position of the first byte at or after i that is not JSON
// whitespace (space, tab, line feed, carriage return), or len(b).
func WS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// IsDigit reports whether c is an ASCII decimal digit.
func IsDigit(c byte) bool { return c >= '0' && c <= '9' }

// IsHex reports whether c is an ASCII hexadecimal digit.
func IsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// plain[c] reports whether byte c stands for itself inside a JSON string.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialMask returns, for the little-endian word x, a mask with the high bit of
// each byte that is '"', '\\' or a control character set (the classic SWAR zero-byte
// test). Bytes above a matching byte may be flagged spuriously, but the lowest flagged
// byte always matches, and the mask is zero exactly when no byte matches.
func specialMask(x uint64) uint64 {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (b-lsb)&^b | (x-lsb*0x20)&^x) & msb
}

// String validates the string whose opening quote is at b[i] (the caller has checked
// it) and returns the position after its closing quote; its contents, still escaped,
// are b[i+1:end-1]. escaped reports whether they contain a backslash escape. Raw
// control characters and invalid escapes are Syntax errors; bytes >= 0x80 are not
// checked (decoders replace invalid UTF-8).
func String(b []byte, i int) (end int, escaped bool, err Err) {
	i++
	for {
		if i+8 <= len(b) {
			m := specialMask(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for i < len(b) && plain[b[i]] {
				i++
			}
			if i >= len(b) {
				return i, escaped, Syntax
			}
		}
		switch b[i] {
		case '"':
			return i + 1, escaped, 0
		case '\\':
			escaped = true
			i++
			if i >= len(b) {
				return i, escaped, Syntax
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for k := 0; k < 4; k++ {
					if i >= len(b) || !IsHex(b[i]) {
						return i, escaped, Syntax
					}
					i++
				}
			default:
				return i, escaped, Syntax
			}
		default: // control character
			return i, escaped, Syntax
		}
	}
}

// Number validates the number starting at b[i] and returns the position after it.
func Number(b []byte, i int) (int, Err) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && IsDigit(b[i]); i++ {
		}
	default:
		return i, Syntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !IsDigit(b[i]) {
			return i, Syntax
		}
		for i++; i < len(b) && IsDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !IsDigit(b[i]) {
			return i, Syntax
		}
		for i++; i < len(b) && IsDigit(b[i]); i++ {
		}
	}
	return i, 0
}

// Literal checks that lit ("true", "false" or "null") stands at b[i] and returns the
// position after it; on a mismatch the position is that of the first differing byte.
func Literal(b []byte, i int, lit string) (int, Err) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), 0
	}
	for k := 0; k < len(lit); k++ {
		if i >= len(b) || b[i] != lit[k] {
			return i, Syntax
		}
		i++
	}
	return i, 0
}

// Skip validates the value at b[i] (whitespace already skipped) and returns the
// position after it. depth is the nesting level the value occupies if it is an object
// or array; one deeper than maxDepth is a TooDeep error at its opening byte.
func Skip(b []byte, i, depth, maxDepth int) (int, Err) {
	if i >= len(b) {
		return i, Syntax
	}
	var err Err
	switch b[i] {
	case '{':
		if depth > maxDepth {
			return i, TooDeep
		}
		var empty, done bool
		if i, empty = Open(b, i, '}'); empty {
			return i, 0
		}
		for {
			if _, i, _, err = MemberKey(b, i); err != 0 {
				return i, err
			}
			if i, err = Skip(b, i, depth+1, maxDepth); err != 0 {
				return i, err
			}
			if i, done, err = Next(b, i, '}'); err != 0 || done {
				return i, err
			}
		}
	case '[':
		if depth > maxDepth {
			return i, TooDeep
		}
		var empty, done bool
		if i, empty = Open(b, i, ']'); empty {
			return i, 0
		}
		for {
			if i, err = Skip(b, i, depth+1, maxDepth); err != 0 {
				return i, err
			}
			if i, done, err = Next(b, i, ']'); err != 0 || done {
				return i, err
			}
		}
	case '"':
		i, _, err = String(b, i)
		return i, err
	case 't':
		return Literal(b, i, "true")
	case 'f':
		return Literal(b, i, "false")
	case 'n':
		return Literal(b, i, "null")
	default:
		return Number(b, i)
	}
}

// Open consumes the '{' or '[' at b[i] and whitespace; if the container is empty
// (closing is next) it consumes that too and reports true.
func Open(b []byte, i int, closing byte) (int, bool) {
	i = WS(b, i+1)
	if i < len(b) && b[i] == closing {
		return i + 1, true
	}
	return i, false
}

// MemberKey scans an object member's `"key" :` and following whitespace at b[i],
// returning the position of the value. The key's contents, still escaped, are
// b[i+1:keyEnd]; escaped reports whether they contain a backslash escape.
func MemberKey(b []byte, i int) (keyEnd, next int, escaped bool, err Err) {
	if i >= len(b) || b[i] != '"' {
		return 0, i, false, Syntax
	}
	if i, escaped, err = String(b, i); err != 0 {
		return 0, i, escaped, err
	}
	keyEnd = i - 1
	i = WS(b, i)
	if i >= len(b) || b[i] != ':' {
		return keyEnd, i, escaped, Syntax
	}
	return keyEnd, WS(b, i+1), escaped, 0
}

// Next consumes whitespace and either ',' (plus whitespace) or closing ('}' or ']')
// after a member or element, reporting whether the container ended.
func Next(b []byte, i int, closing byte) (next int, done bool, err Err) {
	i = WS(b, i)
	if i < len(b) {
		switch b[i] {
		case ',':
			return WS(b, i+1), false, 0
		case closing:
			return i + 1, true, 0
		}
	}
	return i, false, Syntax
}
