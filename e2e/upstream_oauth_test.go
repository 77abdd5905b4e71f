package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// upstreamOAuthCaddyfile: the built-in authorization server signs in alice and bob
// (group eng); server "saas" is a real MCP server that takes only tokens of its own
// authorization server (upstream-as.mjs), found from its protected-resource metadata;
// the gateway is a confidential client there (backend_auth oauth). runtime_upstreams
// admits loopback, where that authorization server runs in the test.
const upstreamOAuthCaddyfile = `{
	admin {{ADMIN}}
	mcp_registry {
		storage bbolt {{DB}}
		encryption_key {$MCP_ENCRYPTION_KEY}
		disable_builtin_server
		runtime_upstreams {
			allow 127.0.0.1/32
		}
		server saas {$SAAS_URL} {
			backend_auth oauth {
				client_id gateway
				client_secret {env.GATEWAY_SECRET}
				scopes openid mcp
			}
		}
	}
}

` + upstreamOAuthSite

const bobPassword = "bob's e2e password"

// saasUpstream is a real MCP server (go-sdk) that, like a SaaS MCP server, takes only
// access tokens of its own authorization server issued for its own URL (JWT, RS256,
// checked against the server's JWKS), and whose tool whoami answers with the token's
// subject and id.
type saasUpstream struct {
	URL string // its MCP endpoint
	mu  sync.Mutex
	// tokens are the bearer tokens it received, valid or not.
	tokens []string
	// refused counts requests whose token did not verify.
	refused int
	// reject: tokens of this subject are answered 401 although they verify, as after
	// the user's grant was revoked at the authorization server.
	reject   string
	rejected int
	// stale: these tokens are answered 401 although they verify and have not
	// expired, as after the upstream revoked an access token alone.
	stale map[string]bool
	// openHandshake: initialize and notifications/initialized are served without a
	// token, as some SaaS MCP servers do; every other request needs one.
	openHandshake atomic.Bool
	// handshakes counts the handshakes served without a token.
	handshakes atomic.Int32
}

// staleSeen makes the upstream answer 401 to every token of sub it has received so far.
func (u *saasUpstream) staleSeen(sub string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stale == nil {
		u.stale = map[string]bool{}
	}
	for _, tok := range u.tokens {
		if t, err := jwt.ParseInsecure([]byte(tok)); err == nil && t.Subject() == sub {
			u.stale[tok] = true
		}
	}
}

// rejectSubject makes the upstream answer 401 to sub's tokens ("": to nobody's).
func (u *saasUpstream) rejectSubject(sub string) {
	u.mu.Lock()
	u.reject = sub
	u.mu.Unlock()
}

func startSaaSUpstream(t *testing.T, issuer string) *saasUpstream {
	t.Helper()
	u := &saasUpstream{}
	keys, err := jwk.Fetch(context.Background(), issuer+"/jwks")
	if err != nil {
		t.Fatalf("fetching the upstream authorization server's keys: %v", err)
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "saas", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami", Description: "who the upstream thinks is calling"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			ti := req.Extra.TokenInfo
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sub=" + ti.UserID + " jti=" + fmt.Sprint(ti.Extra["jti"])}}}, nil, nil
		})
	mux := http.NewServeMux()
	ts := httptest.NewUnstartedServer(mux)
	ts.Start()
	t.Cleanup(ts.Close)
	u.URL = ts.URL + "/mcp"
	verify := func(ctx context.Context, token string, r *http.Request) (*auth.TokenInfo, error) {
		u.mu.Lock()
		u.tokens = append(u.tokens, token)
		u.mu.Unlock()
		tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(keys), jwt.WithIssuer(issuer), jwt.WithAudience(u.URL), jwt.WithValidate(true))
		if err != nil {
			u.mu.Lock()
			u.refused++
			u.mu.Unlock()
			return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
		}
		u.mu.Lock()
		revoked := (u.reject != "" && u.reject == tok.Subject()) || u.stale[token]
		if revoked {
			u.rejected++
		}
		u.mu.Unlock()
		if revoked {
			return nil, fmt.Errorf("%w: the grant was revoked", auth.ErrInvalidToken)
		}
		return &auth.TokenInfo{UserID: tok.Subject(), Expiration: tok.Expiration(), Extra: map[string]any{"jti": tok.JwtID()}}, nil
	}
	prm := ts.URL + "/.well-known/oauth-protected-resource/mcp"
	mux.Handle("/.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: u.URL, AuthorizationServers: []string{issuer},
	}))
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	protected := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: prm})(mcpHandler)
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.openHandshake.Load() && r.Method == http.MethodPost && r.Header.Get("Authorization") == "" {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct{ Method string }
			if json.Unmarshal(body, &m) == nil && (m.Method == "initialize" || m.Method == "notifications/initialized") {
				u.handshakes.Add(1)
				mcpHandler.ServeHTTP(w, r)
				return
			}
		}
		protected.ServeHTTP(w, r)
	}))
	return u
}

func (u *saasUpstream) seen() (tokens []string, refused int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.tokens...), u.refused
}

// startUpstreamAS runs testdata/oidc/upstream-as.mjs and returns its issuer.
func startUpstreamAS(t *testing.T, env ...string) string {
	t.Helper()
	testenv.RequireTestDeps(t)
	script := filepath.Join(testenv.RepoRoot(), "testdata", "oidc", "upstream-as.mjs")
	p := testenv.StartCommand(t, testenv.Command{
		Name:  "upstream-as",
		Path:  testenv.NodeBin(),
		Dir:   testenv.NodeDir(),
		Args:  func(port int) []string { return []string{script, strconv.Itoa(port)} },
		Env:   func(int) []string { return env },
		Ready: "READY http://127.0.0.1:",
		InUse: []string{"EADDRINUSE"},
	})
	return p.BaseURL
}

// browser is a person's browser: one cookie jar for every site, redirects seen one
// by one.
type browser struct {
	t        *testing.T
	c        *http.Client
	user     string
	password string
}

func newBrowser(t *testing.T, user, password string) *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, user: user, password: password, c: &http.Client{
		Transport: tr, Jar: jar, Timeout: requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) do(method, target string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, string(page)
}

var (
	pageFormAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	pageHidden     = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)"`)
	pagePrompt     = regexp.MustCompile(`name="prompt" value="(\w+)"`)
)

func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range pageHidden.FindAllStringSubmatch(page, -1) {
		if v.Get(m[1]) == "" {
			v.Set(m[1], html.UnescapeString(m[2]))
		}
	}
	return v
}

// connect walks the browser from a connect link through the gateway's sign-in, the
// connect page and the upstream authorization server's login and consent, and returns
// the redirect back to the gateway's callback without following it.
func (b *browser) connect(link string) *url.URL {
	b.t.Helper()
	next, _ := url.Parse(link)
	var form url.Values
	for step := 0; step < 16; step++ {
		method := http.MethodGet
		if form != nil {
			method = http.MethodPost
		}
		resp, page := b.do(method, next.String(), form)
		form = nil
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				b.t.Fatalf("%s: %d without Location", next, resp.StatusCode)
			}
			if strings.HasSuffix(loc.Path, "/connect/callback") {
				return loc
			}
			next = loc
		case resp.StatusCode == http.StatusOK:
			a := pageFormAction.FindStringSubmatch(page)
			if a == nil {
				b.t.Fatalf("%s shows no form:\n%s", next, page)
			}
			action, err := next.Parse(html.UnescapeString(a[1]))
			if err != nil {
				b.t.Fatal(err)
			}
			fields := hiddenFields(page)
			switch p := pagePrompt.FindStringSubmatch(page); {
			case p != nil && p[1] == "login":
				form = url.Values{"prompt": {"login"}, "login": {b.user}, "password": {"any"}}
			case p != nil && p[1] == "consent":
				form = url.Values{"prompt": {"consent"}}
			case strings.Contains(page, `name="username"`):
				fields.Set("username", b.user)
				fields.Set("password", b.password)
				form = fields
			case strings.Contains(page, `value="connect"`):
				fields.Set("action", "connect")
				form = fields
			default:
				b.t.Fatalf("%s: unexpected page:\n%s", next, page)
			}
			next = action
		default:
			b.t.Fatalf("%s %s: status %d:\n%s", method, next, resp.StatusCode, page)
		}
	}
	b.t.Fatalf("no redirect to the gateway's callback after 16 steps (last %s)", next)
	return nil
}

// gatewayToken signs user in at the built-in authorization server as client "ide".
func gatewayToken(t *testing.T, base, user, password string) string {
	t.Helper()
	verifier, state := randomURLString(t), randomURLString(t)
	challenge := pkceChallenge(verifier)
	q := url.Values{
		"response_type": {"code"}, "client_id": {"ide"}, "redirect_uri": {oauthIDERedirect},
		"state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		"resource": {base},
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	loc, err := oauthSignIn(ctx, base+"/oauth/authorize?"+q.Encode(), user, password)
	if err != nil {
		t.Fatalf("signing %s in: %v", user, err)
	}
	if loc.Query().Get("state") != state || loc.Query().Get("code") == "" {
		t.Fatalf("signing %s in: redirect %s", user, loc)
	}
	resp, err := http.PostForm(base+"/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {oauthIDERedirect},
		"client_id": {"ide"}, "code_verifier": {verifier}, "resource": {base},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token for %s: status %d, %v", user, resp.StatusCode, err)
	}
	return tr.AccessToken
}

// elicitationOf returns the connect URL of a URLElicitationRequiredError for server saas.
func elicitationOf(t *testing.T, err error) string {
	t.Helper()
	return elicitationFor(t, err, "saas")
}

// elicitationFor returns the connect URL of a URLElicitationRequiredError for server.
func elicitationFor(t *testing.T, err error, server string) string {
	t.Helper()
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("want a URLElicitationRequiredError (-32042), got %v", err)
	}
	var data struct {
		Elicitations []struct {
			Mode, ElicitationID, URL, Message string
		} `json:"elicitations"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || len(data.Elicitations) != 1 {
		t.Fatalf("elicitation data %s: %v", rpcErr.Data, err)
	}
	e := data.Elicitations[0]
	if e.Mode != "url" || e.ElicitationID == "" || !strings.Contains(e.URL, "/"+server+"/connect?link=") {
		t.Fatalf("elicitation %+v: want mode url, an id and the connect page", e)
	}
	return e.URL
}

// goClient connects a go-sdk client declaring URL-mode elicitation, with token.
func goClient(ctx context.Context, mcpURL, token string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "caddymcp-e2e", Version: "1"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
	})
	return client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}}}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
}

func whoami(t *testing.T, cs *mcp.ClientSession) string {
	t.Helper()
	return text(callTool(t, cs, &mcp.CallToolParams{Name: "whoami"}))
}

// tsElicitScript drives the TypeScript SDK client declaring elicitation.url: it
// connects and calls whoami, and prints what happened, the URLElicitationRequiredError
// included.
const tsElicitScript = `
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
const [url, token] = process.argv.slice(1);
const out = {};
const client = new Client({ name: 'caddymcp-e2e-ts', version: '1' }, { capabilities: { elicitation: { url: {} } } });
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: 'Bearer ' + token } } });
try {
  await client.connect(transport);
  const r = await client.callTool({ name: 'whoami', arguments: {} });
  out.text = r.content.map(c => c.text).join('');
} catch (e) {
  if (e instanceof UrlElicitationRequiredError) {
    out.elicitation = e.elicitations;
  } else {
    out.fatal = String(e && e.message || e);
  }
}
console.log(JSON.stringify(out));
await client.close().catch(() => {});
`

type tsOutcome struct {
	Text        string `json:"text"`
	Fatal       string `json:"fatal"`
	Elicitation []struct {
		Mode          string `json:"mode"`
		ElicitationID string `json:"elicitationId"`
		URL           string `json:"url"`
	} `json:"elicitation"`
}

func runTSClient(t *testing.T, mcpURL, token string) tsOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*requestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.NodeBin(), "--input-type=module", "-e", tsElicitScript, mcpURL, token)
	cmd.Dir = testenv.NodeDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("TypeScript client: %v\n%s", err, out)
	}
	var o tsOutcome
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("TypeScript client printed %s: %v", out, err)
	}
	return o
}

// Per-user upstream OAuth with real parts: a real MCP server that takes only tokens of
// its own real authorization server (oidc-provider), behind the gateway. Alice (go-sdk
// client) and bob (TypeScript SDK client) are each sent to the connect page by URL
// elicitation, connect in their browser (the test submits every form), and from then
// on each call reaches the upstream with that user's own subject; tokens are
// refreshed after expiry; a disconnected user is asked to connect again; and neither
// user can complete, replay or hijack a connection, nor use the other's token.
func TestUpstreamOAuth(t *testing.T) {
	t.Parallel()
	const accessTTL = 6 // seconds: short, so that refresh happens during the test
	asIssuer := startUpstreamAS(t, "ACCESS_TTL="+strconv.Itoa(accessTTL))
	saas := startSaaSUpstream(t, asIssuer)
	base, caddy := startCaddy(t, upstreamOAuthCaddyfile, twoUsersEnv("SAAS_URL", saas.URL, "GATEWAY_SECRET", "gateway-secret"))
	mcpURL := base + "/saas/mcp"
	aliceToken := gatewayToken(t, base, "alice", alicePassword)
	bobToken := gatewayToken(t, base, "bob", bobPassword)
	alice := newBrowser(t, "alice", alicePassword)
	bob := newBrowser(t, "bob", bobPassword)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Alice has not connected: the go-sdk client is told where to, by URL elicitation.
	_, err := goClient(ctx, mcpURL, aliceToken)
	aliceLink := elicitationOf(t, err)
	if !strings.HasPrefix(aliceLink, base+"/saas/connect?link=") {
		t.Fatalf("connect link %q is not on the gateway", aliceLink)
	}

	t.Run("another user's link is refused", func(t *testing.T) {
		// Bob signs in at the gateway first (his own link), then opens alice's.
		bobLinkErr := runTSClient(t, mcpURL, bobToken)
		if len(bobLinkErr.Elicitation) != 1 || bobLinkErr.Elicitation[0].Mode != "url" {
			t.Fatalf("TypeScript client: want a UrlElicitationRequiredError, got %+v", bobLinkErr)
		}
		bob.connect(bobLinkErr.Elicitation[0].URL) // signs bob in; the callback is not delivered
		resp, page := bob.do(http.MethodGet, aliceLink, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "another user") {
			t.Fatalf("bob opening alice's link: %d\n%s", resp.StatusCode, page)
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		// A connect POST without the page's CSRF token (another site's form).
		link, _ := url.Parse(aliceLink)
		resp, page := bob.do(http.MethodPost, base+"/saas/connect", url.Values{"link": {link.Query().Get("link")}, "action": {"connect"}, "csrf": {"guess"}})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "CSRF") {
			t.Fatalf("POST without the CSRF token: %d\n%s", resp.StatusCode, page)
		}
	})

	t.Run("bounded input", func(t *testing.T) {
		long := strings.Repeat("a", 9<<10)
		if resp, page := bob.do(http.MethodGet, base+"/saas/connect?link="+long, nil); resp.StatusCode != http.StatusRequestURITooLong || !strings.Contains(page, "too long") {
			t.Fatalf("a 9 KiB connect query: %d\n%s", resp.StatusCode, page)
		}
		if resp, page := bob.do(http.MethodGet, base+"/saas/connect/callback?state=x&code="+long, nil); resp.StatusCode != http.StatusRequestURITooLong {
			t.Fatalf("a 9 KiB callback query: %d\n%s", resp.StatusCode, page)
		}
		if resp, page := bob.do(http.MethodPost, base+"/saas/connect", url.Values{"pad": {strings.Repeat("a", 20<<10)}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "could not be read") {
			t.Fatalf("a 20 KiB connect form: %d\n%s", resp.StatusCode, page)
		}
	})

	// Alice connects; her callback delivered in bob's browser is refused, and then
	// that flow is spent: delivered again in alice's own browser, it is refused too.
	callback := alice.connect(aliceLink)
	if resp, page := bob.do(http.MethodGet, callback.String(), nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("alice's callback in bob's browser: %d\n%s", resp.StatusCode, page)
	}
	if resp, page := alice.do(http.MethodGet, callback.String(), nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "already completed") {
		t.Fatalf("replayed callback: %d\n%s", resp.StatusCode, page)
	}
	if _, err := goClient(ctx, mcpURL, aliceToken); err == nil {
		t.Fatal("alice is connected though her only callbacks were refused")
	}
	// Now properly, in her own browser, once.
	callback = alice.connect(aliceLink)
	resp, page := alice.do(http.MethodGet, callback.String(), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "connected for alice") {
		t.Fatalf("alice's callback: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := alice.do(http.MethodGet, callback.String(), nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("alice's callback replayed after success: %d", resp.StatusCode)
	}

	cs, err := goClient(ctx, mcpURL, aliceToken)
	if err != nil {
		t.Fatalf("alice after connecting: %v", err)
	}
	defer cs.Close()
	first := whoami(t, cs)
	if !strings.HasPrefix(first, "sub=alice ") {
		t.Fatalf("alice's call reached the upstream as %q", first)
	}

	// Bob, still unconnected, is not served with alice's token.
	if o := runTSClient(t, mcpURL, bobToken); len(o.Elicitation) != 1 {
		t.Fatalf("bob before connecting: %+v", o)
	}
	// Bob connects through the link the TypeScript client was given, then calls.
	o := runTSClient(t, mcpURL, bobToken)
	cb := bob.connect(o.Elicitation[0].URL)
	if resp, page := bob.do(http.MethodGet, cb.String(), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's callback: %d\n%s", resp.StatusCode, page)
	}
	if o := runTSClient(t, mcpURL, bobToken); !strings.HasPrefix(o.Text, "sub=bob ") {
		t.Fatalf("bob's call: %+v", o)
	}
	if got := whoami(t, cs); !strings.HasPrefix(got, "sub=alice ") {
		t.Fatalf("alice's call after bob connected reached the upstream as %q", got)
	}

	t.Run("refresh after expiry", func(t *testing.T) {
		time.Sleep(time.Duration(accessTTL)*time.Second + time.Second)
		got := whoami(t, cs)
		if !strings.HasPrefix(got, "sub=alice ") || got == first {
			t.Fatalf("after expiry: %q (before: %q); want alice with a new token", got, first)
		}
	})

	t.Run("upstream refuses a token its refresh renews", func(t *testing.T) {
		// The upstream revokes alice's access token alone: the gateway refreshes it and
		// sends the call again; her client sees only the answer.
		before := whoami(t, cs)
		saas.staleSeen("alice")
		got := whoami(t, cs)
		if !strings.HasPrefix(got, "sub=alice ") || got == before {
			t.Fatalf("after the upstream refused alice's token: %q (before: %q); want alice with a new token", got, before)
		}
		if !strings.Contains(caddy.Output(), "refreshed an upstream token the upstream refused") {
			t.Error("no log entry for the refresh")
		}
	})

	t.Run("upstream refuses a stored token", func(t *testing.T) {
		// Bob's grant is revoked at the upstream: its 401 never reaches his client (which
		// would try to sign in to the gateway again); he is asked to connect, by URL
		// elicitation, and his stored connection is gone.
		saas.rejectSubject("bob")
		o := runTSClient(t, mcpURL, bobToken)
		saas.rejectSubject("")
		if len(o.Elicitation) != 1 || !strings.Contains(o.Elicitation[0].URL, "/saas/connect?link=") {
			t.Fatalf("bob after the upstream refused his token: %+v; want a URL elicitation", o)
		}
		if o := runTSClient(t, mcpURL, bobToken); len(o.Elicitation) != 1 {
			t.Fatalf("bob's refused connection is still used: %+v", o)
		}
		// Alice, mid-session on the go-sdk client: the tool call elicits.
		saas.rejectSubject("alice")
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
		saas.rejectSubject("")
		elicitationOf(t, err)
		cb := bob.connect(o.Elicitation[0].URL)
		if resp, page := bob.do(http.MethodGet, cb.String(), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("bob reconnecting: %d\n%s", resp.StatusCode, page)
		}
		if o := runTSClient(t, mcpURL, bobToken); !strings.HasPrefix(o.Text, "sub=bob ") {
			t.Fatalf("bob after reconnecting: %+v", o)
		}
		callback := alice.connect(aliceLink)
		if resp, page := alice.do(http.MethodGet, callback.String(), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("alice reconnecting: %d\n%s", resp.StatusCode, page)
		}
		if got := whoami(t, cs); !strings.HasPrefix(got, "sub=alice ") {
			t.Fatalf("alice after reconnecting: %q", got)
		}
		if !strings.Contains(caddy.Output(), "the upstream refused the caller's token; forgotten") {
			t.Error("no log entry for the refused token")
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		resp, page := alice.do(http.MethodGet, aliceLink, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("connect page: %d\n%s", resp.StatusCode, page)
		}
		f := hiddenFields(page)
		f.Set("action", "disconnect")
		f.Set("server", "saas")
		if resp, page := alice.do(http.MethodPost, base+"/saas/connect", f); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Disconnected") {
			t.Fatalf("disconnect: %d\n%s", resp.StatusCode, page)
		}
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
		elicitationOf(t, err)
		if o := runTSClient(t, mcpURL, bobToken); !strings.HasPrefix(o.Text, "sub=bob ") {
			t.Fatalf("bob after alice disconnected: %+v", o)
		}
	})

	// Nothing of the upstream tokens reached the log; the upstream never saw the
	// gateway's own tokens.
	tokens, refused := saas.seen()
	if refused != 0 {
		t.Errorf("the upstream refused %d tokens the gateway sent", refused)
	}
	out := caddy.Output()
	for _, tok := range tokens {
		if tok == aliceToken || tok == bobToken {
			t.Errorf("a gateway token reached the upstream")
		}
		if strings.Contains(out, tok) {
			t.Errorf("an upstream token appears in caddy's log")
		}
	}
	if len(tokens) == 0 {
		t.Error("the upstream saw no token")
	}
}

func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// An upstream that serves the handshake without a token: an unconnected user's client
// gets its session through the gateway (initialize passes upstream without a token),
// and the first tool call carries the URL elicitation; after connecting, the same
// session's calls carry the user's token. Both real clients (go-sdk, TypeScript SDK).
func TestUpstreamOAuthOpenHandshake(t *testing.T) {
	t.Parallel()
	asIssuer := startUpstreamAS(t)
	saas := startSaaSUpstream(t, asIssuer)
	saas.openHandshake.Store(true)
	base, _ := startCaddy(t, upstreamOAuthCaddyfile, twoUsersEnv("SAAS_URL", saas.URL, "GATEWAY_SECRET", "gateway-secret"))
	mcpURL := base + "/saas/mcp"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	aliceToken := gatewayToken(t, base, "alice", alicePassword)
	bobToken := gatewayToken(t, base, "bob", bobPassword)

	cs, err := goClient(ctx, mcpURL, aliceToken)
	if err != nil {
		t.Fatalf("go-sdk client of an unconnected user: no session: %v", err)
	}
	defer cs.Close()
	if saas.handshakes.Load() == 0 {
		t.Fatal("the handshake did not reach the upstream")
	}
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	link := elicitationOf(t, err)
	alice := newBrowser(t, "alice", alicePassword)
	cb := alice.connect(link)
	if resp, page := alice.do(http.MethodGet, cb.String(), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice's callback: %d\n%s", resp.StatusCode, page)
	}
	if got := whoami(t, cs); !strings.HasPrefix(got, "sub=alice ") {
		t.Fatalf("alice's call in the same session after connecting: %q", got)
	}

	// The TypeScript SDK: connect succeeds, the tool call throws UrlElicitationRequiredError.
	before := saas.handshakes.Load()
	o := runTSClient(t, mcpURL, bobToken)
	if o.Fatal != "" || len(o.Elicitation) != 1 || o.Elicitation[0].Mode != "url" {
		t.Fatalf("TypeScript client of an unconnected user: %+v", o)
	}
	if saas.handshakes.Load() == before {
		t.Fatal("the TypeScript client's handshake did not reach the upstream")
	}
	// 2026-07-28: a tools/call of a client with URL elicitation gets the input-required
	// result carrying the elicitation.
	call := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{` +
		`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},` +
		`"io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}}}}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL, strings.NewReader(call))
	for k, v := range map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
		"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "whoami", "Authorization": "Bearer " + bobToken} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ir struct {
		Result struct {
			ResultType    string `json:"resultType"`
			InputRequests map[string]struct {
				Method string            `json:"method"`
				Params map[string]string `json:"params"`
			} `json:"inputRequests"`
		} `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &ir) != nil || ir.Result.ResultType != "input_required" ||
		ir.Result.InputRequests["connect"].Method != "elicitation/create" || ir.Result.InputRequests["connect"].Params["mode"] != "url" ||
		!strings.Contains(ir.Result.InputRequests["connect"].Params["url"], "/saas/connect?link=") {
		t.Fatalf("2026-07-28 tools/call of an unconnected user: %d %s", resp.StatusCode, raw)
	}

	bob := newBrowser(t, "bob", bobPassword)
	cb = bob.connect(o.Elicitation[0].URL)
	if resp, page := bob.do(http.MethodGet, cb.String(), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's callback: %d\n%s", resp.StatusCode, page)
	}
	if o := runTSClient(t, mcpURL, bobToken); !strings.HasPrefix(o.Text, "sub=bob ") {
		t.Fatalf("bob after connecting: %+v", o)
	}
}

// twoUsersEnv is the environment of a Caddyfile with twoUsersAuthServer: the
// registry's key, alice's and bob's password hashes, and more (name, value pairs).
func twoUsersEnv(more ...string) map[string]string {
	aliceHash, _ := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	bobHash, _ := bcrypt.GenerateFromPassword([]byte(bobPassword), bcrypt.MinCost)
	env := map[string]string{
		"MCP_ENCRYPTION_KEY": "6d0c3a1e9b2f4c5d8e7f60718293a4b5c6d7e8f9012345678901234567890abc",
		"ALICE_HASH":         string(aliceHash),
		"BOB_HASH":           string(bobHash),
	}
	for i := 0; i+1 < len(more); i += 2 {
		env[more[i]] = more[i+1]
	}
	return env
}

// twoUsersAuthServer is the built-in authorization server of the upstream-OAuth tests:
// alice and bob (group eng) and the pre-registered client "ide".
const twoUsersAuthServer = `	mcp_oauth_server http://127.0.0.1:{{PORT}}/oauth {
		resource http://127.0.0.1:{{PORT}}
		client ide {
			redirect_uri ` + oauthIDERedirect + `
			name "Test IDE"
		}
		user alice {env.ALICE_HASH} {
			groups eng
		}
		user bob {env.BOB_HASH} {
			groups eng
		}
	}
`

// upstreamOAuthSite is the gateway's site of the upstream-OAuth tests: the built-in
// server, and a policy letting eng use every tool of every server.
const upstreamOAuthSite = `:{{PORT}} {
` + twoUsersAuthServer + `	mcp_gateway {
		auth {
			resource http://127.0.0.1:{{PORT}}
			policy {
				group eng servers/eng
				scope servers/eng {
					rule * {
						methods initialize notifications/initialized ping tools/list tools/call
						tools *
					}
				}
			}
		}
	}
}
`
