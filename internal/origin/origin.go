// Package origin answers one question every handler that writes absolute URLs asks:
// which origin (scheme://host[:port]) do clients reach us at?
package origin

import "net/http"

// Resolve returns configured, the operator's public origin, when it is set; else the
// origin the request came to: https when it arrived over TLS, http otherwise, and its
// Host. Behind a TLS-terminating proxy only the configured origin is right, which is why
// every handler that writes absolute URLs lets the operator set it.
func Resolve(configured string, r *http.Request) string {
	if configured != "" {
		return configured
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
