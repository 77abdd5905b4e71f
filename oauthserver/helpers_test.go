package oauthserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
)

const (
	testPassword = "correct horse battery staple"
	testVerifier = "dBjftJeZ4CK-P1oW4bsP-RhbH8j8_pS8XXHcCqoiD9QQ"
	nativeClient = "native-cli"
	webClient    = "web-app"
	webRedirect  = "https://app.example.com/callback"
	machine      = "ci-bot"
	machineKey   = "machine-secret-0123456789"
)

var testHashes = sync.OnceValue(func() string {
	h, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	return string(h)
})

func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type testAS struct {
	*Server
	ts    *httptest.Server
	logs  *observer.ObservedLogs
	clock *testClock
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestAS starts the server on a loopback httptest server; configure may adjust the
// config before provisioning.
func newTestAS(t testing.TB, configure func(*Server), roots *cimdTLS) *testAS {
	t.Helper()
	s := &Server{
		Users: []UserConfig{{Name: "alice", PasswordHash: testHashes(), Groups: []string{"eng", "ops"}}},
		Clients: []ClientConfig{
			{ID: nativeClient, Name: "Native CLI"},
			{ID: webClient, Name: "Web App", RedirectURIs: []string{webRedirect}},
			{ID: machine, Secret: machineKey, Groups: []string{"robots"}},
		},
	}
	clock := &testClock{t: time.Now()}
	s.now = clock.now
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			http.NotFound(w, r)
			return nil
		}))
	}))
	ts.Start()
	t.Cleanup(ts.Close)
	s.Issuer = ts.URL + "/oauth"
	s.Resource = ts.URL
	if configure != nil {
		configure(s)
	}
	core, logs := observer.New(zap.DebugLevel)
	var st Store
	var sealer Sealer
	if flowsOnRegistryStore {
		st, sealer = newTestRegistryStore(t), testRegistrySealer(t)
	}
	if err := s.provision(context.Background(), zap.New(core), st, sealer, roots); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return &testAS{Server: s, ts: ts, logs: logs, clock: clock}
}

// browser is a cookie-keeping client that never follows redirects.
func browser(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func authURL(as *testAS, clientID, redirectURI, state string, extra url.Values) string {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"state":                 {state},
		"code_challenge":        {challengeOf(testVerifier)},
		"code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		if v == nil {
			delete(q, k)
		} else {
			q[k] = v
		}
	}
	return as.Issuer + "/authorize?" + q.Encode()
}

var hiddenField = regexp.MustCompile(`name="(request|csrf)" value="([^"]*)"`)

func formFields(t testing.TB, body string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], m[2])
	}
	if v.Get("request") == "" || v.Get("csrf") == "" {
		t.Fatalf("page has no request/csrf fields:\n%s", body)
	}
	return v
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func postForm(t testing.TB, c *http.Client, u string, v url.Values) *http.Response {
	t.Helper()
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// signIn drives the login and consent pages from an authorization URL and returns the
// redirect the browser is finally sent to.
func signIn(t testing.TB, as *testAS, c *http.Client, authorizeURL, user, password string) *url.URL {
	t.Helper()
	resp, err := c.Get(authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusSeeOther { // already signed in and approved
		loc, _ := url.Parse(resp.Header.Get("Location"))
		resp.Body.Close()
		return loc
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="username"`) {
		t.Fatalf("want the login page, got %d:\n%s", resp.StatusCode, body)
	}
	form := formFields(t, body)
	form.Set("action", "login")
	form.Set("username", user)
	form.Set("password", password)
	resp = postForm(t, c, as.Issuer+"/authorize", form)
	if resp.StatusCode == http.StatusOK {
		body = readBody(t, resp)
		if !strings.Contains(body, "Allow access?") {
			t.Fatalf("want the consent page:\n%s", body)
		}
		form = formFields(t, body)
		form.Set("action", "approve")
		resp = postForm(t, c, as.Issuer+"/authorize", form)
	}
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("want a redirect to the client, got %d:\n%s", resp.StatusCode, readBody(t, resp))
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

type tokenAnswer struct {
	status  int
	header  http.Header
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
	Type    string `json:"token_type"`
	Expires int64  `json:"expires_in"`
	Error   string `json:"error"`
	Desc    string `json:"error_description"`
}

func token(t testing.TB, as *testAS, form url.Values, basicUser, basicPass string) tokenAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, as.Issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var a tokenAnswer
	if err := json.Unmarshal([]byte(readBody(t, resp)), &a); err != nil {
		t.Fatalf("token answer is not JSON: %v", err)
	}
	a.status, a.header = resp.StatusCode, resp.Header
	return a
}

func codeForm(clientID, code, redirectURI, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
}

func nopLogger() *zap.Logger { return zap.NewNop() }
