package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/caddymcp/caddymcp/internal/principal"
)

// ---- keys ----

// signingKey is a private key generated for the test and its kid / alg.
type signingKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

var (
	rsaKeysMu sync.Mutex
	rsaKeys   = map[string]*rsa.PrivateKey{}
)

// rsaKey returns a cached RSA key per (name, bits): generating 2048-bit keys under -race
// is slow, and a test only needs distinct keys, not fresh ones.
func rsaKey(t testing.TB, name string, bits int) *rsa.PrivateKey {
	t.Helper()
	rsaKeysMu.Lock()
	defer rsaKeysMu.Unlock()
	id := fmt.Sprintf("%s/%d", name, bits)
	if k := rsaKeys[id]; k != nil {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	rsaKeys[id] = k
	return k
}

func newRSA(t testing.TB, kid, alg string) *signingKey {
	return &signingKey{kid: kid, alg: alg, priv: rsaKey(t, kid, 2048)}
}

func newEC(t testing.TB, kid string) *signingKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signingKey{kid: kid, alg: "ES256", priv: k}
}

func newEd(t testing.TB, kid string) *signingKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signingKey{kid: kid, alg: "EdDSA", priv: k}
}

// publicJWK is the JWKS entry of k; extra members (alg, use, …) are set verbatim.
func publicJWK(t testing.TB, k *signingKey, extra map[string]string) jwk.Key {
	t.Helper()
	pk, err := jwk.FromRaw(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if k.kid != "" {
		_ = pk.Set(jwk.KeyIDKey, k.kid)
	}
	for name, v := range extra {
		if err := pk.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	return pk
}

// ---- tokens ----

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign produces a real JWS with jwx (an implementation independent of the validator's
// parser) with the key's kid and alg in the protected header.
func sign(t testing.TB, k *signingKey, claims map[string]any) string {
	t.Helper()
	hdr := jws.NewHeaders()
	if k.kid != "" {
		_ = hdr.Set(jws.KeyIDKey, k.kid)
	}
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	out, err := jws.Sign(mustJSON(t, claims), jws.WithKey(jwa.SignatureAlgorithm(k.alg), k.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// rawToken builds a token from arbitrary header and payload values and signature bytes.
func rawToken(t testing.TB, header, payload any, sig []byte) string {
	t.Helper()
	return b64url(mustJSON(t, header)) + "." + b64url(mustJSON(t, payload)) + "." + b64url(sig)
}

// hmacToken is the algorithm-confusion attack: HS256 keyed with public key bytes.
func hmacToken(t testing.TB, kid string, claims map[string]any, secret []byte) string {
	t.Helper()
	input := b64url(mustJSON(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid})) + "." + b64url(mustJSON(t, claims))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64url(m.Sum(nil))
}

// ---- clock ----

type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().Truncate(time.Second).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// ---- identity provider ----

// idp is an httptest issuer: discovery documents, a JWKS it can swap, an outage switch
// and request counters.
type idp struct {
	t         testing.TB
	srv       *httptest.Server
	issuer    string
	jwksPath  string
	down      atomic.Bool  // every endpoint answers 503
	hang      atomic.Bool  // the JWKS endpoint never answers
	delay     atomic.Int64 // JWKS answers after this many nanoseconds
	jwksHits  atomic.Int64 // JWKS requests received (including failed ones)
	discHits  atomic.Int64
	mu        sync.Mutex
	jwksBody  []byte
	discPaths map[string]bool // paths that serve the discovery document
	paths     []string        // every path requested
	discDoc   map[string]any
}

type idpOpts struct {
	issuerPath string // "" or e.g. "/realms/corp"
	// discovery selects which well-known locations answer: "oidc" (appended, default),
	// "rfc8414" (path-inserted oauth-authorization-server), "none".
	discovery string
}

func newIdP(t testing.TB, o idpOpts, keys ...jwk.Key) *idp {
	t.Helper()
	p := &idp{t: t, jwksPath: "/keys/jwks.json", discPaths: map[string]bool{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL + o.issuerPath
	switch o.discovery {
	case "", "oidc":
		p.discPaths[o.issuerPath+"/.well-known/openid-configuration"] = true
	case "rfc8414":
		p.discPaths["/.well-known/oauth-authorization-server"+o.issuerPath] = true
	case "none":
	default:
		t.Fatalf("discovery %q", o.discovery)
	}
	p.discDoc = map[string]any{"issuer": p.issuer, "jwks_uri": p.srv.URL + p.jwksPath}
	p.setKeys(keys...)
	return p
}

func (p *idp) setKeys(keys ...jwk.Key) {
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			p.t.Fatal(err)
		}
	}
	p.setJWKS(mustJSON(p.t, set))
}

func (p *idp) setJWKS(body []byte) {
	p.mu.Lock()
	p.jwksBody = body
	p.mu.Unlock()
}

func (p *idp) requestedPaths() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

func (p *idp) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.paths = append(p.paths, r.URL.Path)
	body := p.jwksBody
	isDisc := p.discPaths[r.URL.Path]
	doc := mustJSON(p.t, p.discDoc)
	p.mu.Unlock()
	switch {
	case r.URL.Path == p.jwksPath:
		p.jwksHits.Add(1)
		if p.hang.Load() {
			<-r.Context().Done()
			return
		}
		time.Sleep(time.Duration(p.delay.Load()))
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	case isDisc:
		p.discHits.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	default:
		http.NotFound(w, r)
	}
}

// ---- validator ----

const testAud = "https://gw.example.com/mcp"

func startValidator(t testing.TB, cfg Config) (*Validator, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := NewValidator(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, cancel
}

// claims returns a valid claim set for p at clock time now.
func claimsFor(issuer string, now time.Time) map[string]any {
	return map[string]any{
		"iss":       issuer,
		"sub":       "user-123",
		"aud":       testAud,
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"client_id": "cursor",
		"scope":     "openid mcp:tools",
		"groups":    []string{"platform-admins", "dev"},
	}
}

func with(c map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

func wantReason(t testing.TB, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want rejection %q", reason)
	}
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrInvalidToken (%q)", err, reason)
	}
	if got := Reason(err); got != reason {
		t.Fatalf("reason = %q (%v), want %q", got, err, reason)
	}
}

// wantOK(t)(v.Validate(…)) fails the test unless the token was accepted.
func wantOK(t testing.TB) func(*principal.Caller, error) *principal.Caller {
	return func(p *principal.Caller, err error) *principal.Caller {
		t.Helper()
		if err != nil {
			t.Fatalf("rejected: %v", err)
		}
		if p == nil {
			t.Fatal("nil principal without error")
		}
		return p
	}
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (v *Validator) sourceForTest(u string) *keySource {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sources[u]
}

// waitIdle waits until no discovery or JWKS fetch of v is in flight and every key source
// has started its background refresh (the warm-up is over).
func (v *Validator) waitIdle(t testing.TB) {
	t.Helper()
	waitFor(t, "warm-up", 10*time.Second, func() bool {
		for _, is := range v.issuers {
			is.limiter.mu.Lock()
			busy := is.limiter.inflight != nil
			is.limiter.mu.Unlock()
			if busy {
				return false
			}
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, s := range v.sources {
			s.limiter.mu.Lock()
			busy := s.limiter.inflight != nil
			s.limiter.mu.Unlock()
			s.mu.Lock()
			started := s.started
			s.mu.Unlock()
			if busy || !started {
				return false
			}
		}
		return true
	})
}

// rewriteTransport sends every request to the test server, whatever its URL says.
type rewriteTransport struct{ to string }

func (rt rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u, err := url.Parse(rt.to)
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, u.Host
	return http.DefaultTransport.RoundTrip(r)
}
