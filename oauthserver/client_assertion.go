package oauthserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Client authentication with private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9):
// the client signs a short-lived JWT with its own private key; the server holds only
// the public keys it was configured with.

const (
	authPrivateKeyJWT = "private_key_jwt"
	jwtBearerType     = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxAssertionSize  = 8 << 10
	// maxAssertionLifetime bounds exp−now (and exp−iat): an assertion is for one
	// request, not a long-lived credential.
	maxAssertionLifetime = 5 * time.Minute
	assertionClockSkew   = 30 * time.Second
)

// assertionAlgorithms are the signature algorithms accepted; no HMAC (the server would
// need the client's secret) and never none.
var assertionAlgorithms = []jwa.SignatureAlgorithm{jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512, jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA}

func assertionAlgorithmNames() []string {
	out := make([]string, len(assertionAlgorithms))
	for i, a := range assertionAlgorithms {
		out[i] = a.String()
	}
	return out
}

// parseClientKeys reads a client's public keys: a JWK Set or a single JWK. Private and
// symmetric keys are refused: the config must not hold the client's secret.
func parseClientKeys(raw string) (jwk.Set, error) {
	set, err := jwk.Parse([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("jwks is not a JWK or JWK Set: %v", err)
	}
	if set.Len() == 0 {
		return nil, errors.New("jwks holds no key")
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		switch k.KeyType() {
		case "RSA", "EC", "OKP":
		default:
			return nil, fmt.Errorf("jwks key %d is of type %s: only RSA, EC and OKP public keys", i, k.KeyType())
		}
		if private, err := jwk.IsPrivateKey(k); err == nil && private {
			return nil, fmt.Errorf("jwks key %d is a private key: configure the client's public key only", i)
		}
	}
	return set, nil
}

// verifyClientAssertion checks a client assertion of client c against its keys: the
// signature, iss = sub = client_id, aud naming this server (its token endpoint or
// issuer), a short lifetime, and a jti never seen before.
func (s *Server) verifyClientAssertion(ctx context.Context, c Client, assertion string) error {
	keys := s.clientKeys[c.ID]
	if keys == nil {
		return errors.New("the client has no keys for private_key_jwt")
	}
	if len(assertion) > maxAssertionSize {
		return errors.New("client_assertion too large")
	}
	msg, err := jws.Parse([]byte(assertion))
	if err != nil || len(msg.Signatures()) != 1 {
		return errors.New("client_assertion is not a compact JWS")
	}
	if alg := msg.Signatures()[0].ProtectedHeaders().Algorithm(); !slices.Contains(assertionAlgorithms, alg) {
		return fmt.Errorf("client_assertion algorithm %q is not accepted", alg)
	}
	now := s.now()
	tok, err := jwt.Parse([]byte(assertion),
		jwt.WithKeySet(keys, jws.WithInferAlgorithmFromKey(true), jws.WithRequireKid(false)),
		jwt.WithValidate(true), jwt.WithClock(jwt.ClockFunc(s.now)), jwt.WithAcceptableSkew(assertionClockSkew),
		jwt.WithIssuer(c.ID), jwt.WithSubject(c.ID), jwt.WithRequiredClaim("exp"), jwt.WithRequiredClaim("jti"))
	if err != nil {
		return fmt.Errorf("client_assertion rejected: %v", err)
	}
	if !slices.Contains(tok.Audience(), s.endpointURL("token")) && !slices.Contains(tok.Audience(), s.Issuer) {
		return errors.New("client_assertion aud names neither this token endpoint nor this issuer")
	}
	if tok.Expiration().Sub(now) > maxAssertionLifetime {
		return fmt.Errorf("client_assertion lives longer than %s", maxAssertionLifetime)
	}
	if iat := tok.IssuedAt(); !iat.IsZero() && tok.Expiration().Sub(iat) > maxAssertionLifetime {
		return fmt.Errorf("client_assertion lives longer than %s", maxAssertionLifetime)
	}
	sum := sha256.Sum256([]byte(c.ID + "\x00" + tok.JwtID()))
	if err := s.store.UseAssertion(ctx, hex.EncodeToString(sum[:]), tok.Expiration().Add(assertionClockSkew)); errors.Is(err, ErrExists) {
		return errors.New("client_assertion replayed (its jti was used before)")
	} else if err != nil {
		return fmt.Errorf("recording the client_assertion: %w", err)
	}
	return nil
}
