package upstreamoauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A registration answer is bounded, must register exactly the gateway's callback and
// a usable client, and its secret never appears in an error.
func TestRegisterRefusals(t *testing.T) {
	const secret = "s3cr3t-registration-value"
	meta := ClientMetadata("https://gw.example/x/connect/callback", "gw", "mcp", "client_secret_basic")
	for name, c := range map[string]struct {
		status int
		ctype  string
		body   string
		want   string
	}{
		"oversized":          {201, "application/json", `{"client_id":"a","client_secret":"` + secret + `","x":"` + strings.Repeat("a", maxRegistrationResponse) + `"}`, "exceeds"},
		"not json":           {201, "text/html", `<p>` + secret, "not JSON"},
		"error":              {400, "application/json", `{"error":"invalid_redirect_uri","error_description":"no"}`, "invalid_redirect_uri"},
		"other redirect":     {201, "application/json", `{"client_id":"a","client_secret":"` + secret + `","redirect_uris":["https://evil.example/cb"]}`, "other redirect URIs"},
		"no client id":       {201, "application/json", `{"client_secret":"` + secret + `"}`, "malformed client id"},
		"secretless":         {201, "application/json", `{"client_id":"a","token_endpoint_auth_method":"client_secret_basic"}`, "without a secret"},
		"foreign auth":       {201, "application/json", `{"client_id":"a","client_secret":"` + secret + `","token_endpoint_auth_method":"tls_client_auth"}`, "does not use"},
		"malformed response": {201, "application/json", `{"client_id":"a","client_secret":"` + secret + `",`, "not a registration response"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", c.ctype)
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			f := &Fetcher{HTTP: srv.Client()}
			reg, err := f.Register(context.Background(), srv.URL, meta)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %+v, %v; want an error with %q", reg, err, c.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error quotes the client secret: %v", err)
			}
		})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"client_id":"a","client_secret":"` + secret + `","redirect_uris":["https://gw.example/x/connect/callback"],"client_secret_expires_at":0}`))
	}))
	defer srv.Close()
	reg, err := (&Fetcher{HTTP: srv.Client()}).Register(context.Background(), srv.URL, meta)
	if err != nil || reg.ClientID != "a" || reg.Auth().Method != "client_secret_basic" || !reg.SecretExpiresAt.IsZero() {
		t.Fatalf("a good registration: %+v %v", reg, err)
	}
}
