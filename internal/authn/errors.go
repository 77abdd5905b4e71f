package authn

import (
	"errors"
)

// Sentinel errors. Every error Validate returns matches exactly one of them with
// errors.Is; the gateway maps them to responses (see the package documentation).
var (
	// ErrNoToken: the request carried no bearer token (no Authorization header, another
	// scheme, or an empty token). RFC 6750 §3.1: answer 401 without an error code.
	ErrNoToken = errors.New("authn: no bearer token")

	// ErrInvalidToken: the token was presented and rejected. The concrete error is an
	// *InvalidTokenError whose Reason is safe to show the client.
	ErrInvalidToken = errors.New("authn: invalid token")

	// ErrKeysUnavailable: the token names a trusted issuer whose signing keys could not
	// be obtained (discovery or JWKS endpoint unreachable, never fetched yet). It is not
	// the client's fault: answer 503 (with Retry-After), never 500. Once an issuer's keys
	// were fetched, an outage of its endpoints does not cause this error.
	ErrKeysUnavailable = errors.New("authn: signing keys unavailable")
)

// Reasons carried by *InvalidTokenError. They are fixed ASCII strings without quotes or
// backslashes, so they can go verbatim into error_description of WWW-Authenticate. They
// never contain any part of the token.
const (
	ReasonTooLarge        = "token too large"
	ReasonMalformed       = "malformed token"
	ReasonUnsupportedAlg  = "unsupported algorithm"
	ReasonUntrustedIssuer = "untrusted issuer"
	ReasonUnknownKey      = "unknown signing key"
	ReasonBadSignature    = "invalid signature"
	ReasonMissingExpiry   = "missing expiry"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not yet valid"
	ReasonIssuedInFuture  = "issued in the future"
	ReasonWrongAudience   = "wrong audience"
	ReasonMissingSubject  = "missing subject"
	ReasonMalformedHeader = "malformed authorization header"
	ReasonRevoked         = "unknown, revoked or expired token"
)

// InvalidTokenError is the concrete type behind ErrInvalidToken.
type InvalidTokenError struct {
	// Reason is one of the Reason* constants: short, fixed, safe for the client.
	Reason string
	// Issuer is the configured issuer the token was matched to, empty when the token
	// was rejected before an issuer was chosen. Never attacker-controlled text.
	Issuer string
	// detail is for logs only (e.g. which key was rejected and why); it never holds
	// the token or unverified claim values.
	detail error
}

func (e *InvalidTokenError) Error() string {
	s := "authn: invalid token: " + e.Reason
	if e.detail != nil {
		s += " (" + e.detail.Error() + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrInvalidToken) true.
func (e *InvalidTokenError) Is(target error) bool { return target == ErrInvalidToken }

// Unwrap returns the log-only detail, if any.
func (e *InvalidTokenError) Unwrap() error { return e.detail }

// KeysUnavailableError is the concrete type behind ErrKeysUnavailable.
type KeysUnavailableError struct {
	// Issuer is the configured issuer whose keys are missing.
	Issuer string
	// Err is the last fetch error (or the rate-limit / context error), for logs.
	Err error
}

func (e *KeysUnavailableError) Error() string {
	s := "authn: signing keys unavailable for issuer " + e.Issuer
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrKeysUnavailable) true.
func (e *KeysUnavailableError) Is(target error) bool { return target == ErrKeysUnavailable }

// Unwrap returns the underlying fetch error.
func (e *KeysUnavailableError) Unwrap() error { return e.Err }

// Reason returns the client-safe reason of err if it is an invalid-token error, else "".
func Reason(err error) string {
	var ite *InvalidTokenError
	if errors.As(err, &ite) {
		return ite.Reason
	}
	return ""
}

func invalid(reason string) *InvalidTokenError { return &InvalidTokenError{Reason: reason} }

func invalidFor(reason, issuer string, detail error) *InvalidTokenError {
	return &InvalidTokenError{Reason: reason, Issuer: issuer, detail: detail}
}
