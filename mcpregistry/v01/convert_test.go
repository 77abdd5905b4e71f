package v01

import (
	"strings"
	"testing"
)

func TestImportedName(t *testing.T) {
	for _, tc := range []struct{ official, prefix, want string }{
		{"com.example/github", "", "github"},
		{"io.github.Foo/GitHub_Server", "", "github_server"},
		{"com.example/My Server!", "x-", "x-my-server-"},
		{"com.example/-.weird", "", "weird"},
		{"com.example/" + strings.Repeat("a", 80), "p-", "p-" + strings.Repeat("a", 61)},
	} {
		got, err := ImportedName(tc.official, tc.prefix)
		if err != nil || got != tc.want {
			t.Errorf("ImportedName(%q, %q) = %q, %v; want %q", tc.official, tc.prefix, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ official, prefix string }{
		{"noslash", ""},
		{"com.example/", ""},
		{"a/b/c", ""},
		{"com.example/---", ""},  // nothing left
		{"com.example/ok", "-x"}, // prefix must start with a letter or digit
		{"com.example/ok", "X"},  // upper case
	} {
		if got, err := ImportedName(tc.official, tc.prefix); err == nil {
			t.Errorf("ImportedName(%q, %q) = %q, want an error", tc.official, tc.prefix, got)
		}
	}
}

func TestTruncateRunes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 100, "short"},
		{strings.Repeat("x", 100), 100, strings.Repeat("x", 100)},
		{strings.Repeat("x", 101), 100, strings.Repeat("x", 99) + "…"},
		{"日本語テキスト", 4, "日本語…"},
	} {
		if got := truncateRunes(tc.in, tc.n); got != tc.want {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
