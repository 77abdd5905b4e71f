package listfilter

import "github.com/caddymcp/caddymcp/internal/jsonscan"

// scanner validates JSON byte by byte without building values, with the primitives
// of internal/jsonscan, reporting errors as *Error.
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

// fail records the position i of a jsonscan error e and returns it as an *Error.
func (s *scanner) fail(i int, e jsonscan.Err) *Error {
	s.i = i
	if e == jsonscan.TooDeep {
		return s.tooDeep()
	}
	return s.syntax()
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
func (s *scanner) ws() { s.i = jsonscan.WS(s.b, s.i) }

// skipString validates the string whose opening quote is at s.i and leaves s.i after
// the closing quote.
func (s *scanner) skipString() *Error {
	_, _, err := s.scanString()
	return err
}

// scanString is skipString returning where the contents start (they end at s.i-1,
// before the closing quote) and whether they contain a backslash escape.
func (s *scanner) scanString() (start int, escaped bool, err *Error) {
	start = s.i + 1
	i, escaped, e := jsonscan.String(s.b, s.i)
	if e != 0 {
		return start, escaped, s.fail(i, e)
	}
	s.i = i
	return start, escaped, nil
}

func (s *scanner) skipNumber() *Error {
	i, e := jsonscan.Number(s.b, s.i)
	if e != 0 {
		return s.fail(i, e)
	}
	s.i = i
	return nil
}

// skip validates and skips the value at s.i (whitespace already skipped). depth is
// the nesting level the value occupies if it is an object or array.
func (s *scanner) skip(depth int) *Error {
	i, e := jsonscan.Skip(s.b, s.i, depth, MaxDepth)
	if e != 0 {
		return s.fail(i, e)
	}
	s.i = i
	return nil
}

// open consumes '{' or '[' and whitespace; if the container is empty (closing is
// next) it consumes that too and reports true.
func (s *scanner) open(closing byte) (empty bool) {
	s.i, empty = jsonscan.Open(s.b, s.i, closing)
	return empty
}

// memberKey scans `"key" :` and following whitespace, leaving s.i at the value, and
// returns the key's raw contents (between the quotes, still escaped) and whether they
// contain escapes.
func (s *scanner) memberKey() (k []byte, escaped bool, err *Error) {
	start := s.i + 1
	end, i, escaped, e := jsonscan.MemberKey(s.b, s.i)
	if e != 0 {
		return nil, false, s.fail(i, e)
	}
	s.i = i
	return s.b[start:end], escaped, nil
}

// next consumes whitespace and either ',' (plus whitespace) or closing, reporting
// whether the container ended.
func (s *scanner) next(closing byte) (done bool, err *Error) {
	i, done, e := jsonscan.Next(s.b, s.i, closing)
	if e != 0 {
		return false, s.fail(i, e)
	}
	s.i = i
	return done, nil
}
