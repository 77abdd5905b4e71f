package oauthserver

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// cimdHost serves client metadata documents over TLS with a test CA.
func cimdHost(t *testing.T) (*httptest.Server, *cimdTLS, *atomic.Int32) {
	var fetches atomic.Int32
	var ts *httptest.Server
	ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		id := ts.URL + r.URL.Path
		doc := func(clientID string) string {
			return fmt.Sprintf(`{"client_id":%q,"client_name":"CIMD App","redirect_uris":["http://127.0.0.1:7777/callback"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`, clientID)
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/good.json":
			w.Header().Set("Cache-Control", "max-age=600")
			fmt.Fprint(w, doc(id))
		case "/redirect.json":
			http.Redirect(w, r, "/good.json", http.StatusFound)
		case "/large.json":
			fmt.Fprint(w, strings.TrimSuffix(doc(id), "}")+`,"pad":"`+strings.Repeat("x", cimdMaxBytes)+`"}`)
		case "/other.json":
			fmt.Fprint(w, doc(ts.URL+"/good.json"))
		case "/secret.json":
			fmt.Fprint(w, strings.TrimSuffix(doc(id), "}")+`,"client_secret":"s"}`)
		case "/https-redirect.json":
			fmt.Fprintf(w, `{"client_id":%q,"redirect_uris":["http://evil.example/cb"]}`, id)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return ts, &cimdTLS{roots: pool}, &fetches
}

func TestCIMDClientSignsIn(t *testing.T) {
	host, roots, fetches := cimdHost(t)
	as := newTestAS(t, func(s *Server) { s.CIMDAllow = []string{"127.0.0.0/8"} }, roots)
	id := host.URL + "/good.json"
	redirect := "http://127.0.0.1:7001/callback" // loopback: any port
	loc := signIn(t, as, browser(t), authURL(as, id, redirect, "s", nil), "alice", testPassword)
	a := token(t, as, codeForm(id, loc.Query().Get("code"), redirect, testVerifier), "", "")
	if a.status != 200 || a.Refresh == "" {
		t.Fatalf("CIMD client token: %+v", a)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("document fetched %d times, want 1 (cached by max-age)", n)
	}
}

func TestCIMDRefusals(t *testing.T) {
	host, roots, _ := cimdHost(t)
	allowed := newTestAS(t, func(s *Server) { s.CIMDAllow = []string{"127.0.0.0/8"} }, roots)
	strict := newTestAS(t, nil, roots)
	cases := []struct {
		name string
		as   *testAS
		id   string
		why  string
	}{
		{"redirecting document", allowed, host.URL + "/redirect.json", "redirects are not followed"},
		{"too large", allowed, host.URL + "/large.json", "larger than"},
		{"another client_id", allowed, host.URL + "/other.json", "client_id is not the URL"},
		{"secret in document", allowed, host.URL + "/secret.json", "client_secret"},
		{"missing document", allowed, host.URL + "/none.json", "404"},
		{"loopback address", strict, host.URL + "/good.json", "loopback"},
		{"private address", strict, "https://10.0.0.1/client.json", "private"},
		{"link-local address", strict, "https://169.254.169.254/latest.json", "link-local"},
		{"http URL", allowed, strings.Replace(host.URL, "https", "http", 1) + "/good.json", "not known"},
		{"root URL", allowed, host.URL, "with a path"},
		{"userinfo", allowed, "https://a@" + strings.TrimPrefix(host.URL, "https://") + "/good.json", "credentials"},
		{"dot segments", allowed, host.URL + "/x/../good.json", "dot segments"},
		{"query", allowed, host.URL + "/good.json?x=1", "query"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := browser(t).Get(authURL(tc.as, tc.id, "http://127.0.0.1:7777/callback", "s", nil))
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.Contains(body, tc.why) {
				t.Errorf("error page does not say %q:\n%s", tc.why, body)
			}
		})
	}
	// A valid document whose redirect URIs do not include the request's: no redirect.
	resp, _ := browser(t).Get(authURL(allowed, host.URL+"/good.json", "https://evil.example/cb", "s", nil))
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("CIMD redirect mismatch: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// The token endpoint refuses the same documents.
	a := token(t, allowed, url.Values{"grant_type": {"authorization_code"}, "client_id": {host.URL + "/other.json"}, "code": {"x"}, "code_verifier": {testVerifier}}, "", "")
	if a.Error != "invalid_client" {
		t.Fatalf("token endpoint: %+v", a)
	}
}

func TestCacheLifetime(t *testing.T) {
	for cc, want := range map[string]string{"": "5m0s", "max-age=60": "1m0s", "no-store": "0s", "public, max-age=999999": "24h0m0s", "max-age=-1": "0s", "no-cache, max-age=60": "0s"} {
		if got := cacheLifetime(cc).String(); got != want {
			t.Errorf("%q: %s, want %s", cc, got, want)
		}
	}
}
