package bench

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// issuer is the in-process token issuer of the auth targets: an RSA-2048 key generated
// at start, its JWKS served on loopback at <url>/jwks, RS256 tokens signed here.
type issuer struct {
	url string
	srv *httptest.Server
	key *rsa.PrivateKey

	mu      sync.Mutex
	workers []http.Header // perWorker's headers, by worker
	seq     atomic.Int64  // jti counter
}

const issuerKID = "bench-1"

func startIssuer() (*issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": issuerKID, "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		return nil, err
	}
	is := &issuer{key: key}
	is.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	is.srv.Listener = ln
	is.srv.Start()
	is.url = is.srv.URL
	return is, nil
}

var tokenHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + issuerKID + `","typ":"JWT"}`))

// token signs a token for aud with group "bench", valid for two hours, unique by jti.
func (is *issuer) token(aud, sub string) (string, error) {
	now := time.Now()
	claims, err := json.Marshal(map[string]any{
		"iss": is.url, "sub": sub, "aud": aud, "client_id": "mcpbench",
		"iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix(),
		"jti":    strconv.FormatInt(is.seq.Add(1), 10),
		"groups": []string{"bench"},
	})
	if err != nil {
		return "", err
	}
	signing := tokenHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, is.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func authHeader(tok string) http.Header {
	h := callHeader.Clone()
	h["Authorization"] = []string{"Bearer " + tok}
	return h
}

// perWorker returns Target.header for GatewayAuth: each worker gets its own token, signed
// at its first call and reused for every later one, as a real client reuses its token.
func (is *issuer) perWorker(aud string) func(int) http.Header {
	var snap atomic.Pointer[[]http.Header] // lock-free reads once every worker has its token
	return func(w int) http.Header {
		if hs := snap.Load(); hs != nil && w < len(*hs) {
			return (*hs)[w]
		}
		is.mu.Lock()
		defer is.mu.Unlock()
		for len(is.workers) <= w {
			tok, err := is.token(aud, "bench-client-"+strconv.Itoa(len(is.workers)))
			if err != nil {
				panic(err) // only on a broken RSA key
			}
			is.workers = append(is.workers, authHeader(tok))
		}
		hs := append([]http.Header(nil), is.workers...)
		snap.Store(&hs)
		return hs[w]
	}
}

// pool signs n tokens up front (on every CPU) and returns Target.header for GatewayFresh:
// each call takes the next token of the pool, whatever the worker.
func (is *issuer) pool(aud string, n int) (func(int) http.Header, error) {
	hs := make([]http.Header, n)
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		err     error
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				tok, e := is.token(aud, "bench-fresh-"+strconv.Itoa(i))
				if e != nil {
					errOnce.Do(func() { err = e })
					return
				}
				hs[i] = authHeader(tok)
			}
		}()
	}
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("bench: signing the token pool: %w", err)
	}
	var seq atomic.Uint64
	return func(int) http.Header { return hs[(seq.Add(1)-1)%uint64(n)] }, nil
}

// benchPolicy lets group bench call the echo tool of server bench.
var benchPolicy = map[string]any{
	"group_mappings": map[string]any{"bench": []string{"bench-tools"}},
	"scopes": map[string]any{"bench-tools": []any{map[string]any{
		"server": "bench", "methods": []string{"tools/call"}, "tools": []string{"echo"},
	}}},
}

// The built-in authorization server's client of the GatewayBuiltin target.
const (
	builtinClientID     = "bench"
	builtinClientSecret = "bench-secret"
)

var builtinClientHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(builtinClientSecret), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

// builtinToken asks the built-in authorization server at base for a client_credentials
// token bound to resource.
func builtinToken(base, resource string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}
	req, err := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(builtinClientID, builtinClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return "", fmt.Errorf("bench: built-in authorization server token: status %d, %v", resp.StatusCode, err)
	}
	return tr.AccessToken, nil
}
