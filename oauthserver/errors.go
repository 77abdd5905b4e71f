package oauthserver

import (
	"encoding/json"
	"net/http"

	"go.uber.org/zap"
)

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	status      int
	basic       bool // the client tried HTTP Basic: answer 401 with a challenge
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{Code: "invalid_request", Description: desc, status: http.StatusBadRequest}
}

func errInvalidClient(desc string, basic bool) *oauthError {
	return &oauthError{Code: "invalid_client", Description: desc, status: http.StatusUnauthorized, basic: basic}
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{Code: "invalid_grant", Description: desc, status: http.StatusBadRequest}
}

func errServer(desc string) *oauthError {
	return &oauthError{Code: "server_error", Description: desc, status: http.StatusInternalServerError}
}

func newOAuthError(code, desc string) *oauthError {
	return &oauthError{Code: code, Description: desc, status: http.StatusBadRequest}
}

// noStore marks an answer carrying credentials as uncacheable (RFC 6749 §5.1).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	noStore(w)
	if e.status == http.StatusUnauthorized {
		if e.basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
		} else {
			// RFC 6749 §5.2 allows 400 for a client that did not use HTTP authentication.
			e.status = http.StatusBadRequest
		}
	}
	writeJSON(w, e.status, e)
}

func zapErr(err error) zap.Field    { return zap.Error(err) }
func zapClient(id string) zap.Field { return zap.String("client_id", truncate(id, 200)) }
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
