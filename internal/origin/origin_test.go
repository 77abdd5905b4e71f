package origin

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestResolve(t *testing.T) {
	r := httptest.NewRequest("GET", "http://mcp.example.com:8443/x", nil)
	if got := Resolve("", r); got != "http://mcp.example.com:8443" {
		t.Errorf("plain request: %q", got)
	}
	r.TLS = &tls.ConnectionState{}
	if got := Resolve("", r); got != "https://mcp.example.com:8443" {
		t.Errorf("TLS request: %q", got)
	}
	if got := Resolve("https://public.example.com", r); got != "https://public.example.com" {
		t.Errorf("configured origin: %q", got)
	}
}
