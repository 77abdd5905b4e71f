package authn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

var b64 = base64.RawURLEncoding.Strict()

// compact is a JWS in compact serialization, split but not yet trusted.
type compact struct {
	signingInput string // header "." payload, exactly as sent
	alg, kid     string
	claims       map[string]json.RawMessage
	sig          []byte
}

// parseCompact splits and decodes a token. It rejects anything that is not exactly three
// base64url segments (header and payload non-empty) (which also rules out JWE, the JSON
// serialization, padding and embedded whitespace), headers that are not a JSON object with
// a string alg, and critical header extensions (RFC 7515 §4.1.11: we understand none; this
// also rules out RFC 7797 unencoded payloads).
func parseCompact(token string) (*compact, error) {
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			dots++
		default:
			return nil, errors.New("character outside the base64url alphabet")
		}
	}
	if dots != 2 {
		return nil, errors.New("not three segments")
	}
	i := strings.IndexByte(token, '.')
	j := strings.LastIndexByte(token, '.')
	// An empty signature is let through here so that an unsigned token is reported as
	// what it is (alg "none": unsupported algorithm); no allowed alg verifies it.
	if i == 0 || j == i+1 {
		return nil, errors.New("empty segment")
	}
	hdrJSON, err := b64.DecodeString(token[:i])
	if err != nil {
		return nil, errors.New("header is not base64url")
	}
	payload, err := b64.DecodeString(token[i+1 : j])
	if err != nil {
		return nil, errors.New("payload is not base64url")
	}
	sig, err := b64.DecodeString(token[j+1:])
	if err != nil {
		return nil, errors.New("signature is not base64url")
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil || hdr == nil {
		return nil, errors.New("header is not a JSON object")
	}
	if _, ok := hdr["crit"]; ok {
		return nil, errors.New("critical header extensions are not supported")
	}
	if _, ok := hdr["b64"]; ok {
		return nil, errors.New("unencoded payloads are not supported")
	}
	c := &compact{signingInput: token[:j], sig: sig}
	var ok bool
	if c.alg, ok = jsonString(hdr["alg"]); !ok {
		return nil, errors.New("alg is missing or not a string")
	}
	if raw, present := hdr["kid"]; present {
		if c.kid, ok = jsonString(raw); !ok {
			return nil, errors.New("kid is not a string")
		}
	}
	if err := json.Unmarshal(payload, &c.claims); err != nil || c.claims == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	return c, nil
}

// jsonString decodes a JSON string value; ok is false for any other JSON type or absence.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// numericDate decodes an RFC 7519 NumericDate (seconds, possibly fractional).
func numericDate(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || raw[0] == '"' || raw[0] == 'n' {
		return time.Time{}, false
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, false
	}
	if math.IsNaN(f) || f < 0 || f > 253402300799 { // year 9999
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// stringList decodes a string (one element, or split on spaces when split is set) or an
// array of strings (non-string elements are ignored). ok is false for other JSON types.
func stringList(raw json.RawMessage, split bool) ([]string, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	if raw[0] == '"' {
		s, ok := jsonString(raw)
		if !ok {
			return nil, false
		}
		if split {
			return strings.Fields(s), true
		}
		if s == "" {
			return nil, true
		}
		return []string{s}, true
	}
	if raw[0] != '[' {
		return nil, false
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, false
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := jsonString(it); ok && s != "" {
			out = append(out, s)
		}
	}
	return out, true
}

// claimPath finds the value at path. A key equal to the whole remaining path wins (so
// "cognito:groups" and URL-named claims with dots work); otherwise each dot is tried, left
// to right, as a step into a nested object ("realm_access.roles").
func claimPath(obj map[string]json.RawMessage, path string, depth int) (json.RawMessage, bool) {
	if v, ok := obj[path]; ok {
		return v, true
	}
	if depth > 8 {
		return nil, false
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		raw, ok := obj[path[:i]]
		if !ok || len(raw) == 0 || raw[0] != '{' {
			continue
		}
		var sub map[string]json.RawMessage
		if json.Unmarshal(raw, &sub) != nil {
			continue
		}
		if v, ok := claimPath(sub, path[i+1:], depth+1); ok {
			return v, true
		}
	}
	return nil, false
}
