package mcpgateway

import (
	"net/http"
	"strings"
)

// A browser client on another origin (one allowed_origins lists) asks before its first
// POST whether it may send the MCP headers: the CORS preflight, an OPTIONS request with
// no body. The gateway answers it itself — OPTIONS is not part of the MCP transport and
// never reaches an upstream — for the methods the endpoint takes and the request
// headers the transport uses. The answers to the real requests carry the upstream's
// CORS headers, as they always have.

// corsRequestHeaders are the request headers a browser may send to an MCP endpoint.
var corsRequestHeaders = []string{
	"accept", "authorization", "content-type", "last-event-id", "mcp-method", "mcp-name",
	"mcp-protocol-version", "mcp-session-id", "x-authorization",
}

// isPreflight reports whether r is a CORS preflight.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// answerPreflight answers a preflight whose Origin the gateway already accepted. It
// grants the requested headers that the transport uses (Mcp-Param-* included) and no
// others, and no credentials mode: MCP clients send bearer tokens, not cookies.
func answerPreflight(w http.ResponseWriter, r *http.Request, ep endpoint) {
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		writeRPCError(w, http.StatusBadRequest, "", codeRequestRefused, "a CORS preflight carries no body")
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", allowedMethods(ep))
	if granted := grantedHeaders(r.Header.Values("Access-Control-Request-Headers")); granted != "" {
		h.Set("Access-Control-Allow-Headers", granted)
	}
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// grantedHeaders is the comma-joined subset of the requested header names that
// corsRequestHeaders or the Mcp-Param- prefix admits, as the browser spelled them.
func grantedHeaders(requested []string) string {
	var out []string
	for _, line := range requested {
		for _, name := range strings.Split(line, ",") {
			name = strings.TrimSpace(name)
			lower := strings.ToLower(name)
			if !validToken(name) || len(out) >= 64 {
				continue
			}
			for _, ok := range corsRequestHeaders {
				if lower == ok {
					out = append(out, name)
					break
				}
			}
			if strings.HasPrefix(lower, "mcp-param-") {
				out = append(out, name)
			}
		}
	}
	return strings.Join(out, ", ")
}

// validToken reports whether s is an RFC 9110 token (a header name).
func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
