package listfilter

import (
	"encoding/binary"
	"math/bits"
)

// scanner validates JSON byte by byte without building values.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) errAt(sentinel error, detail string) *Error {
	return &Error{Err: sentinel, Offset: int64(s.i), Detail: detail}
}

func (s *scanner) syntax() *Error {
	if s.i >= len(s.b) {
		return s.errAt(ErrSyntax, "unexpected end of input")
	}
	return s.errAt(ErrSyntax, "unexpected "+quoteChar(s.b[s.i]))
}

func (s *scanner) tooDeep() *Error {
	return s.errAt(ErrTooDeep, "")
}

func quoteChar(c byte) string {
	const hex = "0123456789abcdef"
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return "byte 0x" + string([]byte{hex[c>>4], hex[c&0xf]})
}

// peek returns the byte at s.i, or 0 at the end of input.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// ws skips JSON whitespace.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
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

// skipString validates the string whose opening quote is at s.i and leaves s.i after
// the closing quote.
func (s *scanner) skipString() *Error {
	_, _, err := s.scanString()
	return err
}

// scanString is skipString returning where the contents start (they end at s.i-1,
// before the closing quote) and whether they contain a backslash escape.
func (s *scanner) scanString() (start int, escaped bool, err *Error) {
	b := s.b
	i := s.i + 1
	start = i
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
				s.i = i
				return start, escaped, s.syntax()
			}
		}
		switch b[i] {
		case '"':
			s.i = i + 1
			return start, escaped, nil
		case '\\':
			escaped = true
			i++
			if i >= len(b) {
				s.i = i
				return start, escaped, s.syntax()
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for k := 0; k < 4; k++ {
					if i >= len(b) || !isHex(b[i]) {
						s.i = i
						return start, escaped, s.syntax()
					}
					i++
				}
			default:
				s.i = i
				return start, escaped, s.syntax()
			}
		default: // control character
			s.i = i
			return start, escaped, s.syntax()
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (s *scanner) skipNumber() *Error {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		s.i = i
		return s.syntax()
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			s.i = i
			return s.syntax()
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.i = i
			return s.syntax()
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	s.i = i
	return nil
}

func (s *scanner) literal(lit string) *Error {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return nil
	}
	for k := 0; k < len(lit); k++ {
		if s.i >= len(s.b) || s.b[s.i] != lit[k] {
			return s.syntax()
		}
		s.i++
	}
	return nil
}

// skip validates and skips the value at s.i (whitespace already skipped). depth is
// the nesting level the value occupies if it is an object or array.
func (s *scanner) skip(depth int) *Error {
	b := s.b
	if s.i >= len(b) {
		return s.syntax()
	}
	switch c := b[s.i]; c {
	case '{':
		if depth > MaxDepth {
			return s.tooDeep()
		}
		if s.open('}') {
			return nil
		}
		for {
			if err := s.key(); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if done, err := s.next('}'); err != nil || done {
				return err
			}
		}
	case '[':
		if depth > MaxDepth {
			return s.tooDeep()
		}
		if s.open(']') {
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if done, err := s.next(']'); err != nil || done {
				return err
			}
		}
	case '"':
		return s.skipString()
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.skipNumber()
	}
}

// open consumes '{' or '[' and whitespace; if the container is empty (closing is
// next) it consumes that too and reports true.
func (s *scanner) open(closing byte) bool {
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == closing {
		s.i++
		return true
	}
	return false
}

// key scans `"key" :` and following whitespace, leaving s.i at the value.
func (s *scanner) key() *Error {
	_, _, err := s.memberKey()
	return err
}

// memberKey is key returning the key's raw contents (between the quotes, still
// escaped) and whether they contain escapes.
func (s *scanner) memberKey() (k []byte, escaped bool, err *Error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, s.syntax()
	}
	start, escaped, err := s.scanString()
	if err != nil {
		return nil, false, err
	}
	k = s.b[start : s.i-1]
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return nil, false, s.syntax()
	}
	s.i++
	s.ws()
	return k, escaped, nil
}

// next consumes whitespace and either ',' (plus whitespace) or closing, reporting
// whether the container ended.
func (s *scanner) next(closing byte) (done bool, err *Error) {
	s.ws()
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
			return false, nil
		case closing:
			s.i++
			return true, nil
		}
	}
	return false, s.syntax()
}
