package authn

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddymcp/caddymcp/internal/principal"
)

// FuzzValidate feeds arbitrary strings to BearerToken and Validate (as a header value and
// as a bare token) against a live validator with real keys. Invariants: no panic; every
// error is one of the three typed errors; an accepted token names the configured issuer;
// errors never echo the input; and no input makes the validator fetch more than the
// rate limit allows (the clock is frozen, so at most one on-demand refetch ever).
//
//	go test -run '^$' -fuzz FuzzValidate -fuzztime 30s ./internal/authn
func FuzzValidate(f *testing.F) {
	clock := newClock()
	rs := newRSA(f, "fz-rsa", "RS256")
	ec := newEC(f, "fz-ec")
	ed := newEd(f, "fz-ed")
	p := newIdP(f, idpOpts{}, publicJWK(f, rs, nil), publicJWK(f, ec, nil), publicJWK(f, ed, nil))
	v, _ := startValidator(f, Config{
		Issuers: []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}, GroupsClaim: "realm_access.roles"}},
		Now:     clock.Now,
	})
	ctx := context.Background()
	c := claimsFor(p.issuer, clock.Now())
	c["realm_access"] = map[string]any{"roles": []string{"a"}}
	good := []string{sign(f, rs, c), sign(f, ec, c), sign(f, ed, c)}
	if _, err := v.Validate(ctx, good[0]); err != nil {
		f.Fatal(err)
	}
	for _, g := range good {
		f.Add(g)
		f.Add("Bearer " + g)
		f.Add("bearer  " + g[:len(g)/2])
		parts := strings.Split(g, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + ".." + parts[2])
	}
	for _, s := range []string{"", "Bearer", "Bearer ", "a.b.c", "..", "...", "e30.e30.", "e30.e30.e30",
		"eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLyJ9.e30.AAAA", "Basic Zm9vOmJhcg=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check := func(in string, pr *principal.Caller, err error) {
			if err == nil {
				if pr == nil || pr.Issuer != p.issuer || !clock.Now().Before(pr.ExpiresAt.Add(DefaultSkew)) {
					t.Fatalf("accepted %q with principal %+v", in, pr)
				}
				return
			}
			if pr != nil {
				t.Fatalf("principal and error: %+v, %v", pr, err)
			}
			n := 0
			for _, e := range []error{ErrNoToken, ErrInvalidToken, ErrKeysUnavailable} {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("untyped or ambiguous error for %q: %v", in, err)
			}
			if len(in) >= 24 && strings.Contains(err.Error(), in) {
				t.Fatalf("error echoes the input: %v", err)
			}
		}
		if tok, ok := BearerToken(s); ok {
			if tok == "" || !isToken68(tok) {
				t.Fatalf("BearerToken(%q) = %q", s, tok)
			}
			pr, err := v.Validate(ctx, tok)
			check(tok, pr, err)
		}
		pr, err := v.Validate(ctx, s)
		check(s, pr, err)
		if n := v.fetch.count.Load(); n > 3 {
			t.Fatalf("%d fetches: discovery + JWKS + one rate-limited refetch at most", n)
		}
	})
}
