package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestWS(t *testing.T) {
	for _, tc := range []struct {
		in   string
		i    int
		want int
	}{
		{"", 0, 0},
		{"x", 0, 0},
		{" \t\r\nx", 0, 4},
		{"   ", 0, 3},
		{"a  b", 1, 3},
		{"\v x", 0, 0},    // vertical tab is not JSON whitespace
		{"\u00a0x", 0, 0}, // nor is NBSP
	} {
		if got := WS([]byte(tc.in), tc.i); got != tc.want {
			t.Errorf("WS(%q, %d) = %d, want %d", tc.in, tc.i, got, tc.want)
		}
	}
}

func TestIsDigitIsHex(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if got, want := IsDigit(b), strings.IndexByte("0123456789", b) >= 0; got != want {
			t.Errorf("IsDigit(%q) = %v", b, got)
		}
		if got, want := IsHex(b), strings.IndexByte("0123456789abcdefABCDEF", b) >= 0; got != want {
			t.Errorf("IsHex(%q) = %v", b, got)
		}
	}
}

func TestString(t *testing.T) {
	long := strings.Repeat("abcdefgh", 5)
	for _, tc := range []struct {
		in      string
		end     int // position returned: after the closing quote, or of the error
		escaped bool
		err     Err
	}{
		{`""`, 2, false, 0},
		{`"a"`, 3, false, 0},
		{`"a"xyz`, 3, false, 0},
		{`"` + long + `"`, len(long) + 2, false, 0},
		{`"` + long + `\n"`, len(long) + 4, true, 0},
		{`"é\u00e9"`, 10, true, 0},
		{"\"\xff\xfe\"", 4, false, 0}, // invalid UTF-8 is left to the decoder
		{`"\"\\\/\b\f\n\r\t"`, 18, true, 0},
		{`"\uABcd"`, 8, true, 0},
		{`"1234567\"89"`, 13, true, 0}, // escape inside the first 8-byte word
		{`"`, 1, false, Syntax},
		{`"abc`, 4, false, Syntax},
		{`"` + long, len(long) + 1, false, Syntax},
		{`"a\`, 3, true, Syntax},
		{`"a\x"`, 3, true, Syntax},
		{`"\u12"`, 5, true, Syntax},
		{`"\u12g4"`, 5, true, Syntax},
		{`"\u123`, 6, true, Syntax},
		{"\"a\x00b\"", 2, false, Syntax},
		{"\"abcdefghij\x1fk\"", 11, false, Syntax},
		{"\"a\tb\"", 2, false, Syntax},
		{"\"a\x7fb\"", 5, false, 0}, // DEL is allowed
	} {
		end, esc, err := String([]byte(tc.in), 0)
		if end != tc.end || esc != tc.escaped || err != tc.err {
			t.Errorf("String(%q) = %d, %v, %d; want %d, %v, %d", tc.in, end, esc, err, tc.end, tc.escaped, tc.err)
		}
	}
	// A string starting mid-buffer.
	if end, _, err := String([]byte(`xx"ab"`), 2); end != 6 || err != 0 {
		t.Errorf("String at offset 2 = %d, %d", end, err)
	}
}

func TestNumber(t *testing.T) {
	for _, tc := range []struct {
		in  string
		end int
		err Err
	}{
		{"0", 1, 0},
		{"-0", 2, 0},
		{"123", 3, 0},
		{"-1.5e+10", 8, 0},
		{"1E5", 3, 0},
		{"1e-5,", 4, 0},
		{"0.25]", 4, 0},
		{"01", 1, 0}, // stops after the leading zero; the caller sees the '1'
		{"", 0, Syntax},
		{"-", 1, Syntax},
		{"-a", 1, Syntax},
		{"+1", 0, Syntax},
		{".5", 0, Syntax},
		{"1.", 2, Syntax},
		{"1.e5", 2, Syntax},
		{"1e", 2, Syntax},
		{"1e+", 3, Syntax},
		{"1ex", 2, Syntax},
	} {
		end, err := Number([]byte(tc.in), 0)
		if end != tc.end || err != tc.err {
			t.Errorf("Number(%q) = %d, %d; want %d, %d", tc.in, end, err, tc.end, tc.err)
		}
	}
}

func TestLiteral(t *testing.T) {
	for _, tc := range []struct {
		in, lit string
		end     int
		err     Err
	}{
		{"true", "true", 4, 0},
		{"false,", "false", 5, 0},
		{"null]", "null", 4, 0},
		{"nul", "null", 3, Syntax},
		{"nulL", "null", 3, Syntax},
		{"tru", "true", 3, Syntax},
		{"trUe", "true", 2, Syntax},
		{"f", "false", 1, Syntax},
	} {
		end, err := Literal([]byte(tc.in), 0, tc.lit)
		if end != tc.end || err != tc.err {
			t.Errorf("Literal(%q, %q) = %d, %d; want %d, %d", tc.in, tc.lit, end, err, tc.end, tc.err)
		}
	}
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		in      string
		closing byte
		end     int
		empty   bool
	}{
		{"{}", '}', 2, true},
		{"{ \n }", '}', 5, true},
		{`{ "a"`, '}', 2, false},
		{"[]", ']', 2, true},
		{"[ 1]", ']', 2, false},
		{"[}", ']', 1, false},
		{"{", '}', 1, false},
	} {
		end, empty := Open([]byte(tc.in), 0, tc.closing)
		if end != tc.end || empty != tc.empty {
			t.Errorf("Open(%q) = %d, %v; want %d, %v", tc.in, end, empty, tc.end, tc.empty)
		}
	}
}

func TestMemberKey(t *testing.T) {
	for _, tc := range []struct {
		in      string
		keyEnd  int
		next    int
		escaped bool
		err     Err
	}{
		{`"a":1`, 2, 4, false, 0},
		{`"a" : 1`, 2, 6, false, 0},
		{"\"a\"\n:\t1", 2, 6, false, 0},
		{`"\u0061":1`, 7, 9, true, 0},
		{`"":1`, 1, 3, false, 0},
		{`"a":`, 2, 4, false, 0}, // the value is the caller's to check
		{`a:1`, 0, 0, false, Syntax},
		{``, 0, 0, false, Syntax},
		{`1:1`, 0, 0, false, Syntax},
		{`"a"1`, 2, 3, false, Syntax},
		{`"a" `, 2, 4, false, Syntax},
		{`"a`, 0, 2, false, Syntax},
		{"\"a\x01\":1", 0, 2, false, Syntax},
	} {
		keyEnd, next, esc, err := MemberKey([]byte(tc.in), 0)
		if err == 0 && keyEnd != tc.keyEnd || next != tc.next || esc != tc.escaped || err != tc.err {
			t.Errorf("MemberKey(%q) = %d, %d, %v, %d; want %d, %d, %v, %d", tc.in, keyEnd, next, esc, err,
				tc.keyEnd, tc.next, tc.escaped, tc.err)
		}
	}
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		in      string
		closing byte
		end     int
		done    bool
		err     Err
	}{
		{",1", '}', 1, false, 0},
		{" , \n1", ']', 4, false, 0},
		{"}", '}', 1, true, 0},
		{"  ]x", ']', 3, true, 0},
		{"]", '}', 0, false, Syntax},
		{"", '}', 0, false, Syntax},
		{"  ", ']', 2, false, Syntax},
		{":", '}', 0, false, Syntax},
	} {
		end, done, err := Next([]byte(tc.in), 0, tc.closing)
		if end != tc.end || done != tc.done || err != tc.err {
			t.Errorf("Next(%q, %q) = %d, %v, %d; want %d, %v, %d", tc.in, tc.closing, end, done, err,
				tc.end, tc.done, tc.err)
		}
	}
}

func TestSkip(t *testing.T) {
	for _, tc := range []struct {
		in  string
		end int
		err Err
	}{
		{`{}`, 2, 0},
		{`[]`, 2, 0},
		{`{"a":[1,2.5,-0,1e5,true,false,null,"x\"}",{}],"b":{"c":[]}} `, 59, 0},
		{`[ 1 , [ ] , { } ]`, 17, 0},
		{`"s"`, 3, 0},
		{`-1`, 2, 0},
		{`null`, 4, 0},
		{`1 2`, 1, 0}, // one value; trailing data is the caller's to check
		{``, 0, Syntax},
		{` 1`, 0, Syntax}, // whitespace must already be skipped
		{`{`, 1, Syntax},
		{`[`, 1, Syntax},
		{`[1,]`, 3, Syntax},
		{`[1 2]`, 3, Syntax},
		{`{"a":1,}`, 7, Syntax},
		{`{"a" 1}`, 5, Syntax},
		{`{"a":}`, 5, Syntax},
		{`{1:2}`, 1, Syntax},
		{`{"a":1]`, 6, Syntax},
		{`[1}`, 2, Syntax},
		{`x`, 0, Syntax},
		{`+1`, 0, Syntax},
		{`tru`, 3, Syntax},
		{`[nul]`, 4, Syntax},
		{"\"a\nb\"", 2, Syntax},
	} {
		end, err := Skip([]byte(tc.in), 0, 1, 64)
		if end != tc.end || err != tc.err {
			t.Errorf("Skip(%q) = %d, %d; want %d, %d", tc.in, end, err, tc.end, tc.err)
		}
	}
}

func TestSkipDepth(t *testing.T) {
	nest := func(n int, open, close string) []byte {
		return []byte(strings.Repeat(open, n) + strings.Repeat(close, n))
	}
	for _, tc := range []struct {
		name     string
		in       []byte
		depth    int
		maxDepth int
		end      int
		err      Err
	}{
		{"arrays at the limit", nest(64, "[", "]"), 1, 64, 128, 0},
		{"arrays over the limit", nest(65, "[", "]"), 1, 64, 64, TooDeep},
		{"objects at the limit", []byte(strings.Repeat(`{"a":`, 10) + "1" + strings.Repeat("}", 10)), 1, 10, 61, 0},
		{"objects over the limit", []byte(strings.Repeat(`{"a":`, 11) + "1" + strings.Repeat("}", 11)), 1, 10, 50, TooDeep},
		{"starting depth counts", nest(3, "[", "]"), 3, 4, 2, TooDeep},
		{"scalar at any depth", []byte("1"), 100, 1, 1, 0},
		{"empty container over the limit", []byte("[]"), 2, 1, 0, TooDeep},
		{"limit 0 rejects containers", []byte("{}"), 1, 0, 0, TooDeep},
		{"syntax error before the limit", []byte("[[1,]]"), 1, 1, 1, TooDeep},
		{"syntax error within the limit", []byte("[[1,]]"), 1, 2, 4, Syntax},
	} {
		end, err := Skip(tc.in, 0, tc.depth, tc.maxDepth)
		if end != tc.end || err != tc.err {
			t.Errorf("%s: Skip = %d, %d; want %d, %d", tc.name, end, err, tc.end, tc.err)
		}
	}
}

// TestSkipMatchesEncodingJSON checks that Skip of a whole input accepts exactly what
// encoding/json's Valid accepts.
func TestSkipMatchesEncodingJSON(t *testing.T) {
	for _, in := range skipCorpus {
		checkValid(t, []byte(in))
	}
}

var skipCorpus = []string{
	`{"a":[1,2.5,-0,1e5,1E-5,true,false,null,"\u0000",{}]}`, `[]`, `{}`, `""`, `0`,
	`[1,]`, `{"a":1,}`, `01`, `1.`, `-`, `"\x"`, "\"\x01\"", `[1 2]`, `{"a" 1}`,
	`nul`, `truefalse`, `"\ud800"`, "\"\xff\"", ` [ { "a" : [ ] } ] `, `{"a":"b"}}`,
}

func checkValid(t *testing.T, b []byte) {
	t.Helper()
	i := WS(b, 0)
	end, err := Skip(b, i, 1, 1<<30)
	got := err == 0 && WS(b, end) == len(b)
	if want := json.Valid(b); got != want {
		t.Errorf("Skip(%q): valid %v, encoding/json says %v", b, got, want)
	}
}

func FuzzSkip(f *testing.F) {
	for _, in := range skipCorpus {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkValid(t, b)
		// Every string Skip accepts is one encoding/json accepts.
		if len(b) > 0 && b[0] == '"' {
			if end, _, err := String(b, 0); err == 0 && !json.Valid(b[:end]) {
				t.Errorf("String(%q) accepted %q", b, b[:end])
			}
		}
	})
}
