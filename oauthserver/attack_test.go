package oauthserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A redirect_uri the client did not register is never redirected to: an HTML error page.
func TestAuthorizeNeverRedirectsToUnregisteredURI(t *testing.T) {
	as := newTestAS(t, nil, nil)
	cases := []struct{ name, client, redirect string }{
		{"unknown client", "nobody", "http://127.0.0.1:1/cb"},
		{"mismatched web redirect", webClient, "https://evil.example/callback"},
		{"prefix of registered", webClient, webRedirect + "/../../evil"},
		{"extra path", webClient, webRedirect + "x"},
		{"userinfo", webClient, "https://app.example.com@evil.example/callback"},
		{"userinfo on loopback", nativeClient, "http://127.0.0.1:80@evil.example/cb"},
		{"backslash", nativeClient, `http://127.0.0.1:1\@evil.example/cb`},
		{"scheme-relative", webClient, "//evil.example/callback"},
		{"double slash path", nativeClient, "http://127.0.0.1:1//evil.example/cb"},
		{"fragment", webClient, webRedirect + "#frag"},
		{"non-loopback http", nativeClient, "http://evil.example/cb"},
		{"loopback lookalike", nativeClient, "http://127.0.0.1.evil.example/cb"},
		{"javascript", nativeClient, "javascript:alert(1)"},
		{"missing", webClient, ""},
		{"web client loopback", webClient, "http://127.0.0.1:5/callback"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := browser(t).Get(authURL(as, tc.client, tc.redirect, "s", nil))
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("error page headers: %v", resp.Header)
			}
			if strings.Contains(body, "<script") || (tc.redirect != "" && strings.Contains(body, tc.redirect)) {
				t.Errorf("error page echoes the redirect URI:\n%s", body)
			}
		})
	}
}

// Errors after the redirect URI is trusted go back to it with state and iss, and no
// request is stored.
func TestAuthorizeErrorsRedirectWithStateAndIss(t *testing.T) {
	as := newTestAS(t, nil, nil)
	redirect := "http://127.0.0.1:4444/cb"
	cases := []struct {
		name  string
		extra url.Values
		error string
	}{
		{"missing PKCE", url.Values{"code_challenge": nil, "code_challenge_method": nil}, "invalid_request"},
		{"missing method", url.Values{"code_challenge_method": nil}, "invalid_request"},
		{"plain PKCE", url.Values{"code_challenge_method": {"plain"}, "code_challenge": {testVerifier}}, "invalid_request"},
		{"short challenge", url.Values{"code_challenge": {"abc"}}, "invalid_request"},
		{"token response type", url.Values{"response_type": {"token"}}, "unsupported_response_type"},
		{"foreign resource", url.Values{"resource": {"https://evil.example/mcp"}}, "invalid_target"},
		{"resource outside the gateway path", url.Values{"resource": {as.ts.URL + "/../x"}}, "invalid_target"},
		{"two resources", url.Values{"resource": {as.ts.URL, as.ts.URL + "/a"}}, "invalid_target"},
		{"bad scope", url.Values{"scope": {"a\"b"}}, "invalid_scope"},
		{"prompt none signed out", url.Values{"prompt": {"none"}}, "login_required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := browser(t).Get(authURL(as, nativeClient, redirect, "st&ate=1", tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Host != "127.0.0.1:4444" {
				t.Fatalf("status %d Location %v", resp.StatusCode, loc)
			}
			q := loc.Query()
			if q.Get("error") != tc.error || q.Get("state") != "st&ate=1" || q.Get("iss") != as.Issuer || q.Get("code") != "" {
				t.Fatalf("redirect query %v, want error %s", q, tc.error)
			}
		})
	}
	ms := as.store.(*MemoryStore)
	if len(ms.requests) != 0 || len(ms.codes) != 0 {
		t.Fatalf("refused requests left state: %d requests, %d codes", len(ms.requests), len(ms.codes))
	}
}

func TestLoginFormCSRFAndSessionBinding(t *testing.T) {
	as := newTestAS(t, nil, nil)
	victim := browser(t)
	resp, _ := victim.Get(authURL(as, nativeClient, "http://127.0.0.1:1/cb", "s", nil))
	form := formFields(t, readBody(t, resp))
	form.Set("action", "login")
	form.Set("username", "alice")
	form.Set("password", testPassword)

	// Another browser (the attacker's) replays the victim's form fields.
	if resp := postForm(t, browser(t), as.Issuer+"/authorize", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form accepted from another session: %d", resp.StatusCode)
	}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("csrf", "forged")
	if resp := postForm(t, victim, as.Issuer+"/authorize", bad); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged csrf accepted: %d", resp.StatusCode)
	}
	// A cross-site submission is refused even with the right token.
	req, _ := http.NewRequest(http.MethodPost, as.Issuer+"/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, _ := victim.Do(req); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin form accepted: %d", resp.StatusCode)
	}
	// The consent page after login: approving needs the new CSRF token.
	resp = postForm(t, victim, as.Issuer+"/authorize", form)
	consent := readBody(t, resp)
	if !strings.Contains(consent, "Native CLI") || !strings.Contains(consent, "127.0.0.1:1") {
		t.Fatalf("consent page does not name the client and redirect host:\n%s", consent)
	}
	oldCSRF := form.Get("csrf")
	approve := formFields(t, consent)
	if approve.Get("csrf") == oldCSRF {
		t.Error("CSRF token not renewed at sign-in")
	}
	approve.Set("csrf", oldCSRF)
	approve.Set("action", "approve")
	if resp := postForm(t, victim, as.Issuer+"/authorize", approve); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("pre-login CSRF token accepted for consent: %d", resp.StatusCode)
	}
}

func TestLoginPageHeaders(t *testing.T) {
	as := newTestAS(t, nil, nil)
	resp, _ := browser(t).Get(authURL(as, nativeClient, "http://127.0.0.1:1/cb", "s", nil))
	body := readBody(t, resp)
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self' http://127.0.0.1:1"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", h)
	}
	var sessionCookie *http.Cookie
	for _, c := range resp.Cookies() {
		sessionCookie = c
	}
	if sessionCookie == nil || !sessionCookie.HttpOnly || sessionCookie.SameSite != http.SameSiteLaxMode || len(sessionCookie.Value) < 20 {
		t.Errorf("session cookie %+v", sessionCookie)
	}
	for _, want := range []string{`<label for="username">`, `<label for="password">`, `type="password"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	if strings.Contains(body, "http://") && !strings.Contains(body, as.ts.URL) || strings.Contains(body, "<script") || strings.Contains(body, "src=") {
		t.Errorf("login page loads external assets or scripts:\n%s", body)
	}
}

func TestLoginBruteForceThrottled(t *testing.T) {
	as := newTestAS(t, nil, nil)
	c := browser(t)
	attempt := func(user, password string) (int, string) {
		resp, _ := c.Get(authURL(as, nativeClient, "http://127.0.0.1:1/cb", "s", nil))
		form := formFields(t, readBody(t, resp))
		form.Set("action", "login")
		form.Set("username", user)
		form.Set("password", password)
		resp = postForm(t, c, as.Issuer+"/authorize", form)
		body := readBody(t, resp)
		return resp.StatusCode, hiddenField.ReplaceAllString(body, "")
	}
	st1, unknown := attempt("mallory", "guess")
	st2, wrong := attempt("alice", "guess")
	if st1 != st2 || unknown != wrong || st1 != http.StatusUnauthorized {
		t.Fatalf("unknown user and wrong password answered differently: %d vs %d", st1, st2)
	}
	for range freeUserFailures {
		attempt("alice", "guess")
	}
	st, body := attempt("alice", testPassword)
	if st != http.StatusTooManyRequests || !strings.Contains(body, "Too many") {
		t.Fatalf("correct password during lockout: %d", st)
	}
	if as.logs.FilterMessage("sign-in throttled").Len() == 0 || as.logs.FilterMessage("sign-in failed").Len() < freeUserFailures {
		t.Error("brute force not logged")
	}
	as.clock.advance(maxLockout + failureWindow)
	if st, _ := attempt("alice", testPassword); st != http.StatusOK {
		t.Fatalf("sign-in after the lockout: %d", st)
	}
	assertNoSecretsLogged(t, as, testPassword, "guess")
}

func TestStoreUsersSignIn(t *testing.T) {
	as := newTestAS(t, nil, nil)
	ctx := context.Background()
	if err := as.store.CreateUser(ctx, User{Name: "bob", PasswordHash: testHashes(), Groups: []string{"eng"}}); err != nil {
		t.Fatal(err)
	}
	redirect := "http://127.0.0.1:1/cb"
	loc := signIn(t, as, browser(t), authURL(as, nativeClient, redirect, "s", nil), "bob", testPassword)
	a := token(t, as, codeForm(nativeClient, loc.Query().Get("code"), redirect, testVerifier), "", "")
	if a.status != 200 {
		t.Fatal(a)
	}
	// A removed user's refresh token stops working.
	if err := as.store.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if r := token(t, as, url.Values{"grant_type": {"refresh_token"}, "client_id": {nativeClient}, "refresh_token": {a.Refresh}}, "", ""); r.Error != "invalid_grant" {
		t.Fatalf("deleted user refreshed: %+v", r)
	}
}

func register(t testing.TB, as *testAS, body []byte) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.Post(as.Issuer+"/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal([]byte(readBody(t, resp)), &m)
	return resp.StatusCode, m, resp.Header
}

func TestDynamicClientRegistration(t *testing.T) {
	as := newTestAS(t, func(s *Server) { s.RegistrationRate = 1000 }, nil)
	st, m, h := register(t, as, []byte(`{"redirect_uris":["http://127.0.0.1:3000/callback"],"application_type":"native","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"client_name":"Test <b>App</b>"}`))
	if st != http.StatusCreated || m["client_id"] == nil || m["client_secret"] != nil || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("native registration: %d %v %v", st, m, h)
	}
	id := m["client_id"].(string)
	// The registered client logs in on another loopback port; its name is escaped.
	c := browser(t)
	resp, _ := c.Get(authURL(as, id, "http://127.0.0.1:3999/callback", "s", nil))
	form := formFields(t, readBody(t, resp))
	form.Set("action", "login")
	form.Set("username", "alice")
	form.Set("password", testPassword)
	consent := readBody(t, postForm(t, c, as.Issuer+"/authorize", form))
	if strings.Contains(consent, "<b>App</b>") || !strings.Contains(consent, "Test &lt;b&gt;App&lt;/b&gt;") || !strings.Contains(consent, "name not verified") {
		t.Fatalf("client name not escaped or not marked unverified:\n%s", consent)
	}

	st, m, _ = register(t, as, []byte(`{"redirect_uris":["https://app.example.org/cb"]}`))
	if st != http.StatusCreated || m["client_secret"] == nil || m["token_endpoint_auth_method"] != "client_secret_basic" {
		t.Fatalf("web registration: %d %v", st, m)
	}
	a := token(t, as, url.Values{"grant_type": {"client_credentials"}}, m["client_id"].(string), m["client_secret"].(string))
	if a.Error != "unauthorized_client" {
		t.Fatalf("DCR client got client_credentials: %+v", a)
	}

	bad := []struct{ name, body, error string }{
		{"native https", `{"redirect_uris":["https://app.example.org/cb"],"application_type":"native"}`, "invalid_redirect_uri"},
		{"web loopback", `{"redirect_uris":["http://127.0.0.1:1/cb"],"application_type":"web"}`, "invalid_redirect_uri"},
		{"non-loopback http", `{"redirect_uris":["http://evil.example/cb"]}`, "invalid_redirect_uri"},
		{"custom scheme", `{"redirect_uris":["myapp://cb"]}`, "invalid_redirect_uri"},
		{"userinfo", `{"redirect_uris":["https://a@evil.example/cb"]}`, "invalid_redirect_uri"},
		{"no redirect", `{"client_name":"x"}`, "invalid_redirect_uri"},
		{"too many redirects", `{"redirect_uris":[` + strings.Repeat(`"https://a.example/cb",`, 11) + `"https://a.example/cb"]}`, "invalid_redirect_uri"},
		{"unknown app type", `{"redirect_uris":["https://a.example/cb"],"application_type":"desktop"}`, "invalid_client_metadata"},
		{"implicit grant", `{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}`, "invalid_client_metadata"},
		{"token response", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, "invalid_client_metadata"},
		{"long name", `{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("x", 201) + `"}`, "invalid_client_metadata"},
		{"control chars", `{"redirect_uris":["https://a.example/cb"],"client_name":"a\u0007b"}`, "invalid_client_metadata"},
		{"jwks", `{"redirect_uris":["https://a.example/cb"],"jwks":{"keys":[]}}`, "invalid_client_metadata"},
		{"http logo", `{"redirect_uris":["https://a.example/cb"],"logo_uri":"http://a.example/x.png"}`, "invalid_client_metadata"},
		{"unknown auth method", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{"malformed JSON", `{"redirect_uris":`, "invalid_client_metadata"},
		{"wrong types", `{"redirect_uris":"https://a.example/cb"}`, "invalid_client_metadata"},
		{"two objects", `{"redirect_uris":["https://a.example/cb"]}{}`, "invalid_client_metadata"},
	}
	before := storedClients(t, as.store)
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			st, m, _ := register(t, as, []byte(tc.body))
			if st != http.StatusBadRequest || m["error"] != tc.error || m["client_id"] != nil {
				t.Fatalf("%d %v, want 400 %s", st, m, tc.error)
			}
		})
	}
	huge := []byte(`{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("x", maxRegistrationBody) + `"}`)
	if st, _, _ := register(t, as, huge); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized metadata: %d", st)
	}
	if after := storedClients(t, as.store); after != before {
		t.Fatalf("refused registrations stored %d clients", after-before)
	}
}

func TestRegistrationRateLimited(t *testing.T) {
	as := newTestAS(t, func(s *Server) { s.RegistrationRate = 3 }, nil)
	body := []byte(`{"redirect_uris":["http://127.0.0.1:1/cb"],"token_endpoint_auth_method":"none"}`)
	for i := range 3 {
		if st, _, _ := register(t, as, body); st != http.StatusCreated {
			t.Fatalf("registration %d: %d", i, st)
		}
	}
	if st, m, h := register(t, as, body); st != http.StatusTooManyRequests || h.Get("Retry-After") == "" || m["error"] == nil {
		t.Fatalf("fourth registration: %d %v", st, m)
	}
}
