package oauthserver

import (
	"context"
	"encoding/json"
	"github.com/caddymcp/caddymcp/internal/principal"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func TestMetadataAtEveryWellKnownPath(t *testing.T) {
	as := newTestAS(t, nil, nil)
	for _, p := range []string{"/.well-known/oauth-authorization-server/oauth", "/.well-known/openid-configuration/oauth", "/oauth/.well-known/openid-configuration"} {
		resp, err := http.Get(as.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(readBody(t, resp)), &m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", p, resp.StatusCode, err)
		}
		if m["issuer"] != as.Issuer {
			t.Errorf("%s: issuer %v, want %s", p, m["issuer"], as.Issuer)
		}
		if got := m["code_challenge_methods_supported"]; !equalJSON(got, []string{"S256"}) {
			t.Errorf("code_challenge_methods_supported = %v", got)
		}
		if m["client_id_metadata_document_supported"] != true || m["authorization_response_iss_parameter_supported"] != true {
			t.Errorf("CIMD / iss support not advertised: %v", m)
		}
		if !equalJSON(m["response_types_supported"], []string{"code"}) ||
			!equalJSON(m["grant_types_supported"], []string{"authorization_code", "refresh_token", "client_credentials"}) ||
			!equalJSON(m["token_endpoint_auth_methods_supported"], []string{"none", "client_secret_basic", "client_secret_post"}) {
			t.Errorf("supported lists: %v", m)
		}
		for _, e := range []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint", "jwks_uri"} {
			if s, _ := m[e].(string); !strings.HasPrefix(s, as.Issuer+"/") {
				t.Errorf("%s = %v", e, m[e])
			}
		}
	}
	// The root issuer's metadata is not served for a path issuer, and other paths pass on.
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/oauth/other", "/elsewhere"} {
		resp, _ := http.Get(as.ts.URL + p)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404 from the next handler", p, resp.StatusCode)
		}
	}
}

func equalJSON(got any, want []string) bool {
	list, ok := got.([]any)
	if !ok || len(list) != len(want) {
		return false
	}
	for i := range list {
		if list[i] != want[i] {
			return false
		}
	}
	return true
}

// verifyAccessToken checks a token against the server's own JWKS as a resource would.
func verifyAccessToken(t testing.TB, as *testAS, tok, audience string) jwt.Token {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), as.Issuer+"/jwks")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	if typ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		t.Errorf("typ = %q, want at+jwt", typ)
	}
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set, jws.WithRequireKid(true)), jwt.WithIssuer(as.Issuer),
		jwt.WithAudience(audience), jwt.WithValidate(true), jwt.WithClock(jwt.ClockFunc(as.clock.now)))
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return parsed
}

func TestCodeFlowRefreshRotationAndReplay(t *testing.T) {
	as := newTestAS(t, nil, nil)
	c := browser(t)
	redirect := "http://127.0.0.1:49152/callback"
	resource := as.ts.URL + "/servers/github/mcp"
	loc := signIn(t, as, c, authURL(as, nativeClient, redirect, "xyz-state", url.Values{"resource": {resource}}), "alice", testPassword)
	q := loc.Query()
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Fatalf("redirected to %s", got)
	}
	if q.Get("state") != "xyz-state" || q.Get("iss") != as.Issuer || q.Get("code") == "" {
		t.Fatalf("redirect query %v: want code, state and iss", q)
	}

	a := token(t, as, codeForm(nativeClient, q.Get("code"), redirect, testVerifier), "", "")
	if a.status != 200 || a.Access == "" || a.Refresh == "" || a.Type != "Bearer" || a.Expires != 3600 {
		t.Fatalf("token answer %+v", a)
	}
	if a.header.Get("Cache-Control") != "no-store" || a.header.Get("Pragma") != "no-cache" {
		t.Errorf("token answer cacheable: %v", a.header)
	}
	tok := verifyAccessToken(t, as, a.Access, resource)
	groups, _ := tok.Get("groups")
	cid, _ := tok.Get("client_id")
	if tok.Subject() != "alice" || cid != nativeClient || !slices.Equal(toStrings(groups), []string{"eng", "ops"}) || tok.JwtID() == "" {
		t.Errorf("claims: sub=%s client_id=%v groups=%v jti=%s", tok.Subject(), cid, groups, tok.JwtID())
	}

	// Second sign-in for the same client and resource: consent is remembered.
	loc2 := signIn(t, as, c, authURL(as, nativeClient, "http://127.0.0.1:50000/callback", "s2", url.Values{"resource": {resource}}), "alice", testPassword)
	if loc2.Query().Get("code") == "" || loc2.Host != "127.0.0.1:50000" {
		t.Fatalf("remembered consent: %v", loc2)
	}

	refresh := func(rt string) tokenAnswer {
		return token(t, as, url.Values{"grant_type": {"refresh_token"}, "client_id": {nativeClient}, "refresh_token": {rt}}, "", "")
	}
	r1 := refresh(a.Refresh)
	if r1.status != 200 || r1.Refresh == "" || r1.Refresh == a.Refresh {
		t.Fatalf("refresh: %+v", r1)
	}
	verifyAccessToken(t, as, r1.Access, resource)
	// Replaying the rotated-out token revokes the family: the current one dies too.
	if r := refresh(a.Refresh); r.status != 400 || r.Error != "invalid_grant" || r.Access != "" {
		t.Fatalf("replayed refresh token: %+v", r)
	}
	if r := refresh(r1.Refresh); r.status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("family not revoked after replay: %+v", r)
	}
	if as.logs.FilterMessage("refresh token reused; its family revoked").Len() != 1 {
		t.Error("replay not logged")
	}
	assertNoSecretsLogged(t, as, a.Access, a.Refresh, r1.Refresh, q.Get("code"), testPassword)
}

func toStrings(v any) []string {
	var out []string
	switch l := v.(type) {
	case []any:
		for _, x := range l {
			s, _ := x.(string)
			out = append(out, s)
		}
	case []string:
		return l
	}
	return out
}

func assertNoSecretsLogged(t *testing.T, as *testAS, secrets ...string) {
	t.Helper()
	for _, e := range as.logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		for _, s := range secrets {
			if s != "" && (strings.Contains(string(line), s) || strings.Contains(e.Message, s)) {
				t.Errorf("log entry %q contains a secret", e.Message)
			}
		}
	}
}

func TestCodeReuseRevokesWhatItProduced(t *testing.T) {
	as := newTestAS(t, nil, nil)
	redirect := "http://localhost:8765/cb"
	loc := signIn(t, as, browser(t), authURL(as, nativeClient, redirect, "s", nil), "alice", testPassword)
	form := codeForm(nativeClient, loc.Query().Get("code"), redirect, testVerifier)
	first := token(t, as, form, "", "")
	if first.status != 200 {
		t.Fatalf("first redemption: %+v", first)
	}
	second := token(t, as, form, "", "")
	if second.status != 400 || second.Error != "invalid_grant" || second.Access != "" {
		t.Fatalf("second redemption: %+v", second)
	}
	r := token(t, as, url.Values{"grant_type": {"refresh_token"}, "client_id": {nativeClient}, "refresh_token": {first.Refresh}}, "", "")
	if r.status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("refresh token of a reused code still works: %+v", r)
	}
}

func TestCodeExpiresAfterSixtySeconds(t *testing.T) {
	as := newTestAS(t, nil, nil)
	redirect := "http://127.0.0.1:1234/cb"
	loc := signIn(t, as, browser(t), authURL(as, nativeClient, redirect, "s", nil), "alice", testPassword)
	as.clock.advance(61 * time.Second)
	if a := token(t, as, codeForm(nativeClient, loc.Query().Get("code"), redirect, testVerifier), "", ""); a.Error != "invalid_grant" {
		t.Fatalf("expired code redeemed: %+v", a)
	}
}

func TestTokenRequestAttacks(t *testing.T) {
	as := newTestAS(t, nil, nil)
	redirect := "http://127.0.0.1:1234/cb"
	newCode := func() string {
		return signIn(t, as, browser(t), authURL(as, nativeClient, redirect, "s", nil), "alice", testPassword).Query().Get("code")
	}
	cases := []struct {
		name  string
		form  func(code string) url.Values
		error string
	}{
		{"wrong verifier", func(c string) url.Values { return codeForm(nativeClient, c, redirect, strings.Repeat("a", 43)) }, "invalid_grant"},
		{"short verifier", func(c string) url.Values { return codeForm(nativeClient, c, redirect, "abc") }, "invalid_grant"},
		{"missing verifier", func(c string) url.Values { return codeForm(nativeClient, c, redirect, "") }, "invalid_request"},
		{"challenge sent as verifier", func(c string) url.Values { return codeForm(nativeClient, c, redirect, challengeOf(testVerifier)) }, "invalid_grant"},
		{"other redirect_uri", func(c string) url.Values { return codeForm(nativeClient, c, "http://127.0.0.1:9999/cb", testVerifier) }, "invalid_grant"},
		{"other client", func(c string) url.Values { return codeForm(webClient, c, redirect, testVerifier) }, "invalid_grant"},
		{"other resource", func(c string) url.Values {
			f := codeForm(nativeClient, c, redirect, testVerifier)
			f.Set("resource", "https://evil.example/mcp")
			return f
		}, "invalid_target"},
		{"unknown client", func(c string) url.Values { return codeForm("nobody", c, redirect, testVerifier) }, "invalid_client"},
		{"bad grant type", func(c string) url.Values { return url.Values{"grant_type": {"password"}, "client_id": {nativeClient}} }, "unsupported_grant_type"},
		{"public client with a secret", func(c string) url.Values {
			f := codeForm(nativeClient, c, redirect, testVerifier)
			f.Set("client_secret", "x")
			return f
		}, "invalid_client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code := newCode()
			a := token(t, as, tc.form(code), "", "")
			if a.Error != tc.error || a.Access != "" || a.status < 400 {
				t.Fatalf("got %+v, want %s", a, tc.error)
			}
			if a.header.Get("Cache-Control") != "no-store" {
				t.Error("error answer without no-store")
			}
		})
	}
	// A repeated parameter is refused.
	f := codeForm(nativeClient, newCode(), redirect, testVerifier)
	f.Add("code", "second")
	if a := token(t, as, f, "", ""); a.Error != "invalid_request" {
		t.Fatalf("repeated parameter: %+v", a)
	}
}

func TestClientCredentials(t *testing.T) {
	as := newTestAS(t, nil, nil)
	a := token(t, as, url.Values{"grant_type": {"client_credentials"}}, machine, machineKey)
	if a.status != 200 || a.Refresh != "" {
		t.Fatalf("client_credentials: %+v", a)
	}
	tok := verifyAccessToken(t, as, a.Access, as.Resource)
	groups, _ := tok.Get("groups")
	if tok.Subject() != machine || !slices.Equal(toStrings(groups), []string{"robots"}) {
		t.Errorf("claims sub=%s groups=%v", tok.Subject(), groups)
	}
	// client_secret_post works too.
	if a := token(t, as, url.Values{"grant_type": {"client_credentials"}, "client_id": {machine}, "client_secret": {machineKey}}, "", ""); a.status != 200 {
		t.Fatalf("client_secret_post: %+v", a)
	}
	if a := token(t, as, url.Values{"grant_type": {"client_credentials"}}, machine, "wrong"); a.status != 401 || a.Error != "invalid_client" || a.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("wrong secret: %+v", a)
	}
	if a := token(t, as, url.Values{"grant_type": {"client_credentials"}, "client_id": {nativeClient}}, "", ""); a.Error != "unauthorized_client" {
		t.Fatalf("public client got client_credentials: %+v", a)
	}
}

func TestRevokeRefreshToken(t *testing.T) {
	as := newTestAS(t, nil, nil)
	redirect := "http://127.0.0.1:1234/cb"
	loc := signIn(t, as, browser(t), authURL(as, nativeClient, redirect, "s", nil), "alice", testPassword)
	a := token(t, as, codeForm(nativeClient, loc.Query().Get("code"), redirect, testVerifier), "", "")
	revoke := func(v url.Values) int {
		resp, err := http.PostForm(as.Issuer+"/revoke", v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Another client cannot revoke it (answered 200, left alone).
	if st := revoke(url.Values{"token": {a.Refresh}, "client_id": {webClient}}); st != 200 {
		t.Fatalf("revoke by another client: %d", st)
	}
	if r := token(t, as, url.Values{"grant_type": {"refresh_token"}, "client_id": {nativeClient}, "refresh_token": {a.Refresh}}, "", ""); r.status != 200 {
		t.Fatalf("another client revoked the token: %+v", r)
	} else {
		a.Refresh = r.Refresh
	}
	if st := revoke(url.Values{"token": {a.Refresh}, "client_id": {nativeClient}}); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if r := token(t, as, url.Values{"grant_type": {"refresh_token"}, "client_id": {nativeClient}, "refresh_token": {a.Refresh}}, "", ""); r.Error != "invalid_grant" {
		t.Fatalf("revoked refresh token works: %+v", r)
	}
	// Access tokens go on the revocation list: not by another client, at once by their
	// own, and on every instance sharing the store once it reloads the list.
	caller := func(tok string) *principal.Caller {
		claims := verifyAccessToken(t, as, tok, as.Resource)
		return &principal.Caller{Subject: claims.Subject(), TokenID: claims.JwtID(), IssuedAt: claims.IssuedAt()}
	}
	a2 := token(t, as, codeForm(nativeClient, signIn(t, as, browser(t), authURL(as, nativeClient, redirect, "s2", nil), "alice", testPassword).Query().Get("code"), redirect, testVerifier), "", "")
	if st := revoke(url.Values{"token": {a.Access}, "client_id": {webClient}}); st != 200 || as.revocations.revoked(caller(a.Access)) {
		t.Fatalf("access token revoked by another client (%d)", st)
	}
	if st := revoke(url.Values{"token": {a.Access}, "client_id": {nativeClient}}); st != 200 || !as.revocations.revoked(caller(a.Access)) {
		t.Fatalf("access token revocation: %d, revoked %v", st, as.revocations.revoked(caller(a.Access)))
	}
	if as.revocations.revoked(caller(a2.Access)) {
		t.Error("revoking one access token revoked another")
	}
	if st := revoke(url.Values{"token": {"eyJhbGciOiJub25lIn0.e30."}, "client_id": {nativeClient}}); st != 200 {
		t.Errorf("revoking a token not ours: %d, want 200 (RFC 7009)", st)
	}
}

// Removing a user, or changing their groups, revokes the access tokens they hold.
func TestSubjectRevocation(t *testing.T) {
	var rv revocations
	now := time.Unix(1_800_000_000, 0)
	rv.set([]Revocation{revokeSubject("alice", now.Add(500*time.Millisecond)), {Key: "jti:x", Expires: now.Add(-time.Second)}}, now)
	for _, c := range []struct {
		p    principal.Caller
		want bool
	}{
		{principal.Caller{Subject: "alice", IssuedAt: now.Add(-time.Hour)}, true},
		{principal.Caller{Subject: "alice", IssuedAt: now}, true}, // the same second
		{principal.Caller{Subject: "alice", IssuedAt: now.Add(time.Second)}, false},
		{principal.Caller{Subject: "bob", IssuedAt: now.Add(-time.Hour)}, false},
		{principal.Caller{Subject: "bob", TokenID: "x"}, false}, // expired entry
	} {
		if got := rv.revoked(&c.p); got != c.want {
			t.Errorf("%+v: revoked %v, want %v", c.p, got, c.want)
		}
	}
}

func TestKeyRotationKeepsOldKeyPublished(t *testing.T) {
	as := newTestAS(t, func(s *Server) { s.KeyRotation = durationOf(24 * time.Hour) }, nil)
	first := token(t, as, url.Values{"grant_type": {"client_credentials"}}, machine, machineKey)
	kid1 := kidOf(t, first.Access)
	as.clock.advance(24*time.Hour + time.Minute)
	second := token(t, as, url.Values{"grant_type": {"client_credentials"}}, machine, machineKey)
	if kid2 := kidOf(t, second.Access); kid2 == kid1 {
		t.Fatal("key not rotated")
	}
	set, err := jwk.Fetch(context.Background(), as.Issuer+"/jwks")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.LookupKeyID(kid1); !ok {
		t.Fatal("old key dropped from the JWKS while its tokens may be live")
	}
	as.clock.advance(2 * time.Hour)
	token(t, as, url.Values{"grant_type": {"client_credentials"}}, machine, machineKey)
	set, _ = jwk.Fetch(context.Background(), as.Issuer+"/jwks")
	if _, ok := set.LookupKeyID(kid1); ok {
		t.Fatal("retired key still published after its tokens expired")
	}
	for it := set.Keys(context.Background()); it.Next(context.Background()); {
		k := it.Pair().Value.(jwk.Key)
		if k.Algorithm() != jwa.ES256 {
			t.Errorf("alg %v", k.Algorithm())
		}
		if _, err := k.(jwk.ECDSAPublicKey); !err {
			t.Error("JWKS publishes a non-public key")
		}
	}
	// Keys are stored sealed.
	keys, _ := as.store.ListSigningKeys(context.Background())
	for _, k := range keys {
		if strings.Contains(string(k.Sealed), "PRIVATE") || len(k.Sealed) < 100 {
			t.Error("key not sealed")
		}
	}
}

func kidOf(t testing.TB, tok string) string {
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Signatures()[0].ProtectedHeaders().KeyID()
}
