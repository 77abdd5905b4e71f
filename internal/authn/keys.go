package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// MinRSABits is the smallest RSA modulus accepted; smaller keys in a JWKS are ignored.
const MinRSABits = 2048

type algKind uint8

const (
	kindRSA algKind = iota + 1
	kindP256
	kindP384
	kindP521
	kindEd25519
)

// verifyKey is one usable public key of a JWKS.
type verifyKey struct {
	kind algKind
	alg  string // the JWK's "alg" member, "" when absent (then any alg of kind is fine)
	pub  any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

func (k *verifyKey) accepts(alg string) bool {
	return supportedAlgs[alg] == k.kind && (k.alg == "" || k.alg == alg)
}

// keyIndex is an immutable view of one fetched JWKS.
type keyIndex struct {
	byKid    map[string][]*verifyKey
	all      []*verifyKey
	rejected map[string]string // kid -> why the key is unusable (logs only)
	digest   [32]byte          // identifies the usable key material
}

// lookup returns the keys that may verify a token with this kid and alg. A token without
// kid is accepted only when exactly one key fits (no trial verification of many keys).
func (ix *keyIndex) lookup(kid, alg string) []*verifyKey {
	if kid != "" {
		ks := ix.byKid[kid]
		for _, k := range ks {
			if !k.accepts(alg) {
				return filterKeys(ks, alg)
			}
		}
		return ks
	}
	var only *verifyKey
	for _, k := range ix.all {
		if k.accepts(alg) {
			if only != nil {
				return nil
			}
			only = k
		}
	}
	if only == nil {
		return nil
	}
	return []*verifyKey{only}
}

func filterKeys(ks []*verifyKey, alg string) []*verifyKey {
	var out []*verifyKey
	for _, k := range ks {
		if k.accepts(alg) {
			out = append(out, k)
		}
	}
	return out
}

// buildIndex keeps only keys usable for signature verification under our rules: "use"
// absent or "sig"; RSA with at least MinRSABits; EC on P-256/384/521; Ed25519. Symmetric
// ("oct") keys are never usable. Private key material, if a JWKS carries it, is reduced to
// the public half.
func buildIndex(set jwk.Set) *keyIndex {
	ix := &keyIndex{byKid: map[string][]*verifyKey{}, rejected: map[string]string{}}
	h := sha256.New()
	for i := 0; i < set.Len(); i++ {
		key, ok := set.Key(i)
		if !ok {
			continue
		}
		kid := key.KeyID()
		reject := func(why string) {
			if kid != "" {
				ix.rejected[kid] = why
			}
		}
		if use := key.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
			reject("use is " + use)
			continue
		}
		alg := ""
		if a := key.Algorithm(); a != nil {
			alg = a.String()
		}
		raw, err := jwk.PublicRawKeyOf(key)
		if err != nil {
			reject("not a public key")
			continue
		}
		vk := &verifyKey{alg: alg, pub: raw}
		switch pk := raw.(type) {
		case *rsa.PublicKey:
			if pk.N == nil || pk.N.BitLen() < MinRSABits {
				reject(fmt.Sprintf("RSA key smaller than %d bits", MinRSABits))
				continue
			}
			vk.kind = kindRSA
		case *ecdsa.PublicKey:
			switch pk.Curve {
			case elliptic.P256():
				vk.kind = kindP256
			case elliptic.P384():
				vk.kind = kindP384
			case elliptic.P521():
				vk.kind = kindP521
			default:
				reject("unsupported curve")
				continue
			}
		case ed25519.PublicKey:
			if len(pk) != ed25519.PublicKeySize {
				reject("bad Ed25519 key")
				continue
			}
			vk.kind = kindEd25519
		default:
			reject(fmt.Sprintf("unusable key type %T", raw))
			continue
		}
		if alg != "" && supportedAlgs[alg] != vk.kind {
			reject("alg " + alg + " does not fit the key")
			continue
		}
		tp, err := key.Thumbprint(crypto.SHA256)
		if err != nil {
			reject("no thumbprint")
			continue
		}
		delete(ix.rejected, kid)
		ix.byKid[kid] = append(ix.byKid[kid], vk)
		ix.all = append(ix.all, vk)
		fmt.Fprintf(h, "%d:%s|%d:%s|%x;", len(kid), kid, len(alg), alg, tp)
	}
	h.Sum(ix.digest[:0])
	return ix
}

// keySource is one JWKS URL, shared by every issuer that uses it.
type keySource struct {
	url     string
	local   func() (jwk.Set, error) // a local issuer's keys, read instead of fetching url
	index   atomic.Pointer[keyIndex]
	gen     atomic.Uint64 // bumped when the usable key material changes
	limiter limiter

	mu      sync.Mutex // guards started
	started bool       // the jwk.Cache background refresh chain has been started
	mem     *KeyMemory // may be nil
}

// store installs a freshly fetched JWKS.
func (s *keySource) store(set jwk.Set) {
	ix := buildIndex(set)
	old := s.index.Swap(ix)
	if old == nil || old.digest != ix.digest {
		s.gen.Add(1)
	}
	s.mem.putKeys(s.url, ix)
}

// limiter runs at most one attempt at a time and starts a new one at most once per
// interval (by the Validator's clock). Callers that arrive while an attempt runs wait for
// it (bounded by their own context) and share its result; the attempt itself runs under
// the Validator's context, so a client that hangs up does not abort a fetch others wait on.
type limiter struct {
	mu       sync.Mutex
	inflight *attempt
	last     time.Time
	lastErr  error // result of the last finished attempt
}

type attempt struct {
	done chan struct{}
	err  error
}

var errRateLimited = errors.New("fetch rate-limited")

// rateLimitedError is returned instead of fetching; it carries the last attempt's error.
type rateLimitedError struct{ last error }

func (e *rateLimitedError) Error() string {
	if e.last == nil {
		return errRateLimited.Error()
	}
	return errRateLimited.Error() + "; last attempt: " + e.last.Error()
}

func (e *rateLimitedError) Unwrap() []error {
	if e.last == nil {
		return []error{errRateLimited}
	}
	return []error{errRateLimited, e.last}
}

func (l *limiter) run(reqCtx, bgCtx context.Context, now time.Time, every time.Duration, fn func(context.Context) error) error {
	l.mu.Lock()
	a := l.inflight
	if a == nil {
		if !l.last.IsZero() && now.Sub(l.last) < every && now.Sub(l.last) >= 0 {
			err := &rateLimitedError{last: l.lastErr}
			l.mu.Unlock()
			return err
		}
		l.last = now
		a = &attempt{done: make(chan struct{})}
		l.inflight = a
		go func() {
			err := fn(bgCtx)
			l.mu.Lock()
			a.err = err
			l.lastErr = err
			l.inflight = nil
			l.mu.Unlock()
			close(a.done)
		}()
	}
	l.mu.Unlock()
	select {
	case <-a.done:
		return a.err
	case <-reqCtx.Done():
		return reqCtx.Err()
	}
}
