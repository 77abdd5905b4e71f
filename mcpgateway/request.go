package mcpgateway

import (
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"net/http"
	"net/url"
	"strings"
)

// Every byte that reaches an upstream was inspected, or is known to carry no JSON-RPC.
// The MCP transports define POST with a JSON-RPC body (streamable HTTP's /mcp, the
// legacy /message), GET without one (the event streams) and DELETE without one (ending
// a session); anything else would carry uninspected bytes past the policy: bodies of
// other methods (and the override headers that make an upstream treat them as POST),
// bodies on GET and DELETE, protocol upgrades whose tunnel is never inspected, and
// sub-paths that climb out of the server's MCP path.

// methodOverrideHeaders make some frameworks treat a request as another method.
var methodOverrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// allowedMethods is the Allow header of each endpoint.
func allowedMethods(ep endpoint) string {
	switch ep {
	case endpointSSE:
		return "GET"
	case endpointMessage:
		return "POST"
	}
	return "GET, POST, DELETE"
}

// checkRequestShape answers (and returns false) a request the transport of ep does not
// define: 405 with Allow for another method, 400 for a GET or DELETE with a body, an
// upgrade, or an unsafe sub-path.
func checkRequestShape(w http.ResponseWriter, r *http.Request, ep endpoint, sub string) bool {
	allowed := false
	switch r.Method {
	case http.MethodPost:
		allowed = ep != endpointSSE
	case http.MethodGet:
		allowed = ep != endpointMessage
	case http.MethodDelete:
		allowed = ep == endpointMCP
	}
	if !allowed {
		w.Header().Set("Allow", allowedMethods(ep))
		writeRPCError(w, http.StatusMethodNotAllowed, "", codeRequestRefused, "HTTP method "+quote(r.Method)+" is not part of the MCP transport; use "+allowedMethods(ep))
		return false
	}
	if r.Method != http.MethodPost && (r.ContentLength != 0 || len(r.TransferEncoding) > 0) {
		writeRPCError(w, http.StatusBadRequest, "", codeRequestRefused, "a "+r.Method+" request to an MCP endpoint carries no body")
		return false
	}
	if _, ok := r.Header["Upgrade"]; ok || headerHasToken(r.Header["Connection"], "upgrade") {
		writeRPCError(w, http.StatusBadRequest, "", codeRequestRefused, "protocol upgrades are not part of the MCP transport")
		return false
	}
	if k := duplicatedHeader(r.Header); k != "" {
		writeRPCError(w, http.StatusBadRequest, "", codeRequestRefused, "header "+k+" sent more than once")
		return false
	}
	if !subPathSafe(sub) {
		writeRPCError(w, http.StatusBadRequest, "", codeRequestRefused, "path "+quote(r.URL.Path)+" leaves the MCP endpoint: no '.' or '..' segments, empty segments, backslashes, percent signs or control characters")
		return false
	}
	return true
}

// subPathSafe reports whether sub (what follows /mcp, already percent-decoded once)
// stays under the upstream's path however the upstream reads it: no "." or ".."
// segment, no empty segment but a trailing slash, no backslash (a separator to some
// servers), no '%' (a second decoding would see what the first did not), no control
// character.
func subPathSafe(sub string) bool {
	if sub == "" {
		return true
	}
	for i := 0; i < len(sub); i++ {
		if c := sub[i]; c == '\\' || c == '%' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	rest := sub[1:] // sub starts with '/'
	for rest != "" {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." || (seg == "" && more) {
			return false
		}
		rest = after
	}
	return true
}

// stripMethodOverrides removes the method-override headers from outbound headers.
func stripMethodOverrides(h http.Header) {
	for _, k := range methodOverrideHeaders {
		delete(h, k)
	}
}

// singleHeaders are the MCP request headers a message may carry once: with two
// values the gateway and the upstream could each read another one.
var singleHeaders = [...]string{"Mcp-Name", "Mcp-Method", "Mcp-Protocol-Version"}

// duplicatedHeader names the first of singleHeaders sent more than once, or "".
func duplicatedHeader(h http.Header) string {
	for _, k := range singleHeaders {
		if len(h[k]) > 1 {
			return k
		}
	}
	return ""
}

// forwardClientCredentials reports whether a server receives the client's Cookie
// header and access_token query parameter: only a config server that opts in (a
// credential the client meant for the gateway must not reach an upstream).
func forwardClientCredentials(s *model.Server) bool { return s.ForwardClientCredentials }

// stripClientCredentials removes the client's cookies from outbound headers h unless
// keep, and returns rawQuery without access_token parameters unless keep.
func stripClientCredentials(h http.Header, rawQuery string, keep bool) string {
	if keep {
		return rawQuery
	}
	if h != nil {
		delete(h, "Cookie")
	}
	return withoutQueryParam(rawQuery, "access_token")
}

// withoutQueryParam removes every name=… (or bare name) parameter from rawQuery,
// leaving the others byte for byte. A name sent percent-encoded (acc%65ss_token) is
// removed too, so the upstream cannot decode one the gateway missed.
func withoutQueryParam(rawQuery, name string) string {
	if rawQuery == "" || (!strings.Contains(rawQuery, name) && !strings.Contains(rawQuery, "%")) {
		return rawQuery
	}
	var b strings.Builder
	for part := range strings.SplitSeq(rawQuery, "&") {
		key, _, _ := strings.Cut(part, "=")
		if dec, err := url.QueryUnescape(key); key == name || (err == nil && dec == name) || err != nil && strings.Contains(key, "%") {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}
