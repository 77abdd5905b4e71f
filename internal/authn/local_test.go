package authn

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The built-in authorization server's tokens are trusted with no issuer configured:
// verified with the keys it holds (a key it rotates to is found at once), its groups
// read, the audience checked like any issuer's. Once withdrawn, its tokens are an
// untrusted issuer's; another issuer name is never taken for it.
func TestLocalIssuer(t *testing.T) {
	const iss = "https://gw.example/oauth"
	first, second := newEC(t, "k1"), newEC(t, "k2")
	var mu sync.Mutex
	keys := []*signingKey{first}
	jwks := func() []byte {
		mu.Lock()
		defer mu.Unlock()
		set := jwk.NewSet()
		for _, k := range keys {
			_ = set.AddKey(publicJWK(t, k, map[string]string{"alg": "ES256"}))
		}
		return mustJSON(t, set)
	}
	var local LocalIssuers
	remove := local.Set(iss, jwks)
	v, _ := startValidator(t, Config{Audiences: []string{testAud}, Local: &local})

	now := time.Now()
	claims := claimsFor(iss, now)
	claims["groups"] = []string{"eng"}
	p, err := v.Validate(context.Background(), sign(t, first, claims))
	if err != nil || p.Subject != "user-123" || !slices.Equal(p.Groups, []string{"eng"}) || p.Issuer != iss {
		t.Fatalf("local token: %+v %v", p, err)
	}

	mu.Lock()
	keys = append(keys, second)
	mu.Unlock()
	if _, err := v.Validate(context.Background(), sign(t, second, claimsFor(iss, now))); err != nil {
		t.Fatalf("token of the rotated-to key: %v", err)
	}

	wrongAud := claimsFor(iss, now)
	wrongAud["aud"] = "https://elsewhere.example/mcp"
	if _, err := v.Validate(context.Background(), sign(t, first, wrongAud)); !isReason(err, ReasonWrongAudience) {
		t.Errorf("wrong audience: %v", err)
	}
	if _, err := v.Validate(context.Background(), sign(t, first, claimsFor("https://gw.example/other", now))); !isReason(err, ReasonUntrustedIssuer) {
		t.Errorf("another issuer signed by the local key: %v", err)
	}
	rsaTok := sign(t, newRSA(t, "k1", "RS256"), claimsFor(iss, now))
	if _, err := v.Validate(context.Background(), rsaTok); err == nil {
		t.Error("an RS256 token under the local issuer's name was accepted")
	}

	remove()
	fresh := claimsFor(iss, now)
	fresh["jti"] = "not-cached"
	if _, err := v.Validate(context.Background(), sign(t, first, fresh)); !isReason(err, ReasonUntrustedIssuer) {
		t.Errorf("after withdrawal: %v", err)
	}
}

func isReason(err error, reason string) bool {
	var ite *InvalidTokenError
	return errors.As(err, &ite) && ite.Reason == reason
}
