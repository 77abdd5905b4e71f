// Package htmlpage holds what every page caddymcp serves to a person's browser sets
// (sign-in, account, connect, dashboard): the headers that keep a page out of frames,
// caches and MIME sniffing, under a Content-Security-Policy of its own, and the CSP
// source that allows one inline script or style by its hash.
package htmlpage

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// SetHeaders sets the headers of an HTML page: csp is its Content-Security-Policy,
// referrer its Referrer-Policy.
func SetHeaders(w http.ResponseWriter, csp, referrer string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", referrer)
	h.Set("Cache-Control", "no-store")
}

// HashSource is the CSP source that allows exactly this inline script or style.
func HashSource(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}
