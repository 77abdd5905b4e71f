package oauthserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// keyRing holds the ES256 signing keys. The key signing now is the oldest one still
// within its signing period; a successor is generated and published in the JWKS one
// overlap before that period ends, so verifiers caching the JWKS know it when it signs
// its first token, and a retired key stays published one overlap after its last token.
type keyRing struct {
	store    Store
	sealer   Sealer
	rotation time.Duration
	overlap  time.Duration

	mu        sync.RWMutex
	active    *signingKey
	jwks      []byte
	nextCheck time.Time
}

type signingKey struct {
	kid    string
	priv   *ecdsa.PrivateKey
	header string // base64url of the JWS protected header
}

func keyAAD(kid string) string { return "mcp_oauth_server signing key " + kid }

// signer returns the key to sign with at now, rotating when due.
func (k *keyRing) signer(ctx context.Context, now time.Time) (*signingKey, error) {
	k.mu.RLock()
	active, check := k.active, k.nextCheck
	k.mu.RUnlock()
	if active != nil && now.Before(check) {
		return active, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.active != nil && now.Before(k.nextCheck) {
		return k.active, nil
	}
	if err := k.reload(ctx, now); err != nil {
		return nil, err
	}
	return k.active, nil
}

// reload reads the stored keys, drops retired ones, generates a successor when due and
// rebuilds the JWKS; k.mu must be held.
func (k *keyRing) reload(ctx context.Context, now time.Time) error {
	stored, err := k.store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	var live []SigningKey
	for _, sk := range stored {
		if now.After(sk.Retire) {
			if err := k.store.DeleteSigningKey(ctx, sk.ID); err != nil {
				return err
			}
			continue
		}
		live = append(live, sk)
	}
	var latestEnd time.Time
	for _, sk := range live {
		if sk.SignUntil.After(latestEnd) {
			latestEnd = sk.SignUntil
		}
	}
	if latestEnd.Sub(now) <= k.overlap {
		start := now
		if latestEnd.After(now) {
			start = latestEnd
		}
		sk, err := k.generate(now, start.Add(k.rotation))
		if err != nil {
			return err
		}
		if err := k.store.PutSigningKey(ctx, sk); err != nil {
			return err
		}
		live = append(live, sk)
	}

	set := jwk.NewSet()
	var chosen *SigningKey
	for i, sk := range live {
		if err := k.resealIfStale(ctx, &live[i]); err != nil {
			return err
		}
		sk = live[i]
		priv, err := k.open(sk)
		if err != nil {
			return err
		}
		pub, err := jwk.FromRaw(&priv.PublicKey)
		if err != nil {
			return err
		}
		pub.Set(jwk.KeyIDKey, sk.ID)
		pub.Set(jwk.AlgorithmKey, jwa.ES256)
		pub.Set(jwk.KeyUsageKey, "sig")
		set.AddKey(pub)
		if now.Before(live[i].SignUntil) && (chosen == nil || sk.SignUntil.Before(chosen.SignUntil)) {
			chosen = &live[i]
			k.active = &signingKey{kid: sk.ID, priv: priv, header: jwsHeader(sk.ID)}
		}
	}
	if chosen == nil {
		return fmt.Errorf("no signing key is current")
	}
	if k.jwks, err = json.Marshal(set); err != nil {
		return err
	}
	// Look again when the chosen key stops signing, when a successor is due, or when a
	// key retires, whichever comes first.
	next := chosen.SignUntil
	if due := latestOf(live).Add(-k.overlap); due.Before(next) {
		next = due
	}
	for _, sk := range live {
		if sk.Retire.Before(next) {
			next = sk.Retire
		}
	}
	if next.Before(now.Add(time.Second)) {
		next = now.Add(time.Second)
	}
	k.nextCheck = next
	return nil
}

func latestOf(keys []SigningKey) time.Time {
	var t time.Time
	for _, sk := range keys {
		if sk.SignUntil.After(t) {
			t = sk.SignUntil
		}
	}
	return t
}

func (k *keyRing) generate(now, signUntil time.Time) (SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return SigningKey{}, err
	}
	sum := sha256.Sum256(der)
	kid := base64.RawURLEncoding.EncodeToString(sum[:12])
	sealed, err := k.sealer.Seal(keyAAD(kid), der)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{ID: kid, Sealed: sealed, Created: now, SignUntil: signUntil, Retire: signUntil.Add(k.overlap)}, nil
}

// staleReporter is implemented by sealers whose keys rotate (the registry's keyring):
// Stale reports a value sealed under a key that is no longer the current one.
type staleReporter interface{ Stale(sealed []byte) bool }

// resealIfStale seals sk again under the sealer's current key when it was sealed under
// a previous one, and stores it, so that the previous key can be retired.
func (k *keyRing) resealIfStale(ctx context.Context, sk *SigningKey) error {
	sr, ok := k.sealer.(staleReporter)
	if !ok || !sr.Stale(sk.Sealed) {
		return nil
	}
	der, err := k.sealer.Open(keyAAD(sk.ID), sk.Sealed)
	if err != nil {
		return fmt.Errorf("signing key %s: %v", sk.ID, err)
	}
	sealed, err := k.sealer.Seal(keyAAD(sk.ID), der)
	clear(der)
	if err != nil {
		return fmt.Errorf("re-sealing signing key %s: %v", sk.ID, err)
	}
	sk.Sealed = sealed
	return k.store.PutSigningKey(ctx, *sk)
}

func (k *keyRing) open(sk SigningKey) (*ecdsa.PrivateKey, error) {
	der, err := k.sealer.Open(keyAAD(sk.ID), sk.Sealed)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %v (was signing_key_encryption_key changed?)", sk.ID, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %v", sk.ID, err)
	}
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key %s is not a P-256 key", sk.ID)
	}
	return priv, nil
}

// jwksJSON returns the published key set.
func (k *keyRing) jwksJSON() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.jwks
}

func jwsHeader(kid string) string {
	h, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}{"ES256", "at+jwt", kid})
	return base64.RawURLEncoding.EncodeToString(h)
}

// sign returns the compact JWS of claims (RFC 9068 header typ at+jwt).
func (sk *signingKey) sign(claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(sk.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(64))
	buf = append(buf, sk.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	digest := sha256.Sum256(buf)
	r, s, err := ecdsa.Sign(rand.Reader, sk.priv, digest[:])
	if err != nil {
		return "", err
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig[:])
	return string(buf), nil
}
