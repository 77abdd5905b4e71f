package authn

import (
	"errors"
	"net/http"
	"testing"
)

func TestBearerToken(t *testing.T) {
	cases := []struct {
		in   string
		tok  string
		want bool
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"BeArEr abc", "abc", true},
		{"Bearer   abc", "abc", true},                       // several spaces before the token
		{"  Bearer abc  ", "abc", true},                     // surrounding whitespace
		{"Bearer a-b_c.d~e+f/g==", "a-b_c.d~e+f/g==", true}, // full token68 alphabet
		{"Bearer abc=", "abc=", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Bearerabc", "", false},
		{"Bearer\tabc", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"DPoP abc", "", false},
		{"Token abc", "", false},
		{"abc.def.ghi", "", false},
		{"Bearer abc def", "", false}, // two tokens
		{"Bearer abc,Bearer def", "", false},
		{"Bearer \"abc\"", "", false},
		{"Bearer =abc", "", false},
		{"Bearer ab=c", "", false},
		{"Bearer abc\x00", "", false},
		{"Bearer ab\ncd", "", false},
		{"Bearer абв", "", false},
		{"Bearers abc", "", false},
	}
	for _, tc := range cases {
		tok, ok := BearerToken(tc.in)
		if tok != tc.tok || ok != tc.want {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tc.in, tok, ok, tc.tok, tc.want)
		}
	}
}

func TestTokenFromHeader(t *testing.T) {
	h := func(vals ...string) http.Header {
		hd := http.Header{}
		for _, v := range vals {
			hd.Add("Authorization", v)
		}
		return hd
	}
	if tok, err := TokenFromHeader(h("Bearer x.y.z")); err != nil || tok != "x.y.z" {
		t.Errorf("got %q, %v", tok, err)
	}
	for name, hd := range map[string]http.Header{
		"none":  h(),
		"basic": h("Basic dXNlcjpwYXNz"),
		"dpop":  h("DPoP x.y.z"),
		"empty": h(""),
	} {
		if _, err := TokenFromHeader(hd); !errors.Is(err, ErrNoToken) {
			t.Errorf("%s: err = %v, want ErrNoToken", name, err)
		}
	}
	for name, hd := range map[string]http.Header{
		"two headers":  h("Bearer a", "Bearer b"),
		"bearer alone": h("Bearer"),
		"bearer space": h("Bearer "),
		"two tokens":   h("Bearer a b"),
		"quoted":       h(`Bearer "a"`),
	} {
		_, err := TokenFromHeader(hd)
		if !errors.Is(err, ErrInvalidToken) || Reason(err) != ReasonMalformedHeader {
			t.Errorf("%s: err = %v, want %q", name, err, ReasonMalformedHeader)
		}
	}
}
