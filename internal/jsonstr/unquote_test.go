package jsonstr

import (
	"encoding/json"
	"testing"
)

func TestAppendUnquoteMatchesEncodingJSON(t *testing.T) {
	for _, lit := range []string{`""`, `"plain"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\udc00x"`, "\"caf\xc3\xa9\"", "\"bad\xff\""} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		if got := string(AppendUnquote(nil, []byte(lit[1:len(lit)-1]))); got != want {
			t.Errorf("%s: got %q, want %q", lit, got, want)
		}
	}
}

func FuzzAppendUnquote(f *testing.F) {
	for _, s := range []string{`a\u0041`, `\ud800\udc00`, `\n`, "x\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit := `"` + s + `"`
		var want string
		if json.Unmarshal([]byte(lit), &want) != nil {
			return // AppendUnquote is only given strings its caller validated
		}
		if got := string(AppendUnquote(nil, []byte(s))); got != want {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
	})
}
