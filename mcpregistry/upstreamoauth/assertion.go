package upstreamoauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// AssertionSigner returns the private_key_jwt client assertion maker (RFC 7523 §2.2):
// iss and sub the client id, aud the token endpoint, a fresh jti, valid one minute.
func AssertionSigner(clientID, keyID string, key crypto.Signer) (func(audience string) (string, error), error) {
	alg, err := signingAlg(key)
	if err != nil {
		return nil, err
	}
	return func(audience string) (string, error) {
		now := time.Now()
		tok, err := jwt.NewBuilder().
			Issuer(clientID).Subject(clientID).Audience([]string{audience}).
			JwtID(RandomString(16)).IssuedAt(now).NotBefore(now).Expiration(now.Add(time.Minute)).
			Build()
		if err != nil {
			return "", err
		}
		hdr := jws.NewHeaders()
		if keyID != "" {
			_ = hdr.Set(jws.KeyIDKey, keyID)
		}
		signed, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			return "", err
		}
		return string(signed), nil
	}, nil
}

func signingAlg(key crypto.Signer) (jwa.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return jwa.RS256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return jwa.ES256, nil
		case elliptic.P384():
			return jwa.ES384, nil
		case elliptic.P521():
			return jwa.ES512, nil
		}
	case ed25519.PrivateKey:
		return jwa.EdDSA, nil
	}
	return "", fmt.Errorf("unsupported private key type %T", key)
}
