package oauthserver

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// pageCSRF returns the CSRF token of a page's forms.
func pageCSRF(t testing.TB, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page has no csrf field:\n%s", body)
	}
	return m[1]
}

// accountSignIn signs user in on the standalone sign-in page and returns the browser
// and the account page's CSRF token.
func accountSignIn(t testing.TB, as *testAS, user, password string) (*http.Client, string) {
	t.Helper()
	c := browser(t)
	resp, err := c.Get(as.Issuer + "/account")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != as.SignInURL("/oauth/account") {
		t.Fatalf("account page unsigned: %d to %q, want a redirect to the sign-in page", resp.StatusCode, loc)
	}
	resp, _ = c.Get(resp.Header.Get("Location"))
	body := readBody(t, resp)
	resp = postForm(t, c, as.Issuer+"/login", url.Values{"csrf": {pageCSRF(t, body)}, "return_to": {"/oauth/account"}, "username": {user}, "password": {password}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/oauth/account" {
		t.Fatalf("sign-in: %d to %q, want a redirect to the account page", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = c.Get(as.Issuer + "/account")
	body = readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as <b>"+user+"</b>") {
		t.Fatalf("account page: %d\n%s", resp.StatusCode, body)
	}
	return c, pageCSRF(t, body)
}

var newTokenPattern = regexp.MustCompile(`<code id="new-token">([^<]+)</code>`)

func mintOnPage(t testing.TB, as *testAS, c *http.Client, csrf, name, days string) (int, string, string) {
	t.Helper()
	resp := postForm(t, c, as.Issuer+"/account", url.Values{"csrf": {csrf}, "action": {"mint"}, "name": {name}, "days": {days}})
	body := readBody(t, resp)
	m := newTokenPattern.FindStringSubmatch(body)
	if m == nil {
		return resp.StatusCode, "", body
	}
	return resp.StatusCode, html.UnescapeString(m[1]), body
}

// A signed-in user mints a token for themself within the configured maximum; it acts
// as them on the gateway; they list and revoke it, and the revocation holds at once.
func TestAccountPageMintsAndRevokesOwnTokens(t *testing.T) {
	as := newTestAS(t, func(s *Server) {
		s.PersonalTokenMaxLifetime = 0 // default 90 days
	}, nil)
	c, csrf := accountSignIn(t, as, "alice", testPassword)

	status, token, body := mintOnPage(t, as, c, csrf, "laptop curl", "91")
	if status != http.StatusBadRequest || token != "" || !strings.Contains(body, "from 1 to 90") {
		t.Fatalf("91 days over a 90-day maximum: %d, token %q\n%s", status, token, body)
	}
	status, token, body = mintOnPage(t, as, c, csrf, "laptop curl", "7")
	if status != http.StatusCreated || !strings.HasPrefix(token, personalTokenPrefix) {
		t.Fatalf("mint: %d\n%s", status, body)
	}
	caller, err := as.resolvePersonalToken(context.Background(), token)
	if err != nil || caller.Subject != "alice" || strings.Join(caller.Groups, ",") != "eng,ops" {
		t.Fatalf("minted token resolves to %+v, %v; want alice with eng,ops", caller, err)
	}
	if d := caller.ExpiresAt.Sub(as.now()); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour+time.Minute {
		t.Errorf("token expires in %s, want 7 days", d)
	}
	// The list shows it, never the secret.
	resp, _ := c.Get(as.Issuer + "/account")
	body = readBody(t, resp)
	id, _, _ := splitPersonalToken(token)
	if !strings.Contains(body, "laptop curl") || !strings.Contains(body, `value="`+id+`"`) || strings.Contains(body, token) {
		t.Fatalf("account page after mint lists the token wrongly:\n%s", body)
	}
	assertNoSecretsLogged(t, as, token)

	resp = postForm(t, c, as.Issuer+"/account", url.Values{"csrf": {csrf}, "action": {"revoke"}, "id": {id}})
	if body = readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Token revoked.") {
		t.Fatalf("revoke: %d\n%s", resp.StatusCode, body)
	}
	if _, err := as.resolvePersonalToken(context.Background(), token); err == nil {
		t.Error("a revoked token still resolves")
	}
}

// The hostile insider: a signed-in user cannot see or revoke someone else's token, and
// a form without the session's CSRF token, or posted from another site, does nothing.
func TestAccountPageAttacks(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("mallory's password"), bcrypt.MinCost)
	as := newTestAS(t, func(s *Server) {
		s.Users = append(s.Users, UserConfig{Name: "mallory", PasswordHash: string(hash), Groups: []string{"guests"}})
	}, nil)
	alice, aliceCSRF := accountSignIn(t, as, "alice", testPassword)
	_, aliceToken, _ := mintOnPage(t, as, alice, aliceCSRF, "alice's", "7")
	aliceID, _, _ := splitPersonalToken(aliceToken)

	mallory, malloryCSRF := accountSignIn(t, as, "mallory", "mallory's password")
	resp, _ := mallory.Get(as.Issuer + "/account")
	if body := readBody(t, resp); strings.Contains(body, aliceID) || strings.Contains(body, "alice's") {
		t.Errorf("mallory's account page shows alice's token:\n%s", body)
	}
	resp = postForm(t, mallory, as.Issuer+"/account", url.Values{"csrf": {malloryCSRF}, "action": {"revoke"}, "id": {aliceID}})
	if body := readBody(t, resp); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "No such token.") {
		t.Errorf("mallory revoking alice's token: %d\n%s", resp.StatusCode, body)
	}
	if _, err := as.resolvePersonalToken(context.Background(), aliceToken); err != nil {
		t.Errorf("alice's token after mallory's attempt: %v", err)
	}

	// Forged forms: mallory's CSRF token in alice's browser, none at all, another site.
	for name, post := range map[string]func() *http.Response{
		"another session's csrf": func() *http.Response {
			return postForm(t, alice, as.Issuer+"/account", url.Values{"csrf": {malloryCSRF}, "action": {"mint"}, "days": {"1"}})
		},
		"no csrf": func() *http.Response {
			return postForm(t, alice, as.Issuer+"/account", url.Values{"action": {"mint"}, "days": {"1"}})
		},
		"cross-site": func() *http.Response {
			req, _ := http.NewRequest("POST", as.Issuer+"/account", strings.NewReader(url.Values{"csrf": {aliceCSRF}, "action": {"mint"}, "days": {"1"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://evil.example")
			resp, err := alice.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		},
		"logout without csrf": func() *http.Response {
			return postForm(t, alice, as.Issuer+"/logout", url.Values{})
		},
	} {
		resp := post()
		if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || strings.Contains(body, personalTokenPrefix) {
			t.Errorf("%s: %d, want 403 and no token\n%s", name, resp.StatusCode, body)
		}
	}
	if tokens, _ := as.store.ListPersonalTokens(context.Background(), "alice"); len(tokens) != 1 {
		t.Errorf("alice holds %d tokens after the forged forms, want 1", len(tokens))
	}

	// Signing out ends the session: the account page asks for a sign-in again.
	resp = postForm(t, alice, as.Issuer+"/logout", url.Values{"csrf": {aliceCSRF}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	resp, _ = alice.Get(as.Issuer + "/account")
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("account after logout: %d, want a redirect to sign in", resp.StatusCode)
	}
}

// The sign-in page sends the browser back only to a path of its own site, keeps the
// same answer for unknown users and wrong passwords, and is throttled like the
// authorization flow's.
func TestSignInPage(t *testing.T) {
	as := newTestAS(t, nil, nil)
	for _, evil := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "/ok\r\nSet-Cookie: x=y"} {
		c := browser(t)
		resp, _ := c.Get(as.SignInURL(evil))
		body := readBody(t, resp)
		resp = postForm(t, c, as.Issuer+"/login", url.Values{"csrf": {pageCSRF(t, body)}, "return_to": {evil}, "username": {"alice"}, "password": {testPassword}})
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/oauth/account" {
			t.Errorf("return_to %q: %d to %q, want the account page", evil, resp.StatusCode, loc)
		}
	}
	c := browser(t)
	resp, _ := c.Get(as.SignInURL("/everything/connect?x=1"))
	body := readBody(t, resp)
	csrf := pageCSRF(t, body)
	var answers []string
	for _, creds := range [][2]string{{"alice", "wrong"}, {"nobody", "wrong"}} {
		resp = postForm(t, c, as.Issuer+"/login", url.Values{"csrf": {csrf}, "return_to": {"/everything/connect?x=1"}, "username": {creds[0]}, "password": {creds[1]}})
		body = readBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: %d", creds[0], resp.StatusCode)
		}
		answers = append(answers, strings.ReplaceAll(body, csrf, ""))
	}
	if answers[0] != answers[1] {
		t.Error("unknown user and wrong password are answered differently")
	}
	for range freeUserFailures {
		resp = postForm(t, c, as.Issuer+"/login", url.Values{"csrf": {csrf}, "username": {"alice"}, "password": {"wrong"}})
		resp.Body.Close()
	}
	resp = postForm(t, c, as.Issuer+"/login", url.Values{"csrf": {csrf}, "username": {"alice"}, "password": {testPassword}})
	if resp.Body.Close(); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("after %d failures the right password got %d, want 429 with Retry-After", freeUserFailures+2, resp.StatusCode)
	}
	as.clock.advance(maxLockout + time.Second)
	resp = postForm(t, c, as.Issuer+"/login", url.Values{"csrf": {csrf}, "return_to": {"/everything/connect?x=1"}, "username": {"alice"}, "password": {testPassword}})
	if resp.Body.Close(); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/everything/connect?x=1" {
		t.Fatalf("sign-in after the lockout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Other handlers learn who is at the browser.
	req, _ := http.NewRequest("GET", as.ts.URL+"/everything/connect", nil)
	for _, ck := range c.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	if user, ok := as.SignedIn(req); !ok || user != "alice" {
		t.Errorf("SignedIn: %q %v, want alice", user, ok)
	}
	if _, ok := as.SignedIn(httptestRequest()); ok {
		t.Error("SignedIn without a cookie is true")
	}
}

func httptestRequest() *http.Request {
	r, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
	return r
}

// A store-held user changes their own password after proving the current one; a
// wrong current password changes nothing and counts towards the user's throttling; a
// user whose password the config sets is told to ask an administrator.
func TestAccountPagePasswordChange(t *testing.T) {
	as := newTestAS(t, nil, nil)
	hash, _ := bcrypt.GenerateFromPassword([]byte("first password 1"), bcrypt.MinCost)
	if err := as.store.CreateUser(context.Background(), User{Name: "bob", PasswordHash: string(hash)}); err != nil {
		t.Fatal(err)
	}
	c, csrf := accountSignIn(t, as, "bob", "first password 1")
	change := func(current, next, repeat string) (int, string) {
		resp := postForm(t, c, as.Issuer+"/account", url.Values{"csrf": {csrf}, "action": {"password"},
			"current_password": {current}, "new_password": {next}, "repeat_password": {repeat}})
		return resp.StatusCode, readBody(t, resp)
	}
	if status, body := change("wrong", "second password 2", "second password 2"); status != http.StatusForbidden || !strings.Contains(body, "current password is wrong") {
		t.Errorf("wrong current password: %d\n%s", status, body)
	}
	if f, _ := as.store.LoginFailures(context.Background(), "user:bob"); f.Count != 1 {
		t.Errorf("failures after a wrong current password: %d, want 1", f.Count)
	}
	if status, _ := change("first password 1", "short", "short"); status != http.StatusBadRequest {
		t.Errorf("short new password: %d", status)
	}
	if status, _ := change("first password 1", "second password 2", "second password 3"); status != http.StatusBadRequest {
		t.Errorf("repetition differs: %d", status)
	}
	if status, body := change("first password 1", "second password 2", "second password 2"); status != http.StatusOK || !strings.Contains(body, "Password changed.") {
		t.Fatalf("change: %d\n%s", status, body)
	}
	u, _ := as.store.GetUser(context.Background(), "bob")
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("second password 2")) != nil {
		t.Error("the new password does not match the stored hash")
	}
	accountSignIn(t, as, "bob", "second password 2")
	assertNoSecretsLogged(t, as, "second password 2", "first password 1")

	alice, aliceCSRF := accountSignIn(t, as, "alice", testPassword)
	resp := postForm(t, alice, as.Issuer+"/account", url.Values{"csrf": {aliceCSRF}, "action": {"password"},
		"current_password": {testPassword}, "new_password": {"another password 9"}, "repeat_password": {"another password 9"}})
	if body := readBody(t, resp); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "configuration") {
		t.Errorf("configured user: %d\n%s", resp.StatusCode, body)
	}
}

// What a signed-in user can put into the mint form is bounded: a name of at most 128
// bytes on one line, and at most maxPersonalTokensPerUser tokens.
func TestAccountPageMintBounds(t *testing.T) {
	as := newTestAS(t, nil, nil)
	c, csrf := accountSignIn(t, as, "alice", testPassword)
	for _, name := range []string{strings.Repeat("n", 129), "two\nlines"} {
		if status, token, _ := mintOnPage(t, as, c, csrf, name, "1"); status != http.StatusBadRequest || token != "" {
			t.Errorf("name %.20q: %d, token %q; want 400 and none", name, status, token)
		}
	}
	for i := range maxPersonalTokensPerUser {
		if status, _, body := mintOnPage(t, as, c, csrf, "t", "1"); status != http.StatusCreated {
			t.Fatalf("token %d: %d\n%s", i, status, body)
		}
	}
	if status, token, _ := mintOnPage(t, as, c, csrf, "one too many", "1"); status != http.StatusConflict || token != "" {
		t.Errorf("token %d: %d, token %q; want 409 and none", maxPersonalTokensPerUser+1, status, token)
	}
}
