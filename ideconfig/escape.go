package ideconfig

import (
	"fmt"
	"strings"
)

// shQuote quotes s as one POSIX sh word. Words made only of characters that
// no shell treats specially are returned bare; anything else is wrapped in
// single quotes, with each embedded quote closed, escaped and reopened
// (the four bytes quote, backslash, quote, quote).
func shQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tomlString renders s as a TOML basic string (TOML 1.0 §String): ", \ and
// every control character (U+0000–U+001F, U+007F) are escaped.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlKey renders k as a bare key when TOML allows it (A-Za-z0-9_-), else as
// a quoted key, so "a.b" stays one key instead of a dotted path.
func tomlKey(k string) string {
	if k != "" && strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return k
	}
	return tomlString(k)
}

// tomlInline renders sorted headers as an inline table with quoted keys.
func tomlInline(hs []header) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = tomlString(h.Name) + " = " + tomlString(h.Value)
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}
