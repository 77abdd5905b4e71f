package authn

import (
	"net/http"
	"strings"
)

// BearerToken extracts the token from an Authorization header value of the form
// "Bearer <token>" (RFC 6750 §2.1). The scheme is matched case-insensitively; one or more
// spaces may separate it from the token, and surrounding whitespace is ignored. ok is
// false for another scheme, an empty token, or a token that is not token68 (RFC 7235:
// letters, digits, "-._~+/", then optional "=" padding), which rules out embedded spaces,
// commas and quotes.
func BearerToken(headerValue string) (string, bool) {
	s := strings.Trim(headerValue, " \t")
	const scheme = "bearer"
	if len(s) <= len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) || s[len(scheme)] != ' ' {
		return "", false
	}
	tok := strings.TrimLeft(s[len(scheme):], " ")
	if tok == "" || !isToken68(tok) {
		return "", false
	}
	return tok, true
}

func isToken68(s string) bool {
	i := 0
	for i < len(s) && isToken68Char(s[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

func isToken68Char(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		return true
	}
	return false
}

// TokenFromHeader returns the bearer token of a request's headers:
//
//   - no Authorization header, or one with another scheme (Basic, DPoP, …): ErrNoToken
//     (RFC 6750 §3.1: the request "lacks any authentication information" for us);
//   - more than one Authorization header, or a Bearer header whose token is empty or not
//     token68: an *InvalidTokenError with ReasonMalformedHeader.
//
// Tokens in the query string or form body are not looked at (MCP forbids them).
func TokenFromHeader(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", invalid(ReasonMalformedHeader)
	}
	if tok, ok := BearerToken(vals[0]); ok {
		return tok, nil
	}
	s := strings.TrimLeft(vals[0], " \t")
	if len(s) >= 6 && strings.EqualFold(s[:6], "bearer") && (len(s) == 6 || s[6] == ' ' || s[6] == '\t') {
		return "", invalid(ReasonMalformedHeader)
	}
	return "", ErrNoToken
}
