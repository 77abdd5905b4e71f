package mcpgateway

import (
	"net/http"
	"strconv"

	"github.com/caddymcp/caddymcp/internal/jsonrpc"
)

// JSON-RPC error codes the gateway itself answers with (the implementation-defined
// server-error range). They are documented in the README.
const (
	codeUnknownServer       = -32001 // 404: no server at this path
	codeServerDisabled      = -32002 // 503: the server is disabled in the registry
	codeUpstreamUnreachable = -32003 // 502: the upstream refused, reset or is down
	codeUpstreamTimeout     = -32004 // 504: the upstream did not answer in time
	codeForbidden           = -32005 // 403: Host or Origin not allowed
	codeUnauthorized        = -32006 // 401: no, or an invalid, bearer token (auth on)
	codeInsufficientScope   = -32007 // 403: the policy does not grant the method, tool, prompt or resource
	codeAuthUnavailable     = -32008 // 503: the issuer's signing keys cannot be fetched yet
	codeFilterFailed        = -32009 // 502: a list response could not be filtered (fails closed)
	codeUnknownSession      = -32014 // 404: no session of this caller on this server has this id
	codeRequestRefused      = -32015 // 400/405: an HTTP method, header or path the MCP transports do not use
	codeConnectRequired     = -32016 // 403: backend_auth oauth: connect your account first (the message carries the link)
	codeUpstreamAuthFailed  = -32017 // 502: backend_auth oauth: the gateway cannot obtain its upstream token now
	codeExchangeRefused     = -32018 // 403: backend_auth oauth token_exchange: the upstream's authorization server refused the caller's token
)

// writeRPCError answers with an HTTP status and a JSON-RPC error body.
func writeRPCError(w http.ResponseWriter, status int, id string, code int, message string) {
	noteRPCError(w, code) // for the audit entry and metrics (audit.go)
	body := jsonrpc.AppendErrorResponse(make([]byte, 0, 96+len(message)), id, code, message)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeTooLarge(w http.ResponseWriter, limit int64) {
	writeRPCError(w, http.StatusRequestEntityTooLarge, "", jsonrpc.CodeInvalidRequest,
		"request body exceeds the gateway's limit of "+strconv.FormatInt(limit, 10)+" bytes")
}

// quote renders an untrusted value for an error message, bounded in length.
func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}
