package upstreamoauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// CheckAudience refuses an access token meant for another resource. Access tokens are
// opaque to clients, but one that is a JWT says whom it is for: when it names
// audiences and resource is not among them, the authorization server answered for
// something else than what the gateway asked (RFC 8707), and the token must not be
// stored or sent. A token that is not a JWT, or names no audience, passes: the
// upstream checks it.
func CheckAudience(accessToken, resource string) error {
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil // not a JWS: opaque to us
	}
	var claims struct {
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(payload, &claims) != nil || len(claims.Aud) == 0 || string(claims.Aud) == "null" {
		return nil
	}
	var auds []string
	var one string
	if json.Unmarshal(claims.Aud, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(claims.Aud, &auds) != nil {
		return fmt.Errorf("the access token's aud claim is neither a string nor a list of strings")
	}
	for _, a := range auds {
		if sameResource(a, resource) {
			return nil
		}
	}
	return fmt.Errorf("the access token is for audience %s, not for %q", printable(strings.Join(auds, ", "), 300), resource)
}

// sameResource compares resource identifiers, ignoring one trailing slash.
func sameResource(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}
