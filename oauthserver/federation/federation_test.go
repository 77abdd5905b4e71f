package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestWithDefaults(t *testing.T) {
	p, err := Provider{Issuer: "https://login.example.com/t1/v2.0", ClientID: "c"}.WithDefaults()
	if err != nil || p.Name != "idp" || p.DisplayName != "idp" || p.UsernameClaim != "preferred_username" || p.GroupsClaim != "groups" ||
		strings.Join(p.Scopes, " ") != "openid profile email" || p.ReauthenticateAfter <= 0 {
		t.Fatalf("%+v %v", p, err)
	}
	if p, _ := (Provider{Issuer: "https://a.example", ClientID: "c", Scopes: []string{"groups"}}).WithDefaults(); strings.Join(p.Scopes, " ") != "openid groups" {
		t.Errorf("openid not added: %v", p.Scopes)
	}
	for _, bad := range []Provider{
		{Issuer: "https://a.example"},                                  // no client_id
		{ClientID: "c"},                                                // no issuer
		{Issuer: "http://idp.example.com", ClientID: "c"},              // http off loopback
		{Issuer: "https://a.example?x=1", ClientID: "c"},               // query
		{Name: "Corp SSO", Issuer: "https://a.example", ClientID: "c"}, // not a URL segment
		{Issuer: "https://a.example", ClientID: "c", ReauthenticateAfter: -1},
	} {
		if _, err := bad.WithDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Discovery takes only the configured issuer's document, with https endpoints.
func TestDiscover(t *testing.T) {
	var doc string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(doc))
	}))
	defer ts.Close()
	for _, tc := range []struct {
		doc, want string
	}{
		{`{"issuer":"` + ts.URL + `","authorization_endpoint":"` + ts.URL + `/a","token_endpoint":"` + ts.URL + `/t"}`, ""},
		{`{"issuer":"https://evil.example","authorization_endpoint":"` + ts.URL + `/a","token_endpoint":"` + ts.URL + `/t"}`, "names issuer"},
		{`{"issuer":"` + ts.URL + `","authorization_endpoint":"http://idp.example.com/a","token_endpoint":"` + ts.URL + `/t"}`, "must be https"},
		{`{"issuer":"` + ts.URL + `","authorization_endpoint":"` + ts.URL + `/a"}`, "token_endpoint"},
		{`not json`, "not a discovery document"},
		{`{"issuer":"` + strings.Repeat("x", maxDiscoveryDocument) + `"}`, "larger than"},
	} {
		doc = tc.doc
		_, err := discover(context.Background(), ts.Client(), ts.URL)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%.60s: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

// The callback's state must be this sign-in's before anything else is looked at; the
// provider's refusal is reported with its words made safe.
func TestFinishChecksStateFirst(t *testing.T) {
	c, err := New(context.Background(), Provider{Issuer: "http://127.0.0.1:1", ClientID: "c"}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPending()
	if _, err := c.Finish(context.Background(), "http://x/cb", p, url.Values{"state": {"other"}, "code": {"c"}}); err == nil || !strings.Contains(err.Error(), "state") {
		t.Errorf("other state: %v", err)
	}
	if _, err := c.Finish(context.Background(), "http://x/cb", Pending{}, url.Values{"code": {"c"}}); err == nil {
		t.Error("empty state accepted")
	}
	_, err = c.Finish(context.Background(), "http://x/cb", p, url.Values{"state": {p.State}, "error": {"access_denied"}, "error_description": {"no\r\n<script>"}})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Code != "access_denied" || strings.ContainsAny(refused.Description, "\r\n") {
		t.Errorf("refusal: %#v", err)
	}
}

func TestUsableName(t *testing.T) {
	for name, want := range map[string]bool{"alice": true, "alice@example.com": true, "00u1ab2CD-x_y": true, "Ana María": false, "": false, "a\tb": false,
		"bob+tag@example.com": false, ".hidden": false, strings.Repeat("x", 65): false} {
		if UsableName(name) != want {
			t.Errorf("UsableName(%q) = %v", name, !want)
		}
	}
}

// The name comes from the username claim, else a verified email, else sub: an
// unverified email (which a user may set to a colleague's at some providers) is never a
// name.
func TestUsername(t *testing.T) {
	c := &Client{p: Provider{UsernameClaim: "preferred_username"}}
	for _, tc := range []struct {
		claims, want string
	}{
		{`{"preferred_username":"alice","email":"a@x.example","email_verified":true}`, "alice"},
		{`{"preferred_username":"Alice Smith","email":"a@x.example","email_verified":true}`, "a@x.example"},
		{`{"email":"boss@x.example"}`, "sub-1"},
		{`{"email":"boss@x.example","email_verified":false}`, "sub-1"},
		{`{"email":"boss@x.example","email_verified":"true"}`, "sub-1"},
	} {
		var claims map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.claims), &claims); err != nil {
			t.Fatal(err)
		}
		if got := c.username(claims, "sub-1"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.claims, got, tc.want)
		}
	}
	c.p.UsernameClaim = "email"
	var claims map[string]json.RawMessage
	json.Unmarshal([]byte(`{"email":"boss@x.example"}`), &claims)
	if got := c.username(claims, "sub-1"); got != "sub-1" {
		t.Errorf("username_claim email, unverified: %q", got)
	}
}
