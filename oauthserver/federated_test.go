package oauthserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/internal/testenv"
	"github.com/caddymcp/caddymcp/oauthserver/federation"
)

const (
	idpClient = "caddymcp-login" // testdata/oidc/provider.mjs
	idpSecret = "caddymcp-login-secret"
	// entraReaders is provider.mjs's ENTRA_GUIDS.readers.
	entraReaders = "7d3c1a52-2222-4a9b-8c1d-5e6f7a8b9c01"
)

// newFederatedAS starts a real OpenID provider (provider.mjs with profile) and an
// authorization server that signs users in there as provider "corp", mapping the
// Entra group id of readers to "readers".
func newFederatedAS(t *testing.T, profile string, configure func(*Server)) (*testAS, string) {
	t.Helper()
	var idp string
	as := newTestAS(t, func(s *Server) {
		idp = testenv.StartOIDCProvider(t, "PROFILE="+profile, "LOGIN_REDIRECT_URIS="+s.Issuer+"/login/corp/callback")
		s.IdentityProviders = []federation.Provider{{
			Name: "corp", DisplayName: "Corp SSO", Issuer: idp, ClientID: idpClient, ClientSecret: idpSecret,
			Scopes: []string{"openid", "profile", "email", "groups"}, GroupMap: map[string]string{entraReaders: "readers"},
		}}
		if configure != nil {
			configure(s)
		}
	}, nil)
	return as, idp
}

var providerButton = regexp.MustCompile(`<a class="button" href="([^"]+)">Sign in with ([^<]+)</a>`)

// providerLink finds the identity provider's button on a sign-in page.
func providerLinkOn(t *testing.T, as *testAS, page string) string {
	t.Helper()
	m := providerButton.FindStringSubmatch(page)
	if m == nil || m[2] != "Corp SSO" {
		t.Fatalf("no Corp SSO button on the page:\n%s", page)
	}
	return as.ts.URL + html.UnescapeString(m[1])
}

// idpSignIn follows the button to the provider, signs user in on its dev login and
// consent forms, and returns the URL the provider sends the browser back to (not
// fetched).
func idpSignIn(t *testing.T, c *http.Client, start, user string) *url.URL {
	t.Helper()
	next, _ := url.Parse(start)
	formAction := regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	formPrompt := regexp.MustCompile(`name="prompt" value="(\w+)"`)
	var form url.Values
	for step := range 12 {
		if step > 0 && strings.Contains(next.Path, "/login/corp/callback") {
			return next
		}
		method, body := http.MethodGet, io.Reader(nil)
		if form != nil {
			method, body = http.MethodPost, strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, next.String(), body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, next, err)
		}
		page := readBody(t, resp)
		form = nil
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				t.Fatal(err)
			}
			next = loc
		case resp.StatusCode == http.StatusOK:
			a, p := formAction.FindStringSubmatch(page), formPrompt.FindStringSubmatch(page)
			if a == nil || p == nil {
				t.Fatalf("%s shows no login or consent form:\n%s", next, page)
			}
			action, _ := next.Parse(html.UnescapeString(a[1]))
			form = url.Values{"prompt": {p[1]}}
			if p[1] == "login" {
				form.Set("login", user)
				form.Set("password", "any password")
			}
			next = action
		default:
			t.Fatalf("%s %s: %d:\n%s", method, next, resp.StatusCode, page)
		}
	}
	t.Fatalf("no way back from the provider after 12 steps (last %s)", next)
	return nil
}

func browse(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func tokenClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("token claims: %v", err)
	}
	return m
}

// An MCP client signs in through the company's provider (Entra-shaped: group object
// ids): the sign-in page offers the button, the provider's sign-in comes back, the
// user approves, and the token carries the user's name and mapped groups. The user is
// recorded as the provider's, with no password to sign in with, and refreshing stops
// after reauthenticate_after.
func TestFederatedSignIn(t *testing.T) {
	as, _ := newFederatedAS(t, "entra", nil)
	c := browser(t)
	resp, page := browse(t, c, authURL(as, nativeClient, "http://127.0.0.1:9/cb", "st", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	back := idpSignIn(t, c, providerLinkOn(t, as, page), "bob")
	if back.Query().Get("code") == "" || back.Query().Get("iss") == "" {
		t.Fatalf("provider's redirect %s", back)
	}
	resp, page = browse(t, c, back.String())
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Allow access?") || !strings.Contains(page, "<b>bob</b>") {
		t.Fatalf("after the provider: %d, want bob's consent page:\n%s", resp.StatusCode, page)
	}
	form := formFields(t, page)
	form.Set("action", "approve")
	resp = postForm(t, c, as.Issuer+"/authorize", form)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("state") != "st" {
		t.Fatalf("approve: %d %s", resp.StatusCode, loc)
	}
	tok := token(t, as, codeForm(nativeClient, loc.Query().Get("code"), "http://127.0.0.1:9/cb", testVerifier), "", "")
	if tok.status != http.StatusOK {
		t.Fatalf("token: %d %s %s", tok.status, tok.Error, tok.Desc)
	}
	claims := tokenClaims(t, tok.Access)
	// bob's platform-admins has no group line: its Entra object id stays as it is.
	if claims["sub"] != "bob" || !slices.Equal(anyStrings(claims["groups"]), []string{"9b8a7c6d-3333-4e5f-a1b2-c3d4e5f6a7b8"}) {
		t.Fatalf("claims %v", claims)
	}
	u, err := as.store.GetUser(context.Background(), "bob")
	if err != nil || u.Provider != "corp" || u.PasswordHash != "" || !strings.HasSuffix(u.ProviderSubject, " bob") {
		t.Fatalf("stored user %+v, %v", u, err)
	}

	// No password sign-in for a provider's user, whatever is typed.
	pw := browser(t)
	_, page = browse(t, pw, authURL(as, nativeClient, "http://127.0.0.1:9/cb", "st", nil))
	form = formFields(t, page)
	form.Set("action", "login")
	form.Set("username", "bob")
	form.Set("password", "")
	if resp := postForm(t, pw, as.Issuer+"/authorize", form); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("password sign-in of a provider's user: %d", resp.StatusCode)
	}

	// The account page says where the password lives and refuses to change it.
	_, page = browse(t, c, as.Issuer+"/account")
	if !strings.Contains(page, "You sign in through Corp SSO") || strings.Contains(page, "current_password") {
		t.Errorf("account page of a provider's user:\n%s", page)
	}

	// Refresh works within reauthenticate_after, not after it.
	if r := token(t, as, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Refresh}, "client_id": {nativeClient}}, "", ""); r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.Desc)
	} else {
		tok = r
	}
	as.clock.advance(federation.DefaultReauthenticateAfter + time.Minute)
	if r := token(t, as, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Refresh}, "client_id": {nativeClient}}, "", ""); r.status != http.StatusBadRequest || r.Error != "invalid_grant" || !strings.Contains(r.Desc, "sign in again") {
		t.Errorf("refresh after reauthenticate_after: %d %s %s", r.status, r.Error, r.Desc)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// The account sign-in (no application) goes back to the account page; a provider's
// user cannot take a local user's name; Entra group ids are renamed by the group map.
func TestFederatedAccountSignIn(t *testing.T) {
	as, _ := newFederatedAS(t, "entra", nil)
	c := browser(t)
	resp, page := browse(t, c, as.Issuer+"/login?return_to="+url.QueryEscape(as.issuerPath+"/account"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in page: %d", resp.StatusCode)
	}
	back := idpSignIn(t, c, providerLinkOn(t, as, page), "carol")
	resp, _ = browse(t, c, back.String())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != as.issuerPath+"/account" {
		t.Fatalf("after the provider: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = browse(t, c, as.Issuer+"/account")
	if !strings.Contains(page, "Signed in as <b>carol</b>") {
		t.Fatalf("account page:\n%s", page)
	}
	// A personal token works while carol keeps signing in through the provider, and
	// stops once she has not for inactive_after (she left the company).
	_, personal, body := mintOnPage(t, as, c, pageCSRF(t, page), "ci", "90")
	if personal == "" {
		t.Fatalf("mint:\n%s", body)
	}
	if p, err := as.resolvePersonalToken(context.Background(), personal); err != nil || p.Subject != "carol" {
		t.Fatalf("personal token: %+v %v", p, err)
	}
	as.clock.advance(federation.DefaultInactiveAfter + time.Hour)
	if _, err := as.resolvePersonalToken(context.Background(), personal); err == nil {
		t.Error("a personal token of a user inactive at the provider still works")
	}
	// alice is a local user of the test server: a provider's alice cannot take her name.
	c2 := browser(t)
	_, page = browse(t, c2, as.Issuer+"/login")
	back = idpSignIn(t, c2, providerLinkOn(t, as, page), "alice")
	resp, page = browse(t, c2, back.String())
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "belongs to a local account") {
		t.Fatalf("provider's alice over the local alice: %d\n%s", resp.StatusCode, page)
	}
	// frank's readers arrives as its Entra object id and is renamed by the group line.
	c3 := browser(t)
	_, page = browse(t, c3, as.Issuer+"/login")
	back = idpSignIn(t, c3, providerLinkOn(t, as, page), "frank")
	browse(t, c3, back.String())
	if u, err := as.store.GetUser(context.Background(), "frank"); err != nil || !slices.Equal(u.Groups, []string{"readers"}) {
		t.Fatalf("frank: %+v %v", u, err)
	}
}

// Attacks on the provider's way back: a callback carried to another browser, replayed,
// or with its state changed signs no one in; the provider's refusal and Entra's group
// overage are explained, not taken as a sign-in.
func TestFederatedCallbackAttacks(t *testing.T) {
	as, _ := newFederatedAS(t, "entra", nil)
	victim := browser(t)
	_, page := browse(t, victim, as.Issuer+"/login")
	back := idpSignIn(t, victim, providerLinkOn(t, as, page), "bob")

	attacker := browser(t)
	browse(t, attacker, as.Issuer+"/login") // a session of its own
	if resp, _ := browse(t, attacker, back.String()); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback in another browser: %d", resp.StatusCode)
	}
	tampered := *back
	q := tampered.Query()
	q.Set("state", "x"+q.Get("state"))
	tampered.RawQuery = q.Encode()
	if resp, _ := browse(t, victim, tampered.String()); resp.StatusCode == http.StatusSeeOther {
		t.Errorf("callback with another state signed in")
	}
	// The tampered try used the browser's one sign-in cookie: the real callback is now
	// refused as well, and the user starts again.
	if resp, _ := browse(t, victim, back.String()); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback after its cookie was used: %d", resp.StatusCode)
	}
	if _, err := as.store.GetUser(context.Background(), "bob"); err == nil {
		t.Error("a refused callback recorded the user")
	}
	if resp, _ := browse(t, victim, as.Issuer+"/login/corp/callback?code=x&state=y"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback with no sign-in: %d", resp.StatusCode)
	}
	// The start's return_to is a path on this site only: the provider's way back is no
	// open redirect.
	for _, evil := range []string{"https://evil.example/x", "//evil.example/x", "/\\evil.example"} {
		c := browser(t)
		browse(t, c, as.Issuer+"/login") // a session of its own
		back := idpSignIn(t, c, as.Issuer+"/login/corp?return_to="+url.QueryEscape(evil), "bob")
		if resp, _ := browse(t, c, back.String()); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != as.issuerPath+"/account" {
			t.Errorf("return_to %q: %d %s", evil, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, _ := browse(t, victim, as.Issuer+"/login/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown provider: %d", resp.StatusCode)
	}
	if resp, _ := browse(t, victim, as.Issuer+"/login/corp?request=unknown"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("another's or an unknown request id: %d", resp.StatusCode)
	}

	// Entra leaves groups out for users in too many (overage): no sign-in without them.
	c := browser(t)
	_, page = browse(t, c, as.Issuer+"/login")
	back = idpSignIn(t, c, providerLinkOn(t, as, page), "erin")
	resp, page := browse(t, c, back.String())
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "overage") {
		t.Errorf("overage: %d\n%s", resp.StatusCode, page)
	}

	// The provider's refusal.
	c = browser(t)
	_, page = browse(t, c, as.Issuer+"/login")
	start := providerLinkOn(t, as, page)
	resp, _ = browse(t, c, start)
	toIdP, _ := resp.Location()
	refusal := as.Issuer + "/login/corp/callback?" + url.Values{"state": {toIdP.Query().Get("state")}, "error": {"access_denied"}, "error_description": {"<b>no</b>"}}.Encode()
	resp, page = browse(t, c, refusal)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "access_denied") || strings.Contains(page, "<b>no</b>") {
		t.Errorf("refusal: %d\n%s", resp.StatusCode, page)
	}
}

// With password sign-in off and one provider, the sign-in pages send the browser
// straight to it; with two, they offer their buttons and no password form. A posted
// password is refused even for a configured local user.
func TestPasswordSignInOff(t *testing.T) {
	as, idp := newFederatedAS(t, "generic", func(s *Server) { s.DisablePasswordSignIn = true })
	c := browser(t)
	resp, _ := browse(t, c, authURL(as, nativeClient, "http://127.0.0.1:9/cb", "st", nil))
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, as.issuerPath+"/login/corp?request=") {
		t.Fatalf("authorize with one provider: %d %s", resp.StatusCode, loc)
	}
	resp, _ = browse(t, c, as.Issuer+"/login?return_to=%2Foauth%2Faccount")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != as.issuerPath+"/login/corp?return_to=%2Foauth%2Faccount" {
		t.Fatalf("account sign-in with one provider: %d %s", resp.StatusCode, loc)
	}
	if _, result, _ := as.checkCredentials(&http.Request{PostForm: url.Values{"username": {"alice"}, "password": {testPassword}}, RemoteAddr: "192.0.2.1:1", Header: http.Header{}}); result != signInFailed {
		t.Errorf("password sign-in with password_sign_in off: %v", result)
	}

	two := newTestAS(t, func(s *Server) {
		s.DisablePasswordSignIn = true
		s.IdentityProviders = []federation.Provider{
			{Name: "corp", DisplayName: "Corp SSO", Issuer: idp, ClientID: idpClient},
			{Name: "partners", DisplayName: "Partners", Issuer: idp, ClientID: idpClient},
		}
	}, nil)
	_, page := browse(t, browser(t), authURL(two, nativeClient, "http://127.0.0.1:9/cb", "st", nil))
	if strings.Contains(page, `name="password"`) || !strings.Contains(page, "Sign in with Corp SSO") || !strings.Contains(page, "Sign in with Partners") {
		t.Errorf("two providers:\n%s", page)
	}
}

// allowed_groups: the provider signs carol (no group) in, but only readers may enter.
func TestFederatedAllowedGroups(t *testing.T) {
	as, _ := newFederatedAS(t, "entra", func(s *Server) { s.IdentityProviders[0].AllowedGroups = []string{"readers"} })
	for user, want := range map[string]int{"carol": http.StatusForbidden, "frank": http.StatusSeeOther} {
		c := browser(t)
		_, page := browse(t, c, as.Issuer+"/login")
		back := idpSignIn(t, c, providerLinkOn(t, as, page), user)
		resp, page := browse(t, c, back.String())
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d\n%s", user, resp.StatusCode, want, page)
		}
		_, err := as.store.GetUser(context.Background(), user)
		if (err == nil) != (want == http.StatusSeeOther) {
			t.Errorf("%s: record %v", user, err)
		}
	}
}
