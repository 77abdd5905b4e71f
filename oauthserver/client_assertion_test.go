package oauthserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

const keyBot = "key-bot"

// newClientKey returns a private key and its public JWK Set in JSON.
func newClientKey(t testing.TB) (jwk.Key, string) {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	priv.Set(jwk.KeyIDKey, "k1")
	pub, _ := priv.PublicKey()
	set := jwk.NewSet()
	set.AddKey(pub)
	b, _ := json.Marshal(set)
	return priv, string(b)
}

// assertion signs a client assertion for keyBot; edit adjusts its claims.
func assertion(t testing.TB, as *testAS, key jwk.Key, alg jwa.SignatureAlgorithm, edit func(jwt.Token)) string {
	t.Helper()
	now := as.now()
	tok := jwt.New()
	tok.Set(jwt.IssuerKey, keyBot)
	tok.Set(jwt.SubjectKey, keyBot)
	tok.Set(jwt.AudienceKey, as.Issuer+"/token")
	tok.Set(jwt.IssuedAtKey, now)
	tok.Set(jwt.ExpirationKey, now.Add(time.Minute))
	tok.Set(jwt.JwtIDKey, rand.Text())
	if edit != nil {
		edit(tok)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func assertionForm(a string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearerType}, "client_assertion": {a}}
}

// A machine client with private_key_jwt gets tokens with its groups; every forged,
// replayed, misdirected or over-long assertion is invalid_client and issues nothing.
func TestPrivateKeyJWT(t *testing.T) {
	key, jwks := newClientKey(t)
	otherKey, _ := newClientKey(t)
	as := newTestAS(t, func(s *Server) {
		s.Clients = append(s.Clients, ClientConfig{ID: keyBot, JWKS: jwks, Groups: []string{"robots"}})
	}, nil)

	var meta map[string]any
	json.Unmarshal(as.metadata, &meta)
	if !slices.Contains(toStrings(meta["token_endpoint_auth_methods_supported"]), "private_key_jwt") ||
		!slices.Contains(toStrings(meta["token_endpoint_auth_signing_alg_values_supported"]), "ES256") {
		t.Errorf("metadata does not advertise private_key_jwt with its algorithms: %s", as.metadata)
	}

	good := assertion(t, as, key, jwa.ES256, nil)
	a := token(t, as, assertionForm(good), "", "")
	if a.status != 200 {
		t.Fatalf("client_credentials with a good assertion: %+v", a)
	}
	tok := verifyAccessToken(t, as, a.Access, as.Resource)
	groups, _ := tok.Get("groups")
	if tok.Subject() != keyBot || !slices.Equal(toStrings(groups), []string{"robots"}) {
		t.Errorf("claims sub=%s groups=%v", tok.Subject(), groups)
	}
	// The issuer as audience is accepted too; client_id in the form must match.
	withID := assertionForm(assertion(t, as, key, jwa.ES256, func(tok jwt.Token) { tok.Set(jwt.AudienceKey, as.Issuer) }))
	withID.Set("client_id", keyBot)
	if a := token(t, as, withID, "", ""); a.status != 200 {
		t.Errorf("issuer as audience, client_id given: %+v", a)
	}

	for name, form := range map[string]url.Values{
		"replayed":             assertionForm(good),
		"another key":          assertionForm(assertion(t, as, otherKey, jwa.ES256, nil)),
		"another audience":     assertionForm(assertion(t, as, key, jwa.ES256, func(tok jwt.Token) { tok.Set(jwt.AudienceKey, "https://other.example/token") })),
		"expired":              assertionForm(assertion(t, as, key, jwa.ES256, func(tok jwt.Token) { tok.Set(jwt.ExpirationKey, as.now().Add(-time.Hour)) })),
		"ten minutes long":     assertionForm(assertion(t, as, key, jwa.ES256, func(tok jwt.Token) { tok.Set(jwt.ExpirationKey, as.now().Add(10*time.Minute)) })),
		"no jti":               assertionForm(assertion(t, as, key, jwa.ES256, func(tok jwt.Token) { tok.Remove(jwt.JwtIDKey) })),
		"sub of another":       assertionForm(assertion(t, as, key, jwa.ES256, func(tok jwt.Token) { tok.Set(jwt.SubjectKey, machine) })),
		"HS256 with the key":   assertionForm(hs256Assertion(t, as)),
		"alg none":             assertionForm(noneAssertion(t, as)),
		"wrong assertion type": {"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:other"}, "client_assertion": {assertion(t, as, key, jwa.ES256, nil)}},
		"garbage":              assertionForm("a.b.c"),
		"oversized":            assertionForm(strings.Repeat("a", maxAssertionSize+1)),
		"client_id of another": func() url.Values {
			f := assertionForm(assertion(t, as, key, jwa.ES256, nil))
			f.Set("client_id", machine)
			return f
		}(),
	} {
		a := token(t, as, form, "", "")
		if a.status != 401 && a.status != 400 || a.Error != "invalid_client" || a.Access != "" {
			t.Errorf("%s: %+v, want invalid_client and no token", name, a)
		}
	}
	// A secret next to an assertion is one credential too many; the secret alone is refused.
	f := assertionForm(assertion(t, as, key, jwa.ES256, nil))
	f.Set("client_secret", "x")
	if a := token(t, as, f, "", ""); a.Error != "invalid_request" || a.Access != "" {
		t.Errorf("assertion and secret: %+v", a)
	}
	if a := token(t, as, url.Values{"grant_type": {"client_credentials"}}, keyBot, "guess"); a.Error != "invalid_client" || a.Access != "" {
		t.Errorf("key-bot with a secret: %+v", a)
	}
}

func hs256Assertion(t testing.TB, as *testAS) string {
	t.Helper()
	tok := jwt.New()
	tok.Set(jwt.IssuerKey, keyBot)
	tok.Set(jwt.SubjectKey, keyBot)
	tok.Set(jwt.AudienceKey, as.Issuer+"/token")
	tok.Set(jwt.ExpirationKey, as.now().Add(time.Minute))
	tok.Set(jwt.JwtIDKey, rand.Text())
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, []byte("guessable shared secret")))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func noneAssertion(t testing.TB, as *testAS) string {
	t.Helper()
	claims, _ := json.Marshal(map[string]any{"iss": keyBot, "sub": keyBot, "aud": as.Issuer + "/token", "exp": as.now().Add(time.Minute).Unix(), "jti": "x"})
	return b64url([]byte(`{"alg":"none"}`)) + "." + b64url(claims) + "."
}

// A private or symmetric key in the config is refused: the server must never hold the
// client's signing secret.
func TestPrivateKeyJWTConfig(t *testing.T) {
	key, _ := newClientKey(t)
	privJSON, _ := json.Marshal(key)
	for name, jwks := range map[string]string{
		"private key": string(privJSON),
		"symmetric":   `{"kty":"oct","k":"c2VjcmV0"}`,
		"not JSON":    `keys`,
		"empty set":   `{"keys":[]}`,
	} {
		s := &Server{Issuer: "http://127.0.0.1:1/oauth", Clients: []ClientConfig{{ID: keyBot, JWKS: jwks, Groups: []string{"g"}}}}
		if err := s.provision(t.Context(), nopLogger(), nil, nil, nil); err == nil {
			t.Errorf("%s: provisioned", name)
		}
	}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
