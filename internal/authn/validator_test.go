package authn

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// fixture: one IdP with an RSA (RS256), an RSA (PS256), an EC and an Ed25519 key.
type fixture struct {
	clock *fakeClock
	idp   *idp
	v     *Validator
	rs    *signingKey
	ps    *signingKey
	ec    *signingKey
	ed    *signingKey
}

func newFixture(t *testing.T, mod ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{
		clock: newClock(),
		rs:    newRSA(t, "rsa-1", "RS256"),
		ps:    newRSA(t, "rsa-pss", "PS256"),
		ec:    newEC(t, "ec-1"),
		ed:    newEd(t, "ed-1"),
	}
	f.idp = newIdP(t, idpOpts{issuerPath: "/realms/corp"},
		publicJWK(t, f.rs, nil), publicJWK(t, f.ps, nil), publicJWK(t, f.ec, nil), publicJWK(t, f.ed, nil))
	cfg := Config{
		Issuers: []IssuerConfig{{Issuer: f.idp.issuer, Audiences: []string{testAud}}},
		Now:     f.clock.Now,
	}
	for _, m := range mod {
		m(&cfg)
	}
	f.v, _ = startValidator(t, cfg)
	return f
}

func (f *fixture) claims() map[string]any { return claimsFor(f.idp.issuer, f.clock.Now()) }

func TestValidateAlgorithms(t *testing.T) {
	f := newFixture(t)
	for _, k := range []*signingKey{f.rs, f.ps, f.ec, f.ed} {
		t.Run(k.alg, func(t *testing.T) {
			p := wantOK(t)(f.v.Validate(context.Background(), sign(t, k, f.claims())))
			if p.Subject != "user-123" || p.Issuer != f.idp.issuer || p.ClientID != "cursor" {
				t.Errorf("principal = %+v", p)
			}
			if !slices.Equal(p.Groups, []string{"platform-admins", "dev"}) {
				t.Errorf("groups = %q", p.Groups)
			}
			if !slices.Equal(p.TokenScopes, []string{"openid", "mcp:tools"}) {
				t.Errorf("scopes = %q", p.TokenScopes)
			}
			if want := f.clock.Now().Add(time.Hour); !p.ExpiresAt.Equal(want) {
				t.Errorf("expires = %v, want %v", p.ExpiresAt, want)
			}
		})
	}
	// Discovery went through the OIDC form appended to the issuer path.
	if f.idp.discHits.Load() != 1 {
		t.Errorf("discovery fetched %d times, want 1", f.idp.discHits.Load())
	}
}

func TestBadTokenBattery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Warm up so that "unknown key" cases are not confused with cold start.
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, f.claims())))

	now := f.clock.Now()
	c := f.claims()
	good := sign(t, f.rs, c)
	parts := strings.Split(good, ".")
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), sig...)
	flipped[10] ^= 1

	var pubDER []byte
	pubDER, err = x509.MarshalPKIXPublicKey(f.rs.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubJWK := mustJSON(t, publicJWK(t, f.rs, nil))
	otherRSA := &signingKey{kid: f.rs.kid, alg: "RS256", priv: rsaKey(t, "attacker", 2048)}
	ecAsRSA := &signingKey{kid: f.rs.kid, alg: "ES256", priv: f.ec.priv}

	cases := []struct {
		name, token, reason string
	}{
		{"alg none, empty signature", rawToken(t, map[string]any{"alg": "none"}, c, nil), ReasonUnsupportedAlg},
		{"alg none, with signature", rawToken(t, map[string]any{"alg": "none", "kid": f.rs.kid}, c, []byte("sig")), ReasonUnsupportedAlg},
		{"alg None", rawToken(t, map[string]any{"alg": "None"}, c, nil), ReasonUnsupportedAlg},
		{"alg NONE", rawToken(t, map[string]any{"alg": "NONE"}, c, nil), ReasonUnsupportedAlg},
		{"alg rs256 lowercase", rawToken(t, map[string]any{"alg": "rs256", "kid": f.rs.kid}, c, []byte("x")), ReasonUnsupportedAlg},
		{"HS256 keyed with RSA public key PEM", hmacToken(t, f.rs.kid, c, pubPEM), ReasonUnsupportedAlg},
		{"HS256 keyed with RSA public key DER", hmacToken(t, f.rs.kid, c, pubDER), ReasonUnsupportedAlg},
		{"HS256 keyed with RSA public JWK", hmacToken(t, f.rs.kid, c, pubJWK), ReasonUnsupportedAlg},
		{"alg not a string", rawToken(t, map[string]any{"alg": 256, "kid": f.rs.kid}, c, []byte("x")), ReasonMalformed},
		{"no alg", rawToken(t, map[string]any{"kid": f.rs.kid}, c, []byte("x")), ReasonMalformed},
		{"kid not a string", rawToken(t, map[string]any{"alg": "RS256", "kid": 7}, c, []byte("x")), ReasonMalformed},
		{"crit header", rawToken(t, map[string]any{"alg": "RS256", "kid": f.rs.kid, "crit": []string{"exp"}, "exp": 1}, c, []byte("x")), ReasonMalformed},
		{"b64 false", rawToken(t, map[string]any{"alg": "RS256", "kid": f.rs.kid, "b64": false}, c, []byte("x")), ReasonMalformed},
		{"unknown kid", sign(t, &signingKey{kid: "nope", alg: "RS256", priv: f.rs.priv}, c), ReasonUnknownKey},
		{"kid with ../", sign(t, &signingKey{kid: "../../../etc/passwd", alg: "RS256", priv: f.rs.priv}, c), ReasonUnknownKey},
		{"kid with /", sign(t, &signingKey{kid: "/keys/jwks.json", alg: "RS256", priv: f.rs.priv}, c), ReasonUnknownKey},
		{"kid is a URL", sign(t, &signingKey{kid: "http://127.0.0.1:1/jwks", alg: "RS256", priv: f.rs.priv}, c), ReasonUnknownKey},
		{"signed by another key with the same kid", sign(t, otherRSA, c), ReasonBadSignature},
		{"ES256 claiming the RSA kid", sign(t, ecAsRSA, c), ReasonUnknownKey},
		{"payload swapped", parts[0] + "." + b64url(mustJSON(t, with(c, "sub", "admin"))) + "." + parts[2], ReasonBadSignature},
		{"signature truncated", parts[0] + "." + parts[1] + "." + b64url(sig[:len(sig)-3]), ReasonBadSignature},
		{"signature bit flipped", parts[0] + "." + parts[1] + "." + b64url(flipped), ReasonBadSignature},
		{"empty signature RS256", parts[0] + "." + parts[1] + ".", ReasonBadSignature},
		{"expired", sign(t, f.rs, with(c, "exp", now.Add(-61*time.Second).Unix())), ReasonExpired},
		{"exp exactly now minus skew", sign(t, f.rs, with(c, "exp", now.Add(-60*time.Second).Unix())), ReasonExpired},
		{"no exp", sign(t, f.rs, with(c, "exp", nil)), ReasonMissingExpiry},
		{"exp is a string", sign(t, f.rs, with(c, "exp", "tomorrow")), ReasonMalformed},
		{"exp negative", sign(t, f.rs, with(c, "exp", -5)), ReasonMalformed},
		{"exp huge", sign(t, f.rs, with(c, "exp", 1e300)), ReasonMalformed},
		{"nbf in the future", sign(t, f.rs, with(c, "nbf", now.Add(2*time.Minute).Unix())), ReasonNotYetValid},
		{"nbf not a number", sign(t, f.rs, with(c, "nbf", true)), ReasonMalformed},
		{"iat in the future", sign(t, f.rs, with(c, "iat", now.Add(2*time.Minute).Unix())), ReasonIssuedInFuture},
		{"wrong iss", sign(t, f.rs, with(c, "iss", "https://evil.example.com/realms/corp")), ReasonUntrustedIssuer},
		{"iss with extra slash", sign(t, f.rs, with(c, "iss", f.idp.issuer+"/")), ReasonUntrustedIssuer},
		{"iss missing", sign(t, f.rs, with(c, "iss", nil)), ReasonUntrustedIssuer},
		{"iss not a string", sign(t, f.rs, with(c, "iss", []string{f.idp.issuer})), ReasonUntrustedIssuer},
		{"wrong aud", sign(t, f.rs, with(c, "aud", "https://other.example.com/mcp")), ReasonWrongAudience},
		{"aud prefix of ours", sign(t, f.rs, with(c, "aud", "https://gw.example.com")), ReasonWrongAudience},
		{"aud array without ours", sign(t, f.rs, with(c, "aud", []string{"a", "b"})), ReasonWrongAudience},
		{"aud missing", sign(t, f.rs, with(c, "aud", nil)), ReasonWrongAudience},
		{"aud number", sign(t, f.rs, with(c, "aud", 5)), ReasonWrongAudience},
		{"no sub, no client", sign(t, f.rs, with(c, "sub", nil, "client_id", nil)), ReasonMissingSubject},
		{"sub not a string", sign(t, f.rs, with(c, "sub", 42)), ReasonMalformed},
		{"1 segment", parts[0], ReasonMalformed},
		{"2 segments", parts[0] + "." + parts[1], ReasonMalformed},
		{"4 segments", good + "." + parts[2], ReasonMalformed},
		{"5 segments (JWE)", good + ".a.b", ReasonMalformed},
		{"empty header", "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"empty payload", parts[0] + ".." + parts[2], ReasonMalformed},
		{"dots only", "..", ReasonMalformed},
		{"bad base64 header", "*" + good, ReasonMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], ReasonMalformed},
		{"std base64 alphabet", parts[0] + "." + parts[1] + "+/." + parts[2], ReasonMalformed},
		{"non-canonical base64", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "B", ReasonMalformed},
		{"whitespace inside", parts[0] + ".\n" + parts[1] + "." + parts[2], ReasonMalformed},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".!!", ReasonMalformed},
		{"header not JSON", b64url([]byte("{alg:RS256")) + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header JSON array", b64url([]byte(`["RS256"]`)) + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"header null", b64url([]byte(`null`)) + "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"payload not JSON", parts[0] + "." + b64url([]byte("hello")) + "." + parts[2], ReasonMalformed},
		{"payload JSON string", parts[0] + "." + b64url([]byte(`"x"`)) + "." + parts[2], ReasonMalformed},
		{"payload trailing garbage", parts[0] + "." + b64url(append(mustJSON(t, c), '}')) + "." + parts[2], ReasonMalformed},
		{"64 KiB token", strings.Repeat("a", 64<<10), ReasonTooLarge},
		{"16 KiB + 1 token", good + "." + strings.Repeat("a", 16<<10), ReasonTooLarge},
		{"64 KiB well-formed JWT", sign(t, f.rs, with(c, "pad", strings.Repeat("x", 64<<10))), ReasonTooLarge},
	}
	before := f.idp.requestedPaths()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.v.Validate(ctx, tc.token)
			if p != nil {
				t.Fatalf("accepted: %+v", p)
			}
			wantReason(t, err, tc.reason)
			if len(tc.token) > 40 && strings.Contains(err.Error(), tc.token[len(tc.token)-40:]) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
	// kid values never became URLs or paths: only the JWKS path was requested (the
	// unknown-kid cases trigger at most one rate-limited refetch).
	for _, p := range f.idp.requestedPaths()[len(before):] {
		if p != f.idp.jwksPath {
			t.Errorf("unexpected request to %q", p)
		}
	}
	// Tolerances: inside the skew is accepted.
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(c, "exp", now.Add(-59*time.Second).Unix()))))
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(c, "nbf", now.Add(59*time.Second).Unix()))))
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(c, "iat", now.Add(59*time.Second).Unix()))))
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(c, "aud", []string{"x", testAud}))))
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(c, "exp", float64(now.Add(time.Hour).Unix())+0.5))))
	// A principal without sub but with a client (client-credentials style).
	p := wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(c, "sub", nil))))
	if p.Subject != "" || p.ClientID != "cursor" {
		t.Errorf("principal = %+v", p)
	}
}

func TestNoToken(t *testing.T) {
	f := newFixture(t)
	if _, err := f.v.Validate(context.Background(), ""); !errors.Is(err, ErrNoToken) {
		t.Fatalf("err = %v", err)
	}
}

func TestIssuerAlgorithmSubset(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Issuers[0].Algorithms = []string{"ES256"} })
	ctx := context.Background()
	wantOK(t)(f.v.Validate(ctx, sign(t, f.ec, f.claims())))
	_, err := f.v.Validate(ctx, sign(t, f.rs, f.claims()))
	wantReason(t, err, ReasonUnsupportedAlg)
	_, err = f.v.Validate(ctx, sign(t, f.ed, f.claims()))
	wantReason(t, err, ReasonUnsupportedAlg)
}

func TestKeyConstraintsFromJWKS(t *testing.T) {
	clock := newClock()
	weak := &signingKey{kid: "weak", alg: "RS256", priv: rsaKey(t, "weak", 1024)}
	strong := newRSA(t, "strong", "RS256")
	pinned := newRSA(t, "pinned-ps", "PS256")
	enc := newRSA(t, "enc", "RS256")
	ec := newEC(t, "ec-2")
	p := newIdP(t, idpOpts{},
		publicJWK(t, weak, nil),
		publicJWK(t, strong, nil),
		publicJWK(t, pinned, map[string]string{"alg": "PS256"}),
		publicJWK(t, enc, map[string]string{"use": "enc"}),
		publicJWK(t, ec, map[string]string{"alg": "ES256"}),
	)
	v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
	ctx := context.Background()
	c := claimsFor(p.issuer, clock.Now())

	wantOK(t)(v.Validate(ctx, sign(t, strong, c)))
	wantOK(t)(v.Validate(ctx, sign(t, pinned, c)))
	wantOK(t)(v.Validate(ctx, sign(t, ec, c)))

	_, err := v.Validate(ctx, sign(t, weak, c))
	wantReason(t, err, ReasonUnknownKey)
	if !strings.Contains(err.Error(), "2048") {
		t.Errorf("log detail should say why: %v", err)
	}
	// A key pinned to PS256 does not verify RS256.
	_, err = v.Validate(ctx, sign(t, &signingKey{kid: pinned.kid, alg: "RS256", priv: pinned.priv}, c))
	wantReason(t, err, ReasonUnknownKey)
	// An encryption key is not a verification key.
	_, err = v.Validate(ctx, sign(t, enc, c))
	wantReason(t, err, ReasonUnknownKey)
}

func TestOnlyWeakKey(t *testing.T) {
	clock := newClock()
	weak := &signingKey{kid: "weak", alg: "RS256", priv: rsaKey(t, "weak", 1024)}
	p := newIdP(t, idpOpts{}, publicJWK(t, weak, nil))
	v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
	c := claimsFor(p.issuer, clock.Now())
	_, err := v.Validate(context.Background(), sign(t, weak, c))
	wantReason(t, err, ReasonUnknownKey)
	// Without kid either.
	_, err = v.Validate(context.Background(), sign(t, &signingKey{alg: "RS256", priv: weak.priv}, c))
	wantReason(t, err, ReasonUnknownKey)
}

func TestSymmetricKeyInJWKSIgnored(t *testing.T) {
	clock := newClock()
	rs := newRSA(t, "rsa-sym", "RS256")
	secret := []byte("0123456789abcdef0123456789abcdef")
	oct, err := jwk.FromRaw(secret)
	if err != nil {
		t.Fatal(err)
	}
	_ = oct.Set(jwk.KeyIDKey, "shared")
	p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil), oct)
	v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
	c := claimsFor(p.issuer, clock.Now())
	wantOK(t)(v.Validate(context.Background(), sign(t, rs, c)))
	_, err = v.Validate(context.Background(), hmacToken(t, "shared", c, secret))
	wantReason(t, err, ReasonUnsupportedAlg)
}

func TestTokenWithoutKid(t *testing.T) {
	clock := newClock()
	rs := newRSA(t, "nokid-a", "RS256")
	rs2 := newRSA(t, "nokid-b", "RS256")
	ec := newEC(t, "")
	p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil), publicJWK(t, ec, nil))
	v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
	c := claimsFor(p.issuer, clock.Now())
	// Exactly one key fits each alg: accepted.
	wantOK(t)(v.Validate(context.Background(), sign(t, &signingKey{alg: "RS256", priv: rs.priv}, c)))
	wantOK(t)(v.Validate(context.Background(), sign(t, ec, c)))
	// Two RSA keys: a kid-less RS256 token is ambiguous and rejected (no trial verification).
	p.setKeys(publicJWK(t, rs, nil), publicJWK(t, rs2, nil))
	clock.Advance(11 * time.Second)
	_, _ = v.Validate(context.Background(), sign(t, &signingKey{kid: "force-refetch", alg: "RS256", priv: rs.priv}, c))
	_, err := v.Validate(context.Background(), sign(t, &signingKey{alg: "RS256", priv: rs2.priv}, claimsFor(p.issuer, clock.Now())))
	wantReason(t, err, ReasonUnknownKey)
}

func TestColdStartJWKSDown(t *testing.T) {
	for _, mode := range []string{"discovery", "jwks_url"} {
		t.Run(mode, func(t *testing.T) {
			clock := newClock()
			rs := newRSA(t, "cold", "RS256")
			p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil))
			p.down.Store(true)
			ic := IssuerConfig{Issuer: p.issuer, Audiences: []string{testAud}}
			if mode == "jwks_url" {
				ic.JWKSURL = p.srv.URL + p.jwksPath
			}
			var reported sync.Map
			v, _ := startValidator(t, Config{
				Issuers: []IssuerConfig{ic}, Now: clock.Now,
				OnFetchError: func(u string, err error) { reported.Store(u, err) },
			})
			ctx := context.Background()
			tok := sign(t, rs, claimsFor(p.issuer, clock.Now()))

			_, err := v.Validate(ctx, tok)
			if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrKeysUnavailable", err)
			}
			var kue *KeysUnavailableError
			if !errors.As(err, &kue) || kue.Issuer != p.issuer {
				t.Fatalf("err = %#v", err)
			}
			n := p.jwksHits.Load() + p.discHits.Load()
			if n == 0 {
				t.Fatal("nothing was fetched")
			}
			found := false
			reported.Range(func(any, any) bool { found = true; return false })
			if !found {
				t.Error("OnFetchError was not called")
			}

			// Endpoint recovers, but the retry is rate-limited: no fetch within 10 s.
			p.down.Store(false)
			for range 5 {
				if _, err := v.Validate(ctx, tok); !errors.Is(err, ErrKeysUnavailable) {
					t.Fatalf("err = %v, want ErrKeysUnavailable while rate-limited", err)
				}
			}
			if m := p.jwksHits.Load() + p.discHits.Load(); m != n {
				t.Fatalf("fetched %d more times within the rate-limit window", m-n)
			}
			clock.Advance(10 * time.Second)
			wantOK(t)(v.Validate(ctx, tok))
		})
	}
}

func TestColdStartConnectionRefused(t *testing.T) {
	clock := newClock()
	p := newIdP(t, idpOpts{})
	p.srv.Close()
	v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
	rs := newRSA(t, "refused", "RS256")
	_, err := v.Validate(context.Background(), sign(t, rs, claimsFor(p.issuer, clock.Now())))
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestOutageAfterFetchKeepsKeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, f.claims())))
	f.idp.down.Store(true)

	for i := range 3 {
		f.clock.Advance(11 * time.Second)
		// Unknown kid forces a refetch, which fails: still a plain invalid token.
		_, err := f.v.Validate(ctx, sign(t, &signingKey{kid: "new", alg: "RS256", priv: f.rs.priv}, f.claims()))
		wantReason(t, err, ReasonUnknownKey)
		// Fresh tokens (not in the token cache) with known keys keep validating.
		c := with(f.claims(), "jti", i)
		wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, c)))
		wantOK(t)(f.v.Validate(ctx, sign(t, f.ed, c)))
	}
	// Also when the endpoint answers garbage or an oversized body.
	f.idp.down.Store(false)
	f.idp.setJWKS([]byte("<html>oops</html>"))
	f.clock.Advance(11 * time.Second)
	_, _ = f.v.Validate(ctx, sign(t, &signingKey{kid: "new2", alg: "RS256", priv: f.rs.priv}, f.claims()))
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(f.claims(), "jti", "after-garbage"))))
	if f.v.fetch.count.Load() < 5 {
		t.Errorf("only %d fetches: the outage was not exercised", f.v.fetch.count.Load())
	}
}

func TestKeyRotationRateLimited(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, f.claims())))
	base := f.idp.jwksHits.Load()

	next := newRSA(t, "rsa-2", "RS256")
	tok := sign(t, next, f.claims())

	// Not published yet: one refetch, then rejection.
	f.clock.Advance(11 * time.Second)
	_, err := f.v.Validate(ctx, tok)
	wantReason(t, err, ReasonUnknownKey)
	if got := f.idp.jwksHits.Load() - base; got != 1 {
		t.Fatalf("refetches = %d, want 1", got)
	}

	// Published now, but we are inside the 10 s window: no fetch, still unknown.
	f.idp.setKeys(publicJWK(t, f.rs, nil), publicJWK(t, next, nil))
	for range 20 {
		_, err = f.v.Validate(ctx, tok)
		wantReason(t, err, ReasonUnknownKey)
	}
	f.clock.Advance(9 * time.Second)
	_, err = f.v.Validate(ctx, tok)
	wantReason(t, err, ReasonUnknownKey)
	if got := f.idp.jwksHits.Load() - base; got != 1 {
		t.Fatalf("refetches = %d within the window, want 1", got)
	}

	// Window over: the refetch picks the new key up.
	f.clock.Advance(time.Second)
	wantOK(t)(f.v.Validate(ctx, tok))
	if got := f.idp.jwksHits.Load() - base; got != 2 {
		t.Fatalf("refetches = %d, want 2", got)
	}
	// The old key is still there.
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(f.claims(), "jti", "old"))))
}

func TestConcurrentUnknownKidSingleFetch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, f.claims())))
	base := f.idp.jwksHits.Load()
	// A rotated key, published but not yet fetched, and a slow JWKS endpoint: concurrent
	// callers must share the one refetch and all see its result.
	next := newRSA(t, "rsa-concurrent", "RS256")
	f.idp.setKeys(publicJWK(t, f.rs, nil), publicJWK(t, next, nil))
	f.idp.delay.Store(int64(200 * time.Millisecond))
	f.clock.Advance(11 * time.Second)
	toks := make([]string, 50)
	for i := range toks {
		toks[i] = sign(t, next, with(f.claims(), "jti", i))
	}
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.v.Validate(ctx, tok); err != nil {
				t.Errorf("err = %v", err)
			}
		}()
	}
	wg.Wait()
	if got := f.idp.jwksHits.Load() - base; got != 1 {
		t.Fatalf("50 concurrent new-kid tokens caused %d fetches, want 1", got)
	}
}

func TestMultipleIssuers(t *testing.T) {
	clock := newClock()
	kc := newRSA(t, "kc", "RS256")
	cg := newRSA(t, "cg", "RS256")
	ok := newEC(t, "okta")
	// Keycloak-like: OIDC discovery under the realm path.
	pKC := newIdP(t, idpOpts{issuerPath: "/realms/corp"}, publicJWK(t, kc, nil))
	// RFC 8414 only, path-inserted.
	pCG := newIdP(t, idpOpts{issuerPath: "/tenant1", discovery: "rfc8414"}, publicJWK(t, cg, nil))
	// No discovery at all: explicit jwks_url.
	pOK := newIdP(t, idpOpts{discovery: "none"}, publicJWK(t, ok, nil))
	const audKC, audCG = "https://gw.example.com/kc", "https://gw.example.com/cg"
	v, _ := startValidator(t, Config{
		Audiences: []string{testAud},
		Issuers: []IssuerConfig{
			{Issuer: pKC.issuer, Audiences: []string{audKC}, GroupsClaim: "realm_access.roles"},
			{Issuer: pCG.issuer, Audiences: []string{audCG}, GroupsClaim: "cognito:groups"},
			{Issuer: pOK.issuer, JWKSURL: pOK.srv.URL + pOK.jwksPath},
		},
		Now: clock.Now,
	})
	ctx := context.Background()
	now := clock.Now()

	p := wantOK(t)(v.Validate(ctx, sign(t, kc, with(claimsFor(pKC.issuer, now), "aud", audKC,
		"realm_access", map[string]any{"roles": []string{"kc-admin"}}))))
	if p.Issuer != pKC.issuer || !slices.Equal(p.Groups, []string{"kc-admin"}) {
		t.Errorf("keycloak principal = %+v", p)
	}
	p = wantOK(t)(v.Validate(ctx, sign(t, cg, with(claimsFor(pCG.issuer, now), "aud", audCG,
		"cognito:groups", []string{"cg-dev"}))))
	if p.Issuer != pCG.issuer || !slices.Equal(p.Groups, []string{"cg-dev"}) {
		t.Errorf("cognito principal = %+v", p)
	}
	p = wantOK(t)(v.Validate(ctx, sign(t, ok, claimsFor(pOK.issuer, now))))
	if p.Issuer != pOK.issuer {
		t.Errorf("okta principal = %+v", p)
	}
	if pOK.discHits.Load() != 0 {
		t.Error("discovery was used although jwks_url is set")
	}
	if !slices.Contains(pCG.requestedPaths(), "/.well-known/oauth-authorization-server/tenant1") {
		t.Errorf("RFC 8414 path insertion not used: %q", pCG.requestedPaths())
	}

	// Audiences are per issuer.
	_, err := v.Validate(ctx, sign(t, kc, with(claimsFor(pKC.issuer, now), "aud", audCG)))
	wantReason(t, err, ReasonWrongAudience)
	_, err = v.Validate(ctx, sign(t, kc, claimsFor(pKC.issuer, now))) // testAud is only the default
	wantReason(t, err, ReasonWrongAudience)
	// Keys are per issuer: Keycloak's key cannot sign for Cognito's issuer.
	_, err = v.Validate(ctx, sign(t, &signingKey{kid: cg.kid, alg: "RS256", priv: kc.priv}, with(claimsFor(pCG.issuer, now), "aud", audCG)))
	wantReason(t, err, ReasonBadSignature)
	_, err = v.Validate(ctx, sign(t, kc, with(claimsFor(pCG.issuer, now), "aud", audCG)))
	wantReason(t, err, ReasonUnknownKey)
}

func TestSharedJWKSURL(t *testing.T) {
	clock := newClock()
	rs := newRSA(t, "shared", "RS256")
	p := newIdP(t, idpOpts{discovery: "none"}, publicJWK(t, rs, nil))
	u := p.srv.URL + p.jwksPath
	v, _ := startValidator(t, Config{
		Audiences: []string{testAud},
		Issuers: []IssuerConfig{
			{Issuer: "https://login.example.com/tid/v2.0", JWKSURL: u},
			{Issuer: "https://sts.example.com/tid/", JWKSURL: u},
		},
		Now: clock.Now,
	})
	ctx := context.Background()
	wantOK(t)(v.Validate(ctx, sign(t, rs, claimsFor("https://login.example.com/tid/v2.0", clock.Now()))))
	wantOK(t)(v.Validate(ctx, sign(t, rs, claimsFor("https://sts.example.com/tid/", clock.Now()))))
	v.mu.Lock()
	n := len(v.sources)
	v.mu.Unlock()
	if n != 1 {
		t.Errorf("sources = %d, want 1 shared", n)
	}
	if n := p.jwksHits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
}

func TestGroupsClaimShapes(t *testing.T) {
	clock := newClock()
	rs := newRSA(t, "groups", "RS256")
	p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil))
	ctx := context.Background()
	cases := []struct {
		path  string
		claim map[string]any
		want  []string
	}{
		{"groups", map[string]any{"groups": "solo"}, []string{"solo"}},
		{"groups", map[string]any{"groups": []any{"a", "b"}}, []string{"a", "b"}},
		{"groups", map[string]any{"groups": []any{"a", 7, nil, "", "b", map[string]any{}}}, []string{"a", "b"}},
		{"groups", map[string]any{"groups": nil}, nil},
		{"groups", map[string]any{"groups": 12}, nil},
		{"groups", map[string]any{}, nil},
		{"roles", map[string]any{"roles": []string{"Admin"}, "groups": []string{"x"}}, []string{"Admin"}},
		{"cognito:groups", map[string]any{"cognito:groups": []string{"eu-admins"}}, []string{"eu-admins"}},
		{"realm_access.roles", map[string]any{"realm_access": map[string]any{"roles": []string{"offline_access", "mcp-user"}}}, []string{"offline_access", "mcp-user"}},
		{"realm_access.roles", map[string]any{"realm_access": []string{"roles"}}, nil},
		{"realm_access.roles", map[string]any{"realm_access": map[string]any{}}, nil},
		{"resource_access.gateway.roles", map[string]any{"resource_access": map[string]any{"gateway": map[string]any{"roles": "one"}}}, []string{"one"}},
		{"https://example.com/groups", map[string]any{"https://example.com/groups": []string{"auth0-group"}}, []string{"auth0-group"}},
		// Verbatim dotted key beats descent.
		{"a.b", map[string]any{"a.b": []string{"flat"}, "a": map[string]any{"b": []string{"nested"}}}, []string{"flat"}},
		{"a.b", map[string]any{"a": map[string]any{"b": []string{"nested"}}}, []string{"nested"}},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}, GroupsClaim: tc.path}}, Now: clock.Now})
			c := with(claimsFor(p.issuer, clock.Now()), "groups", nil)
			for k, val := range tc.claim {
				c[k] = val
			}
			pr := wantOK(t)(v.Validate(ctx, sign(t, rs, c)))
			if !slices.Equal(pr.Groups, tc.want) {
				t.Errorf("groups = %q, want %q", pr.Groups, tc.want)
			}
		})
	}
}

func TestScopesAndClientID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		kv     []any
		scopes []string
		client string
	}{
		{"scope string", []any{"scope", "a  b c"}, []string{"a", "b", "c"}, "cursor"},
		{"scp array", []any{"scope", nil, "scp", []string{"User.Read", "mcp"}}, []string{"User.Read", "mcp"}, "cursor"},
		{"scp string (Entra)", []any{"scope", nil, "scp", "User.Read mcp"}, []string{"User.Read", "mcp"}, "cursor"},
		{"scope wins over scp", []any{"scope", "x", "scp", []string{"y"}}, []string{"x"}, "cursor"},
		{"no scopes", []any{"scope", nil}, nil, "cursor"},
		{"azp", []any{"client_id", nil, "azp", "vscode"}, []string{"openid", "mcp:tools"}, "vscode"},
		{"client_id wins over azp", []any{"azp", "vscode"}, []string{"openid", "mcp:tools"}, "cursor"},
		{"appid (Entra v1)", []any{"client_id", nil, "appid", "guid"}, []string{"openid", "mcp:tools"}, "guid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := wantOK(t)(f.v.Validate(ctx, sign(t, f.rs, with(f.claims(), tc.kv...))))
			if !slices.Equal(p.TokenScopes, tc.scopes) {
				t.Errorf("scopes = %q, want %q", p.TokenScopes, tc.scopes)
			}
			if p.ClientID != tc.client {
				t.Errorf("client = %q, want %q", p.ClientID, tc.client)
			}
		})
	}
}

func TestCacheHitSkipsVerification(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := sign(t, f.rs, f.claims())
	p1 := wantOK(t)(f.v.Validate(ctx, tok))
	verifies, fetches := f.v.verifies.Load(), f.v.fetch.count.Load()
	for range 100 {
		p2 := wantOK(t)(f.v.Validate(ctx, tok))
		if p2 != p1 {
			t.Fatal("cache hit returned a different principal")
		}
	}
	if got := f.v.verifies.Load(); got != verifies {
		t.Fatalf("cache hits verified %d signatures", got-verifies)
	}
	if got := f.v.fetch.count.Load(); got != fetches {
		t.Fatalf("cache hits fetched %d times", got-fetches)
	}
	// A different token (one bit of the signature flipped) is not a hit.
	parts := strings.Split(tok, ".")
	sig, _ := b64.DecodeString(parts[2])
	sig[0] ^= 0x80
	bad := parts[0] + "." + parts[1] + "." + b64url(sig)
	if _, err := f.v.Validate(ctx, bad); Reason(err) != ReasonBadSignature {
		t.Fatalf("tampered token: %v", err)
	}
	if f.v.verifies.Load() == verifies {
		t.Fatal("tampered token was not verified")
	}
}

func TestCacheEntryExpiresWithToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := with(f.claims(), "exp", f.clock.Now().Add(2*time.Minute).Unix())
	tok := sign(t, f.rs, c)
	wantOK(t)(f.v.Validate(ctx, tok))
	n := f.v.verifies.Load()
	f.clock.Advance(time.Minute)
	wantOK(t)(f.v.Validate(ctx, tok))
	if f.v.verifies.Load() != n {
		t.Fatal("not served from the cache before exp")
	}
	// Past exp but inside the skew: the cache no longer serves it; verification does,
	// and does not re-cache it.
	f.clock.Advance(61 * time.Second)
	wantOK(t)(f.v.Validate(ctx, tok))
	if f.v.verifies.Load() != n+1 {
		t.Fatal("expired cache entry was served")
	}
	wantOK(t)(f.v.Validate(ctx, tok))
	if f.v.verifies.Load() != n+2 {
		t.Fatal("token past exp was cached")
	}
	f.clock.Advance(time.Minute)
	_, err := f.v.Validate(ctx, tok)
	wantReason(t, err, ReasonExpired)
}

func TestCacheInvalidatedWhenKeyRemoved(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := sign(t, f.rs, f.claims())
	wantOK(t)(f.v.Validate(ctx, tok))
	// Unchanged JWKS refetched: cached entries stay valid.
	f.clock.Advance(11 * time.Second)
	_, _ = f.v.Validate(ctx, sign(t, &signingKey{kid: "x1", alg: "RS256", priv: f.rs.priv}, f.claims()))
	n := f.v.verifies.Load()
	wantOK(t)(f.v.Validate(ctx, tok))
	if f.v.verifies.Load() != n {
		t.Fatal("identical JWKS invalidated the cache")
	}
	// The IdP drops the RSA key (compromise): the next refresh revokes cached tokens too.
	f.idp.setKeys(publicJWK(t, f.ec, nil))
	f.clock.Advance(11 * time.Second)
	_, _ = f.v.Validate(ctx, sign(t, &signingKey{kid: "x2", alg: "RS256", priv: f.rs.priv}, f.claims()))
	_, err := f.v.Validate(ctx, tok)
	wantReason(t, err, ReasonUnknownKey)
}

func TestCacheBounded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.CacheSize = 8 })
	ctx := context.Background()
	var toks []string
	for i := range 40 {
		tok := sign(t, f.ed, with(f.claims(), "jti", i))
		toks = append(toks, tok)
		wantOK(t)(f.v.Validate(ctx, tok))
		if n := f.v.cache.len(); n > 8 {
			t.Fatalf("cache holds %d entries, bound 8", n)
		}
	}
	// The most recent token is still cached.
	n := f.v.verifies.Load()
	wantOK(t)(f.v.Validate(ctx, toks[len(toks)-1]))
	if f.v.verifies.Load() != n {
		t.Fatal("most recent token was evicted")
	}
	// The oldest was evicted.
	wantOK(t)(f.v.Validate(ctx, toks[0]))
	if f.v.verifies.Load() != n+1 {
		t.Fatal("oldest token still cached")
	}
}

func TestCacheDisabled(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.CacheSize = -1 })
	tok := sign(t, f.rs, f.claims())
	wantOK(t)(f.v.Validate(context.Background(), tok))
	wantOK(t)(f.v.Validate(context.Background(), tok))
	if f.v.verifies.Load() != 2 {
		t.Fatalf("verifies = %d with the cache disabled", f.v.verifies.Load())
	}
}

func TestFetchBounds(t *testing.T) {
	t.Run("oversized JWKS", func(t *testing.T) {
		clock := newClock()
		rs := newRSA(t, "big", "RS256")
		p := newIdP(t, idpOpts{})
		set := map[string]any{"keys": []any{publicJWK(t, rs, nil)}, "padding": strings.Repeat("x", 1<<20)}
		p.setJWKS(mustJSON(t, set))
		v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
		_, err := v.Validate(context.Background(), sign(t, rs, claimsFor(p.issuer, clock.Now())))
		if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, errTooLarge) {
			t.Fatalf("err = %v", err)
		}
		// The same JWKS under the cap is fine.
		set["padding"] = "x"
		p.setJWKS(mustJSON(t, set))
		clock.Advance(10 * time.Second)
		wantOK(t)(v.Validate(context.Background(), sign(t, rs, claimsFor(p.issuer, clock.Now()))))
	})
	t.Run("hanging JWKS", func(t *testing.T) {
		clock := newClock()
		rs := newRSA(t, "hang", "RS256")
		p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil))
		p.hang.Store(true)
		v, _ := startValidator(t, Config{
			Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}},
			Now:     clock.Now, FetchTimeout: 200 * time.Millisecond,
		})
		start := time.Now()
		_, err := v.Validate(context.Background(), sign(t, rs, claimsFor(p.issuer, clock.Now())))
		if !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v with a 200ms fetch timeout", d)
		}
	})
	t.Run("request context bounds the wait", func(t *testing.T) {
		clock := newClock()
		rs := newRSA(t, "hang2", "RS256")
		p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil))
		p.hang.Store(true)
		v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := v.Validate(ctx, sign(t, rs, claimsFor(p.issuer, clock.Now())))
		if !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v with a 100ms request deadline", d)
		}
	})
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	clock := newClock()
	rs := newRSA(t, "mismatch", "RS256")
	p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil))
	p.mu.Lock()
	p.discDoc["issuer"] = "https://evil.example.com"
	p.mu.Unlock()
	v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
	_, err := v.Validate(context.Background(), sign(t, rs, claimsFor(p.issuer, clock.Now())))
	if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err = %v", err)
	}
	if p.jwksHits.Load() != 0 {
		t.Fatal("JWKS of a mismatching discovery document was fetched")
	}
}

func TestDiscoveryURLs(t *testing.T) {
	cases := map[string][]string{
		"https://a.example.com": {
			"https://a.example.com/.well-known/openid-configuration",
			"https://a.example.com/.well-known/oauth-authorization-server",
		},
		"https://a.example.com/": {
			"https://a.example.com/.well-known/openid-configuration",
			"https://a.example.com/.well-known/oauth-authorization-server",
		},
		"https://a.example.com/t1": {
			"https://a.example.com/t1/.well-known/openid-configuration",
			"https://a.example.com/.well-known/oauth-authorization-server/t1",
			"https://a.example.com/.well-known/openid-configuration/t1",
		},
		"https://a.example.com:8443/realms/corp/": {
			"https://a.example.com:8443/realms/corp/.well-known/openid-configuration",
			"https://a.example.com:8443/.well-known/oauth-authorization-server/realms/corp",
			"https://a.example.com:8443/.well-known/openid-configuration/realms/corp",
		},
	}
	for issuer, want := range cases {
		got, err := discoveryURLs(issuer)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("discoveryURLs(%q) = %q, %v; want %q", issuer, got, err, want)
		}
	}
}

func TestHTTPSIssuerRequiresHTTPSJWKS(t *testing.T) {
	// An https issuer whose metadata points at http keys is refused. The "IdP" is an
	// http test server impersonating an https issuer via a rewriting client transport.
	clock := newClock()
	rs := newRSA(t, "https", "RS256")
	p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil))
	const iss = "https://idp.example.com"
	p.mu.Lock()
	p.discDoc["issuer"] = iss
	p.mu.Unlock()
	client := p.srv.Client()
	client.Transport = rewriteTransport{to: p.srv.URL}
	v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: iss, Audiences: []string{testAud}}}, Now: clock.Now, HTTPClient: client})
	_, err := v.Validate(context.Background(), sign(t, rs, claimsFor(iss, clock.Now())))
	if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "not https") {
		t.Fatalf("err = %v", err)
	}
}

func TestBackgroundRefreshBoundToContext(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 1 s background refresh")
	}
	clock := newClock()
	rs := newRSA(t, "bg-1", "RS256")
	p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil))
	v, cancel := startValidator(t, Config{
		Issuers:         []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}},
		Now:             clock.Now,
		RefreshInterval: time.Second,
	})
	ctx := context.Background()
	wantOK(t)(v.Validate(ctx, sign(t, rs, claimsFor(p.issuer, clock.Now()))))

	// Rotate at the IdP. The fake clock never moves, so on-demand refetch stays
	// rate-limited: only the background refresh can bring the new key in.
	next := newRSA(t, "bg-2", "RS256")
	p.setKeys(publicJWK(t, rs, nil), publicJWK(t, next, nil))
	before := p.jwksHits.Load()
	waitFor(t, "background refresh", 10*time.Second, func() bool {
		return v.sourceForTest(p.srv.URL + p.jwksPath).index.Load().byKid["bg-2"] != nil
	})
	if p.jwksHits.Load() == before {
		t.Fatal("no fetch observed")
	}
	wantOK(t)(v.Validate(ctx, sign(t, next, claimsFor(p.issuer, clock.Now()))))

	// On-demand refetches must not multiply the periodic refresh (each jwk.Cache.Refresh
	// in httprc v1 schedules one more perpetual refresh chain): after 5 of them, the
	// background still fetches about once per second, not 6 times.
	for i := range 5 {
		clock.Advance(11 * time.Second)
		_, err := v.Validate(ctx, sign(t, &signingKey{kid: fmt.Sprintf("ghost-%d", i), alg: "RS256", priv: rs.priv}, claimsFor(p.issuer, clock.Now())))
		wantReason(t, err, ReasonUnknownKey)
	}
	from := p.jwksHits.Load()
	time.Sleep(3 * time.Second)
	if n := p.jwksHits.Load() - from; n > 5 {
		t.Fatalf("%d background fetches in 3 s with a 1 s refresh interval", n)
	}

	// Cancel the Validator's context: background refresh stops.
	cancel()
	time.Sleep(200 * time.Millisecond)
	stopped := p.jwksHits.Load()
	time.Sleep(3 * time.Second)
	if got := p.jwksHits.Load(); got != stopped {
		t.Fatalf("%d fetches after the context ended", got-stopped)
	}
	// Cached keys still validate; nothing new is fetched, nothing hangs.
	wantOK(t)(v.Validate(ctx, sign(t, next, with(claimsFor(p.issuer, clock.Now()), "jti", "after"))))
	clock.Advance(time.Minute)
	_, err := v.Validate(ctx, sign(t, &signingKey{kid: "bg-3", alg: "RS256", priv: rs.priv}, claimsFor(p.issuer, clock.Now())))
	wantReason(t, err, ReasonUnknownKey)
}

func TestConcurrentValidate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	toks := []string{
		sign(t, f.rs, f.claims()), sign(t, f.ec, f.claims()), sign(t, f.ed, f.claims()),
		sign(t, f.ps, f.claims()), "garbage", sign(t, f.rs, with(f.claims(), "aud", "x")),
	}
	// toks[:4] are valid (the clock advances 352 s in all, well within their hour);
	// "garbage" and the wrong audience never are.
	valid := func(k int) bool { return k < 4 }
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				k := (g + i) % len(toks)
				tok, wantOK := toks[k], valid(k)
				if i%50 == 0 {
					tok, wantOK = sign(t, f.ed, with(f.claims(), "jti", g*1000+i)), true
				}
				p, err := f.v.Validate(ctx, tok)
				switch {
				case wantOK && (err != nil || p.Subject != "user-123"):
					t.Errorf("goroutine %d, call %d: a valid token gave %+v, %v", g, i, p, err)
					return
				case !wantOK && err == nil:
					t.Errorf("goroutine %d, call %d: an invalid token (toks[%d]) validated as %+v", g, i, k, p)
					return
				}
				if i%100 == 0 {
					f.clock.Advance(11 * time.Second)
					_, _ = f.v.Validate(ctx, sign(t, &signingKey{kid: "k", alg: "EdDSA", priv: f.ed.priv}, f.claims()))
				}
			}
		}()
	}
	wg.Wait()
}

func TestNewValidatorConfigErrors(t *testing.T) {
	ok := IssuerConfig{Issuer: "https://idp.example.com", Audiences: []string{testAud}}
	cases := map[string]Config{
		"no issuers":       {},
		"empty issuer":     {Issuers: []IssuerConfig{{Audiences: []string{testAud}}}},
		"relative issuer":  {Issuers: []IssuerConfig{{Issuer: "idp.example.com", Audiences: []string{testAud}}}},
		"ftp issuer":       {Issuers: []IssuerConfig{{Issuer: "ftp://idp.example.com", Audiences: []string{testAud}}}},
		"issuer w/ query":  {Issuers: []IssuerConfig{{Issuer: "https://idp.example.com?x=1", Audiences: []string{testAud}}}},
		"duplicate issuer": {Issuers: []IssuerConfig{ok, ok}},
		"no audience":      {Issuers: []IssuerConfig{{Issuer: "https://idp.example.com"}}},
		"empty audience":   {Issuers: []IssuerConfig{{Issuer: "https://idp.example.com", Audiences: []string{""}}}},
		"HS256":            {Issuers: []IssuerConfig{{Issuer: ok.Issuer, Audiences: ok.Audiences, Algorithms: []string{"RS256", "HS256"}}}},
		"hs512":            {Issuers: []IssuerConfig{{Issuer: ok.Issuer, Audiences: ok.Audiences, Algorithms: []string{"hs512"}}}},
		"none":             {Issuers: []IssuerConfig{{Issuer: ok.Issuer, Audiences: ok.Audiences, Algorithms: []string{"none"}}}},
		"unknown alg":      {Issuers: []IssuerConfig{{Issuer: ok.Issuer, Audiences: ok.Audiences, Algorithms: []string{"ES256K"}}}},
		"bad jwks_url":     {Issuers: []IssuerConfig{{Issuer: ok.Issuer, Audiences: ok.Audiences, JWKSURL: "file:///etc/passwd"}}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if v, err := NewValidator(ctx, cfg); err == nil || v != nil {
				t.Fatalf("accepted: %v", err)
			}
		})
	}
	// The config slices are copied: later changes by the caller have no effect.
	auds := []string{testAud}
	cfg := Config{Issuers: []IssuerConfig{{Issuer: ok.Issuer, Audiences: auds}}}
	v, _ := startValidator(t, cfg)
	auds[0] = "https://changed.example.com"
	if got := v.issuers[ok.Issuer].audiences[0]; got != testAud {
		t.Fatalf("audience aliased the caller's slice: %q", got)
	}
}

func TestErrorsTyped(t *testing.T) {
	e := &InvalidTokenError{Reason: ReasonExpired}
	if !errors.Is(e, ErrInvalidToken) || errors.Is(e, ErrKeysUnavailable) || errors.Is(e, ErrNoToken) {
		t.Fatal("InvalidTokenError identity")
	}
	k := &KeysUnavailableError{Issuer: "https://x", Err: errors.New("boom")}
	if !errors.Is(k, ErrKeysUnavailable) || errors.Is(k, ErrInvalidToken) {
		t.Fatal("KeysUnavailableError identity")
	}
	if Reason(k) != "" || Reason(e) != ReasonExpired {
		t.Fatal("Reason")
	}
	for _, r := range []string{ReasonTooLarge, ReasonMalformed, ReasonUnsupportedAlg, ReasonUntrustedIssuer,
		ReasonUnknownKey, ReasonBadSignature, ReasonMissingExpiry, ReasonExpired, ReasonNotYetValid,
		ReasonIssuedInFuture, ReasonWrongAudience, ReasonMissingSubject, ReasonMalformedHeader} {
		if strings.ContainsAny(r, "\"\\\r\n") {
			t.Errorf("reason %q cannot go into a quoted-string", r)
		}
	}
	// Reasons survive JSON, for error bodies.
	if _, err := json.Marshal(map[string]string{"error_description": ReasonExpired}); err != nil {
		t.Fatal(err)
	}
}

func TestOnFetchErrorReportsBackgroundFailuresOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 1 s background refresh")
	}
	clock := newClock()
	rs := newRSA(t, "report", "RS256")
	p := newIdP(t, idpOpts{}, publicJWK(t, rs, nil))
	jwksURL := p.srv.URL + p.jwksPath
	var mu sync.Mutex
	reports := map[string]int{}
	v, _ := startValidator(t, Config{
		Issuers:         []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}},
		Now:             clock.Now,
		RefreshInterval: time.Second,
		OnFetchError: func(u string, err error) {
			mu.Lock()
			reports[u]++
			mu.Unlock()
		},
	})
	wantOK(t)(v.Validate(context.Background(), sign(t, rs, claimsFor(p.issuer, clock.Now()))))
	count := func() int { // reports naming the JWKS URL; -1000 for any naming something else
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for u, c := range reports {
			if u != jwksURL {
				return -1000
			}
			n += c
		}
		return n
	}
	for _, phase := range []string{"503", "garbage"} {
		if phase == "503" {
			p.down.Store(true)
		} else {
			p.down.Store(false)
			p.setJWKS([]byte(`{"keys": [`))
		}
		hits0, rep0 := p.jwksHits.Load(), count()
		waitFor(t, "two background fetches", 10*time.Second, func() bool { return p.jwksHits.Load()-hits0 >= 2 })
		time.Sleep(200 * time.Millisecond)
		hits, rep := p.jwksHits.Load()-hits0, count()-rep0
		if int64(rep) != hits {
			t.Errorf("%s: %d failed background fetches, %d reports", phase, hits, rep)
		}
		// Keys stay usable throughout.
		wantOK(t)(v.Validate(context.Background(), sign(t, rs, with(claimsFor(p.issuer, clock.Now()), "jti", phase))))
	}
}

func TestKeyMemorySurvivesReload(t *testing.T) {
	clock := newClock()
	rs := newRSA(t, "reload", "RS256")
	p := newIdP(t, idpOpts{issuerPath: "/realms/corp"}, publicJWK(t, rs, nil))
	mem := NewKeyMemory()
	cfg := Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now, KeyMemory: mem}
	ctx := context.Background()

	v1, cancel1 := startValidator(t, cfg)
	wantOK(t)(v1.Validate(ctx, sign(t, rs, claimsFor(p.issuer, clock.Now()))))
	cancel1() // config reload: the old Validator goes away...

	p.down.Store(true) // ...while the IdP is down.
	v2, _ := startValidator(t, cfg)
	wantOK(t)(v2.Validate(ctx, sign(t, rs, with(claimsFor(p.issuer, clock.Now()), "jti", "v2"))))
	v2.waitIdle(t) // its warm-up refresh fails against the down IdP; keys stay

	// Control: without the memory, the same reload answers ErrKeysUnavailable.
	noMem := cfg
	noMem.KeyMemory = nil
	v3, _ := startValidator(t, noMem)
	if _, err := v3.Validate(ctx, sign(t, rs, claimsFor(p.issuer, clock.Now()))); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("err = %v", err)
	}

	// The seeded Validator still refreshes: a rotation is picked up once the IdP is back.
	next := newRSA(t, "reload-2", "RS256")
	p.setKeys(publicJWK(t, next, nil))
	p.down.Store(false)
	clock.Advance(11 * time.Second)
	wantOK(t)(v2.Validate(ctx, sign(t, next, claimsFor(p.issuer, clock.Now()))))
	// And the memory now holds the rotated set for the next reload.
	p.down.Store(true)
	v4, _ := startValidator(t, cfg)
	v4.waitIdle(t)
	wantOK(t)(v4.Validate(ctx, sign(t, next, with(claimsFor(p.issuer, clock.Now()), "jti", "v4"))))
	_, err := v4.Validate(ctx, sign(t, rs, with(claimsFor(p.issuer, clock.Now()), "jti", "old")))
	wantReason(t, err, ReasonUnknownKey)
}

func TestJWKSWithUnparseableKeys(t *testing.T) {
	// A JWKS may carry keys this library cannot parse (new key types, broken entries);
	// they must not make the whole set unusable.
	clock := newClock()
	rs := newRSA(t, "among-strangers", "RS256")
	p := newIdP(t, idpOpts{})
	good := string(mustJSON(t, publicJWK(t, rs, nil)))
	p.setJWKS([]byte(`{"keys":[{"kty":"AKP","alg":"ML-DSA-44","kid":"pq","pub":"AAAA"},` +
		`{"kty":"RSA","kid":"broken","n":"!!","e":"AQAB"},{"kty":"EC","crv":"P-256","kid":"nocoords"},` + good + `]}`))
	v, _ := startValidator(t, Config{Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}}}, Now: clock.Now})
	wantOK(t)(v.Validate(context.Background(), sign(t, rs, claimsFor(p.issuer, clock.Now()))))
	_, err := v.Validate(context.Background(), sign(t, &signingKey{kid: "pq", alg: "RS256", priv: rs.priv}, claimsFor(p.issuer, clock.Now())))
	wantReason(t, err, ReasonUnknownKey)
}
