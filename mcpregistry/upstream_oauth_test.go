package mcpregistry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// fakeAS is an authorization server whose answers a test steers, to show what the
// gateway refuses.
type fakeAS struct {
	srv *httptest.Server
	mu  sync.Mutex
	// metadata overrides of the token endpoint and the issuer it claims.
	tokenEndpoint string
	redirect      bool // the metadata answers with a redirect
	// audience the issued tokens name ("" = the resource asked for).
	audience  string
	expiresIn int
	revoked   bool // refresh answers invalid_grant
	issued    int
	forms     []url.Values
	// assertionKey verifies private_key_jwt client assertions.
	assertionKey any
	seenJTI      map[string]bool
}

func newFakeAS(t *testing.T) *fakeAS {
	f := &fakeAS{expiresIn: 3600, seenJTI: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.redirect {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
			return
		}
		te := f.tokenEndpoint
		if te == "" {
			te = f.srv.URL + "/token"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/authorize", "token_endpoint": te,
			"code_challenge_methods_supported": []string{"S256"}, "authorization_response_iss_parameter_supported": true,
		})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.forms = append(f.forms, r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		if a := r.PostForm.Get("client_assertion"); a != "" {
			tok, err := jwt.Parse([]byte(a), jwt.WithKey(jwa.ES256, f.assertionKey), jwt.WithAudience(f.srv.URL+"/token"), jwt.WithIssuer("gw"), jwt.WithSubject("gw"))
			if err != nil || r.PostForm.Get("client_id") != "gw" || tok.JwtID() == "" || f.seenJTI[tok.JwtID()] {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
				return
			}
			f.seenJTI[tok.JwtID()] = true
		} else if user, pass, _ := r.BasicAuth(); user != "gw" || pass != "gw-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		if r.PostForm.Get("grant_type") == "refresh_token" && f.revoked {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"grant revoked"}`))
			return
		}
		aud := f.audience
		if aud == "" {
			aud = r.PostForm.Get("resource")
		}
		f.issued++
		payload, _ := json.Marshal(map[string]any{"aud": aud, "sub": "someone", "n": f.issued})
		at := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(payload) + ".c2ln"
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": f.expiresIn,
			"refresh_token": "rt-" + time.Now().Format("150405.000000"), "scope": "mcp"})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// requests returns the token requests so far and how many tokens were issued.
func (f *fakeAS) requests() ([]url.Values, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.forms...), f.issued
}

func (f *fakeAS) set(fn func(*fakeAS)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

// upstreamWithPRM is an upstream whose protected-resource metadata names issuer.
func upstreamWithPRM(t *testing.T, issuer string) string {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-protected-resource/mcp" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"resource": srv.URL + "/mcp", "authorization_servers": []string{issuer}})
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

const testIssuer = "https://gw.example/oauth"

// loadOAuthConfig runs a registry with servers saas and other (backend_auth oauth,
// discovered through upstream's metadata); allowLoopback admits the fake servers.
func loadOAuthConfig(t *testing.T, upstream string, allowLoopback bool, extra map[string]any) (app *App, key, db string) {
	t.Helper()
	_, key = newTestKey(t)
	db = filepath.Join(t.TempDir(), "registry.db")
	return loadOAuthConfigAt(t, upstream, allowLoopback, extra, db, key), key, db
}

func loadOAuthConfigAt(t *testing.T, upstream string, allowLoopback bool, extra map[string]any, db, key string) *App {
	t.Helper()
	oauth := map[string]any{"client_id": "gw", "client_secret": "gw-secret", "scopes": []string{"mcp"}}
	for k, v := range extra {
		oauth[k] = v
	}
	servers := []map[string]any{
		{"name": "saas", "upstream": upstream, "backend_auth": map[string]any{"scheme": "oauth"}, "backend_oauth": oauth},
		{"name": "other", "upstream": upstream, "path": "other", "backend_auth": map[string]any{"scheme": "oauth"}, "backend_oauth": oauth},
	}
	cfg := map[string]any{"storage": map[string]any{"path": db}, "servers": servers, "encryption_key": key,
		"health": map[string]any{"disabled": true}, "disable_builtin_server": true}
	if allowLoopback {
		cfg["runtime_upstreams"] = map[string]any{"allow": []string{"127.0.0.1/32"}}
	}
	loadConfig(t, cfg)
	t.Cleanup(func() { caddy.Stop() })
	return runningApp(t)
}

func connectRequired(t *testing.T, err error) {
	t.Helper()
	var cr *ConnectRequiredError
	if !errors.As(err, &cr) {
		t.Fatalf("want ConnectRequiredError, got %v", err)
	}
}

// startFlow begins a connection for sub and returns the state the browser would
// bring back.
func startFlow(t *testing.T, app *App, server, sub, nonce string) string {
	t.Helper()
	authURL, err := app.BeginConnect(context.Background(), server, testIssuer, sub, "https://gw.example/"+server+"/connect/callback", nonce)
	if err != nil {
		t.Fatalf("BeginConnect: %v", err)
	}
	u, _ := url.Parse(authURL)
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("resource") == "" || q.Get("client_id") != "gw" {
		t.Fatalf("authorization URL %s lacks PKCE, resource or client_id", authURL)
	}
	return q.Get("state")
}

func TestUpstreamOAuthConnectAndRefresh(t *testing.T) {
	as := newFakeAS(t)
	upstream := upstreamWithPRM(t, as.srv.URL)
	app, key, db := loadOAuthConfig(t, upstream, true, nil)
	ctx := context.Background()
	saas := app.Server("saas")
	alice := UpstreamCaller{Issuer: testIssuer, Subject: "alice"}

	_, err := app.UpstreamAuthorization(ctx, saas, alice)
	connectRequired(t, err)

	// Links: bound to the server and the caller, not openable elsewhere.
	link, id, err := app.NewConnectLink("saas", testIssuer, "alice")
	if err != nil || id == "" {
		t.Fatal(err)
	}
	if iss, sub, err := app.OpenConnectLink("saas", link); err != nil || iss != testIssuer || sub != "alice" {
		t.Fatalf("OpenConnectLink: %q %q %v", iss, sub, err)
	}
	if _, _, err := app.OpenConnectLink("other", link); err == nil {
		t.Fatal("a link for saas opened for other")
	}
	if _, _, err := app.OpenConnectLink("saas", link[:len(link)-2]+"AA"); err == nil {
		t.Fatal("an altered link opened")
	}

	state := startFlow(t, app, "saas", "alice", "nonce-a")
	f, err := app.TakeConnectFlow("saas", state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.TakeConnectFlow("saas", state); err == nil {
		t.Fatal("a flow was taken twice (callback replay)")
	}
	if !f.BrowserMatches("nonce-a") || f.BrowserMatches("nonce-b") || f.BrowserMatches("") {
		t.Fatal("the flow's browser binding does not tell browsers apart")
	}
	if err := app.FinishConnect(ctx, f, "code", as.srv.URL); err != nil {
		t.Fatalf("FinishConnect: %v", err)
	}
	v, err := app.UpstreamAuthorization(ctx, saas, alice)
	if err != nil || !strings.HasPrefix(v, "Bearer eyJ") {
		t.Fatalf("after connecting: %v", err)
	}
	at := strings.TrimPrefix(v, "Bearer ")
	// Bob gets nothing of alice's; neither does alice on the other server.
	_, err = app.UpstreamAuthorization(ctx, saas, UpstreamCaller{Issuer: testIssuer, Subject: "bob"})
	connectRequired(t, err)
	_, err = app.UpstreamAuthorization(ctx, app.Server("other"), alice)
	connectRequired(t, err)
	// Same subject at another issuer is another user.
	_, err = app.UpstreamAuthorization(ctx, saas, UpstreamCaller{Issuer: "https://idp.example", Subject: "alice"})
	connectRequired(t, err)

	conns, err := app.UpstreamConnections(testIssuer, "alice")
	if err != nil || len(conns) != 1 || conns[0].Server != "saas" || conns[0].Scope != "mcp" {
		t.Fatalf("connections: %+v %v", conns, err)
	}

	// Sealed at rest: neither token is in the file.
	caddy.Stop()
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), at) || strings.Contains(string(raw), "rt-") {
		t.Fatal("an upstream token is stored in clear")
	}
	app = loadOAuthConfigAt(t, upstream, true, nil, db, key)
	saas = app.Server("saas")
	if v2, err := app.UpstreamAuthorization(ctx, saas, alice); err != nil || v2 != v {
		t.Fatalf("after a restart: %v (same token %t)", err, v2 == v)
	}

	// Expiry: the next request refreshes; a revoked grant sends the user to connect.
	as.set(func(f *fakeAS) { f.expiresIn = 1 })
	if err := app.FinishConnect(ctx, mustFlow(t, app, "alice"), "code", as.srv.URL); err != nil {
		t.Fatal(err)
	}
	v1, _ := app.UpstreamAuthorization(ctx, saas, alice)
	time.Sleep(1100 * time.Millisecond)
	v2, err := app.UpstreamAuthorization(ctx, saas, alice)
	if err != nil || v2 == v1 {
		t.Fatalf("after expiry: refreshed %t, %v", v2 != v1, err)
	}
	forms, _ := as.requests()
	if last := forms[len(forms)-1]; last.Get("grant_type") != "refresh_token" || last.Get("resource") != upstream {
		t.Fatalf("refresh request %v", last)
	}
	as.set(func(f *fakeAS) { f.revoked = true })
	time.Sleep(1100 * time.Millisecond)
	_, err = app.UpstreamAuthorization(ctx, saas, alice)
	connectRequired(t, err)
	if conns, _ := app.UpstreamConnections(testIssuer, "alice"); len(conns) != 0 {
		t.Fatalf("a revoked grant is still stored: %+v", conns)
	}
}

func mustFlow(t *testing.T, app *App, sub string) *ConnectFlow {
	t.Helper()
	f, err := app.TakeConnectFlow("saas", startFlow(t, app, "saas", sub, "n"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Bad answers from an upstream's authorization server: each refused, nothing stored.
func TestUpstreamOAuthRefusals(t *testing.T) {
	as := newFakeAS(t)
	upstream := upstreamWithPRM(t, as.srv.URL)
	app, _, _ := loadOAuthConfig(t, upstream, true, nil)
	ctx := context.Background()
	stored := func() int {
		conns, err := app.UpstreamConnections("", "")
		if err != nil {
			t.Fatal(err)
		}
		return len(conns)
	}

	t.Run("token for another audience", func(t *testing.T) {
		as.set(func(f *fakeAS) { f.audience = "https://elsewhere.example/mcp" })
		defer as.set(func(f *fakeAS) { f.audience = "" })
		err := app.FinishConnect(ctx, mustFlow(t, app, "alice"), "code", as.srv.URL)
		if err == nil || !strings.Contains(err.Error(), "audience") {
			t.Fatalf("want an audience refusal, got %v", err)
		}
	})
	t.Run("authorization response from another issuer (mix-up)", func(t *testing.T) {
		err := app.FinishConnect(ctx, mustFlow(t, app, "alice"), "code", "https://evil.example")
		if err == nil || !strings.Contains(err.Error(), "mix-up") {
			t.Fatalf("want a mix-up refusal, got %v", err)
		}
	})
	t.Run("missing iss the server promises", func(t *testing.T) {
		if err := app.FinishConnect(ctx, mustFlow(t, app, "alice"), "code", ""); err == nil {
			t.Fatal("a response without iss was accepted")
		}
	})
	t.Run("flow of another server", func(t *testing.T) {
		state := startFlow(t, app, "saas", "alice", "n")
		if _, err := app.TakeConnectFlow("other", state); err == nil {
			t.Fatal("saas's flow completed as other's")
		}
	})
	if n := stored(); n != 0 {
		t.Fatalf("%d tokens stored after refusals", n)
	}
}

// Metadata that points the gateway at addresses runtime upstreams may not reach, or
// that redirects, is refused before anything is sent there.
func TestUpstreamOAuthMetadataAddresses(t *testing.T) {
	t.Run("token endpoint at a metadata address", func(t *testing.T) {
		as := newFakeAS(t)
		as.set(func(f *fakeAS) { f.tokenEndpoint = "http://169.254.169.254/token" })
		app, _, _ := loadOAuthConfig(t, upstreamWithPRM(t, as.srv.URL), true, nil)
		_, err := app.BeginConnect(context.Background(), "saas", testIssuer, "alice", "https://gw.example/cb", "n")
		if err == nil || !strings.Contains(err.Error(), "169.254.169.254") {
			t.Fatalf("want the token endpoint refused, got %v", err)
		}
	})
	t.Run("authorization server on loopback, not allowed", func(t *testing.T) {
		as := newFakeAS(t)
		app, _, _ := loadOAuthConfig(t, upstreamWithPRM(t, as.srv.URL), false, nil)
		_, err := app.BeginConnect(context.Background(), "saas", testIssuer, "alice", "https://gw.example/cb", "n")
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("want the loopback authorization server refused, got %v", err)
		}
	})
	t.Run("metadata redirect", func(t *testing.T) {
		as := newFakeAS(t)
		as.set(func(f *fakeAS) { f.redirect = true })
		app, _, _ := loadOAuthConfig(t, upstreamWithPRM(t, as.srv.URL), true, nil)
		_, err := app.BeginConnect(context.Background(), "saas", testIssuer, "alice", "https://gw.example/cb", "n")
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Fatalf("want the redirect refused, got %v", err)
		}
	})
}

func TestBackendOAuthConfigErrors(t *testing.T) {
	s := &model.Server{Name: "x", Upstream: "https://x.example/mcp"}
	for name, c := range map[string]*UpstreamOAuthConfig{
		"no block":                 nil,
		"no client id":             {},
		"bad grant":                {ClientID: "a", Grant: "password"},
		"bad auth method":          {ClientID: "a", TokenEndpointAuthMethod: "magic"},
		"post without secret":      {ClientID: "a", TokenEndpointAuthMethod: "client_secret_post"},
		"machine without secret":   {ClientID: "a", Grant: OAuthGrantClientCredentials},
		"bad issuer":               {ClientID: "a", AuthorizationServer: "ftp://x"},
		"profile without exchange": {ClientID: "a", Profile: TokenExchangeEntraOBO},
		"bad key":                  {ClientID: "a", TokenEndpointAuthMethod: "private_key_jwt", PrivateKey: "nope"},
		"bad registration":         {Registration: "magic"},
		"dynamic with client id":   {Registration: RegistrationDynamic, ClientID: "a"},
		"cimd with secret":         {Registration: RegistrationCIMD, ClientSecret: "s"},
		"dynamic machine":          {Registration: RegistrationDynamic, Grant: OAuthGrantClientCredentials},
		"cimd over http":           {Registration: RegistrationCIMD, RedirectURI: "http://gw.example/x/connect/callback"},
	} {
		if _, err := provisionOAuthClient(s, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	rt := &model.Server{Name: "x", Upstream: "https://x.example/mcp", Source: model.SourceAPI, BackendAuth: model.BackendAuth{Scheme: model.BackendAuthOAuth}}
	if err := rt.Normalize(); err == nil {
		t.Error("a runtime server took backend_auth oauth")
	}
}

func BenchmarkUpstreamAuthorizationHit(b *testing.B) {
	app := &App{}
	st := &app.upstreamAuth
	st.now = time.Now
	st.cache = map[tokenKey]*cachedToken{}
	st.flights = map[tokenKey]*flight{}
	st.clients = map[string]*oauthClient{"saas": {grant: OAuthGrantAuthorizationCode}}
	s := &model.Server{Name: "saas", Upstream: "https://saas.example/mcp"}
	st.cache[tokenKey{testIssuer, "alice", "saas"}] = &cachedToken{header: "Bearer x", origin: upstreamOrigin(s.Upstream), refreshAt: time.Now().Add(time.Hour)}
	c := UpstreamCaller{Issuer: testIssuer, Subject: "alice"}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := app.UpstreamAuthorization(ctx, s, c); err != nil || v != "Bearer x" {
				b.Fatal(v, err)
			}
		}
	})
}

type fakeSignIn struct{}

func (fakeSignIn) SignedIn(*http.Request) (string, bool)               { return "", false }
func (fakeSignIn) SignedInUser(*http.Request) (string, []string, bool) { return "", nil, false }
func (fakeSignIn) SignInURL(string) string                             { return "" }

// Connections are listed per user and by admins, and removed by the user, by an
// admin, with the user, and with the server.
func TestUpstreamOAuthVaultRemoval(t *testing.T) {
	as := newFakeAS(t)
	upstream := upstreamWithPRM(t, as.srv.URL)
	app, key, db := loadOAuthConfig(t, upstream, true, nil)
	defer app.LocalIssuers().SetSignIn(testIssuer, fakeSignIn{})()
	ctx := context.Background()
	connect := func(sub, server string) {
		t.Helper()
		f, err := app.TakeConnectFlow(server, startFlow(t, app, server, sub, "n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := app.FinishConnect(ctx, f, "code", as.srv.URL); err != nil {
			t.Fatal(err)
		}
	}
	connect("alice", "saas")
	connect("alice", "other")
	connect("bob", "saas")
	count := func(iss, sub string) int {
		t.Helper()
		c, err := app.UpstreamConnections(iss, sub)
		if err != nil {
			t.Fatal(err)
		}
		return len(c)
	}
	if count("", "") != 3 || count(testIssuer, "alice") != 2 || count(testIssuer, "bob") != 1 || count("https://idp.example", "alice") != 0 {
		t.Fatalf("listing: all %d alice %d bob %d", count("", ""), count(testIssuer, "alice"), count(testIssuer, "bob"))
	}
	gone, err := app.DisconnectUpstream(testIssuer, "alice", "other")
	if err != nil || len(gone) != 1 || gone[0].Server != "other" || count(testIssuer, "alice") != 1 {
		t.Fatalf("disconnect one: %+v %v", gone, err)
	}
	if _, err := app.UpstreamAuthorization(ctx, app.Server("other"), UpstreamCaller{Issuer: testIssuer, Subject: "alice"}); err == nil {
		t.Fatal("a disconnected token is still sent")
	}
	if n, err := app.RemoveLocalUserConnections("bob"); err != nil || n != 1 || count(testIssuer, "bob") != 0 {
		t.Fatalf("removing bob: %d %v", n, err)
	}
	// Users who no longer exist (removed from the config) lose theirs at the next load;
	// another issuer's users are not touched.
	connect("carol", "saas")
	if n, err := app.PruneLocalUserConnections("https://idp.example", func(string) bool { return false }); err != nil || n != 0 {
		t.Fatalf("pruning another issuer: %d %v", n, err)
	}
	if n, err := app.PruneLocalUserConnections(testIssuer, func(sub string) bool { return sub == "alice" }); err != nil || n != 1 || count(testIssuer, "carol") != 0 || count(testIssuer, "alice") != 1 {
		t.Fatalf("pruning carol: %d %v", n, err)
	}
	// A server that no longer takes per-user OAuth loses its tokens with the config.
	caddy.Stop()
	_ = loadOAuthConfigAt(t, upstream, true, nil, db, key)
	app = runningApp(t)
	if count("", "") != 1 {
		t.Fatalf("before: %d", count("", ""))
	}
	caddy.Stop()
	loadConfig(t, map[string]any{"storage": map[string]any{"path": db}, "encryption_key": key, "health": map[string]any{"disabled": true},
		"servers": []map[string]any{{"name": "saas", "upstream": upstream}}})
	app = runningApp(t)
	if count("", "") != 0 {
		t.Fatalf("tokens of a server without backend_auth oauth are kept: %d", count("", ""))
	}
}

// Machine credentials: one token of the gateway's own for every caller, by client
// secret or private_key_jwt, cached until shortly before it expires.
func TestUpstreamOAuthClientCredentials(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	for name, extra := range map[string]map[string]any{
		"client secret":   {"grant": "client_credentials"},
		"private_key_jwt": {"grant": "client_credentials", "client_secret": "", "token_endpoint_auth_method": "private_key_jwt", "private_key": keyPEM, "private_key_id": "k1"},
	} {
		t.Run(name, func(t *testing.T) {
			as := newFakeAS(t)
			as.set(func(f *fakeAS) { f.assertionKey = key.Public(); f.expiresIn = 2 })
			extra["token_endpoint"] = as.srv.URL + "/token"
			app, _, _ := loadOAuthConfig(t, upstreamWithPRM(t, as.srv.URL), true, extra)
			ctx := context.Background()
			s := app.Server("saas")
			v1, err := app.UpstreamAuthorization(ctx, s, UpstreamCaller{})
			if err != nil || !strings.HasPrefix(v1, "Bearer ") {
				t.Fatalf("machine token: %v", err)
			}
			if v, err := app.UpstreamAuthorization(ctx, s, UpstreamCaller{Issuer: testIssuer, Subject: "bob"}); err != nil || v != v1 {
				t.Fatalf("a second caller got another token (%v): the machine token is one for all", err)
			}
			forms, issued := as.requests()
			if issued != 1 {
				t.Fatalf("%d tokens fetched for two calls; want one, cached", issued)
			}
			form := forms[0]
			if form.Get("grant_type") != "client_credentials" || form.Get("scope") != "mcp" || form.Get("resource") == "" {
				t.Fatalf("token request %v", form)
			}
			time.Sleep(2100 * time.Millisecond)
			if v2, err := app.UpstreamAuthorization(ctx, s, UpstreamCaller{}); err != nil || v2 == v1 {
				t.Fatalf("after expiry: new token %t, %v", v2 != v1, err)
			}
		})
	}
}

// Token exchange: the caller's own token traded for one for the upstream, per caller,
// in the RFC 8693 and the Entra on-behalf-of shapes.
func TestUpstreamOAuthTokenExchange(t *testing.T) {
	for _, profile := range []string{TokenExchangeRFC8693, TokenExchangeEntraOBO} {
		t.Run(profile, func(t *testing.T) {
			as := newFakeAS(t)
			app, _, _ := loadOAuthConfig(t, upstreamWithPRM(t, as.srv.URL), true, map[string]any{
				"grant": "token_exchange", "profile": profile, "token_endpoint": as.srv.URL + "/token", "audience": "urn:saas",
			})
			ctx := context.Background()
			s := app.Server("saas")
			alice := UpstreamCaller{Issuer: testIssuer, Subject: "alice", Token: "alice-gateway-token"}
			va, err := app.UpstreamAuthorization(ctx, s, alice)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := app.UpstreamAuthorization(ctx, s, alice); again != va {
				t.Fatal("the exchanged token is not cached for its caller")
			}
			vb, err := app.UpstreamAuthorization(ctx, s, UpstreamCaller{Issuer: testIssuer, Subject: "bob", Token: "bob-gateway-token"})
			if err != nil || vb == va {
				t.Fatalf("bob got alice's exchanged token (%v)", err)
			}
			forms, issued := as.requests()
			if issued != 2 {
				t.Fatalf("%d exchanges for two callers", issued)
			}
			f := forms[0]
			switch profile {
			case TokenExchangeRFC8693:
				if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" || f.Get("subject_token") != "alice-gateway-token" ||
					f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:access_token" || f.Get("audience") != "urn:saas" || f.Get("resource") == "" {
					t.Fatalf("exchange request %v", f)
				}
			case TokenExchangeEntraOBO:
				if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || f.Get("assertion") != "alice-gateway-token" ||
					f.Get("requested_token_use") != "on_behalf_of" || f.Get("scope") != "mcp" {
					t.Fatalf("on-behalf-of request %v", f)
				}
			}
			if _, err := app.UpstreamAuthorization(ctx, s, UpstreamCaller{Issuer: testIssuer, Subject: "carol"}); err == nil {
				t.Fatal("an exchange without the caller's token succeeded")
			}
		})
	}
}

// Pending connect flows are bounded per user and in total; each refusal says which,
// and stores nothing.
func TestUpstreamOAuthFlowCaps(t *testing.T) {
	as := newFakeAS(t)
	app, _, _ := loadOAuthConfig(t, upstreamWithPRM(t, as.srv.URL), true, nil)
	ctx := context.Background()
	begin := func(sub string) error {
		_, err := app.BeginConnect(ctx, "saas", testIssuer, sub, "https://gw.example/saas/connect/callback", "n")
		return err
	}
	var states []string
	for range maxFlowsPerUser {
		states = append(states, startFlow(t, app, "saas", "alice", "n"))
	}
	var tm *TooManyFlowsError
	if err := begin("alice"); !errors.As(err, &tm) || !tm.PerUser || !strings.Contains(err.Error(), "pending") {
		t.Fatalf("alice's flow beyond her cap: %v", err)
	}
	if err := begin("bob"); err != nil {
		t.Fatalf("bob is held to alice's cap: %v", err)
	}
	// A completed (taken) flow frees its place.
	if _, err := app.TakeConnectFlow("saas", states[0]); err != nil {
		t.Fatal(err)
	}
	if err := begin("alice"); err != nil {
		t.Fatalf("alice after one flow was taken: %v", err)
	}
	app.upstreamAuth.flowsTotal = maxFlowsPerUser + 1 // alice's 5 and bob's 1
	if err := begin("carol"); !errors.As(err, &tm) || tm.PerUser || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("carol beyond the total cap: %v", err)
	}
}
