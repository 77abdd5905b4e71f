package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// oauthServerCaddyfile runs the built-in authorization server (mcp_oauth_server) at
// /oauth of the gateway's own site, with one local user (alice, group eng) and two
// pre-registered public clients: "ide" with one fixed loopback redirect, and
// "conformance" with none (any loopback redirect, RFC 8252). The gateway trusts the
// issuer with no line of its own; its policy lets eng call only test_simple_text of the
// everything server. A second route, "other", reaches the same upstream, so that a token
// bound to other's MCP URL (RFC 8707) can be shown refused on everything. cimd_allow
// admits loopback so that the test's client metadata document can be fetched.
const oauthServerCaddyfile = `{
	admin {{ADMIN}}
	mcp_registry {
		storage bbolt {{DB}}
		encryption_key {$MCP_ENCRYPTION_KEY}
		disable_builtin_server
		server everything {$EVERYTHING_URL}
		server other {$EVERYTHING_URL}
	}
}

:{{PORT}} {
	mcp_oauth_server http://127.0.0.1:{{PORT}}/oauth {
		resource http://127.0.0.1:{{PORT}}
		client ide {
			redirect_uri ` + oauthIDERedirect + `
			name "Test IDE"
		}
		client conformance {
			name "MCP conformance suite"
		}
		user alice {env.ALICE_HASH} {
			groups eng
		}
		cimd_allow 127.0.0.0/8
	}
	mcp_oauth_metadata {
		resource http://127.0.0.1:{{PORT}}
		authorization_servers http://127.0.0.1:{{PORT}}/oauth
	}
	mcp_gateway {
		auth {
			resource http://127.0.0.1:{{PORT}}
			policy {
				group eng servers/eng
				scope servers/eng {
					rule * {
						methods initialize notifications/initialized ping tools/list
					}
					rule everything {
						methods tools/call
						tools test_simple_text
					}
				}
			}
		}
	}
}
`

const (
	// oauthIDERedirect is the "ide" client's one registered redirect URI. Nothing
	// listens there: the test reads the code from the redirect that points at it.
	oauthIDERedirect = "http://127.0.0.1:38123/callback"
	alicePassword    = "alice's e2e password"
	allowedTool      = "test_simple_text"
	deniedTool       = "test_image_content"
)

// The built-in authorization server in the real binary, driven by real clients with the
// login form submitted by the test: the go-sdk OAuth client signs alice in through DCR,
// a pre-registered client and a client ID metadata document, and calls through the
// gateway exactly what her group is granted; a token bound to another server's URL is
// refused; the conformance suite's authorization-server scenarios pass.
func TestOAuthServer(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	everything := testenv.StartEverythingServer(t, false)
	cimdDoc := startCIMDServer(t)
	base, _ := startCaddy(t, oauthServerCaddyfile, map[string]string{
		"MCP_ENCRYPTION_KEY": "6d0c3a1e9b2f4c5d8e7f60718293a4b5c6d7e8f9012345678901234567890abc",
		"EVERYTHING_URL":     everything.URL,
		"ALICE_HASH":         string(hash),
		// The CIMD fetcher trusts the system roots: here, only the test's CA.
		"SSL_CERT_FILE": cimdDoc.caFile,
	})
	issuer := base + "/oauth"
	mcpURL := base + "/everything/mcp"
	raw := newHTTPClient(t)

	// loginAndCall signs alice in with handler's client registration, calls the allowed
	// tool through the gateway, and checks that the denied one is refused.
	loginAndCall := func(t *testing.T, cfg *auth.AuthorizationCodeHandlerConfig) {
		t.Helper()
		var logins int
		cfg.AuthorizationCodeFetcher = func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			logins++
			loc, err := oauthSignIn(ctx, args.URL, "alice", alicePassword)
			if err != nil {
				return nil, err
			}
			q := loc.Query()
			if q.Get("error") != "" || q.Get("code") == "" {
				return nil, fmt.Errorf("authorization response %s has no code", loc)
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		}
		handler, err := auth.NewAuthorizationCodeHandler(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cs := connect(t, &mcp.StreamableClientTransport{Endpoint: mcpURL, OAuthHandler: handler}, nil, "")
		if logins != 1 {
			t.Errorf("%d logins, want 1", logins)
		}
		res := callTool(t, cs, &mcp.CallToolParams{Name: allowedTool})
		if res.IsError || text(res) == "" {
			t.Errorf("%s: isError=%v text %q", allowedTool, res.IsError, text(res))
		}

		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		ts, err := handler.TokenSource(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ts.Token()
		if err != nil {
			t.Fatal(err)
		}
		claims := jwtClaims(t, tok.AccessToken)
		if claims["aud"] != mcpURL || claims["iss"] != issuer || claims["sub"] != "alice" {
			t.Errorf("access token claims %v, want aud %q, iss %q, sub alice", claims, mcpURL, issuer)
		}
		if g, _ := json.Marshal(claims["groups"]); string(g) != `["eng"]` {
			t.Errorf("access token groups %s, want [\"eng\"]", g)
		}
		// The same token, asking for a tool alice's group is not granted.
		h := mcpHeader(cs.ID(), "")
		h.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, body := send(t, raw, http.MethodPost, mcpURL, h,
			`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"`+deniedTool+`","arguments":{}}}`)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("tools/call %s: status %d, want 403: %s", deniedTool, resp.StatusCode, body)
		}
		var msg rpcMessage
		if err := json.Unmarshal(body, &msg); err != nil || msg.Error == nil || string(msg.ID) != "7" || !strings.Contains(msg.Error.Message, deniedTool) {
			t.Errorf("tools/call %s: body %s, want a JSON-RPC error for id 7 naming the tool", deniedTool, body)
		}
	}

	t.Run("go-sdk client through DCR", func(t *testing.T) {
		redirect := "http://127.0.0.1:38124/callback"
		loginAndCall(t, &auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs:            []string{redirect},
				TokenEndpointAuthMethod: "none",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ClientName:              "go-sdk e2e (DCR)",
			}},
			RedirectURL: redirect,
		})
	})

	t.Run("go-sdk client pre-registered", func(t *testing.T) {
		loginAndCall(t, &auth.AuthorizationCodeHandlerConfig{
			PreregisteredClient: &oauthex.ClientCredentials{ClientID: "ide", Issuer: issuer},
			RedirectURL:         oauthIDERedirect,
		})
	})

	t.Run("go-sdk client through a client ID metadata document", func(t *testing.T) {
		before := cimdDoc.fetches()
		loginAndCall(t, &auth.AuthorizationCodeHandlerConfig{
			ClientIDMetadataDocumentConfig: &auth.ClientIDMetadataDocumentConfig{URL: cimdDoc.clientID},
			RedirectURL:                    cimdRedirect,
		})
		if cimdDoc.fetches() == before {
			t.Errorf("the server never fetched %s", cimdDoc.clientID)
		}
	})

	t.Run("TypeScript SDK client through DCR", func(t *testing.T) {
		res := runTSOAuthClient(t, mcpURL, "alice", alicePassword, allowedTool, deniedTool)
		if !res.SignedIn || res.Iss != issuer {
			t.Errorf("signed in %v, iss %q; want a token and iss %q", res.SignedIn, res.Iss, issuer)
		}
		if !slices.Equal(res.Tools, []string{allowedTool}) {
			t.Errorf("tools/list %v, want only %s (the list is filtered to alice's grant)", res.Tools, allowedTool)
		}
		if c := res.Calls[allowedTool]; !c.OK {
			t.Errorf("%s: %+v", allowedTool, c)
		}
		if c := res.Calls[deniedTool]; c.OK || !strings.Contains(c.Error, deniedTool) {
			t.Errorf("%s: %+v, want a JSON-RPC error naming it", deniedTool, c)
		}
	})

	t.Run("mcp-remote signs in through the browser", func(t *testing.T) {
		// mcp-remote (the TypeScript SDK's OAuth client behind a stdio proxy, as Claude
		// Desktop runs it) opens $BROWSER through xdg-open; the fake browser signs alice
		// in and delivers the code to mcp-remote's loopback callback.
		cs := mcpRemoteSession(t, mcpURL, "E2E_USER=alice", "E2E_PASSWORD="+alicePassword)
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: deniedTool}); err == nil || !strings.Contains(err.Error(), deniedTool) {
			t.Errorf("%s through mcp-remote: %v, want a JSON-RPC error naming it", deniedTool, err)
		}
	})

	t.Run("token for another server's URL is refused", func(t *testing.T) {
		otherURL := base + "/other/mcp"
		token := oauthServerToken(t, issuer, "ide", oauthIDERedirect, otherURL)
		if aud := jwtClaims(t, token)["aud"]; aud != otherURL {
			t.Fatalf("token aud %v, want %q", aud, otherURL)
		}
		initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
		h := mcpHeader("", "")
		h.Set("Authorization", "Bearer "+token)
		// Valid where it is meant to be used…
		if resp, body := send(t, raw, http.MethodPost, otherURL, h, initialize); resp.StatusCode != http.StatusOK {
			t.Fatalf("initialize on %s with its own token: status %d: %s", otherURL, resp.StatusCode, body)
		}
		// …and nowhere else.
		resp, body := send(t, raw, http.MethodPost, mcpURL, h, initialize)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("initialize on %s with a token for %s: status %d, want 401: %s", mcpURL, otherURL, resp.StatusCode, body)
		}
		if ch := challenge(t, resp); ch["error"] != "invalid_token" {
			t.Errorf("WWW-Authenticate %q, want error=invalid_token", resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("conformance authorization scenarios", func(t *testing.T) {
		for _, resource := range []string{"", mcpURL} {
			res := runAuthorizationConformance(t, issuer, "conformance", resource)
			_, metadata := res.scenarios["authorization-server-metadata-endpoint"]
			_, codeGrant := res.scenarios["authorization-code-grant"]
			if res.total == 0 || res.failed != 0 || len(res.scenarios) != 2 || !metadata || !codeGrant {
				t.Errorf("conformance authorization (resource %q): %d passed, %d failed, scenarios %v; output:\n%s",
					resource, res.total, res.failed, res.scenarios, res.output)
				continue
			}
			t.Logf("conformance authorization (resource %q): %d passed, 0 failed: %v", resource, res.total, res.scenarios)
		}
	})
}

// oauthSignIn plays the browser: from an authorization URL of the built-in server it
// submits the login form as user (keeping the session cookie and the CSRF token) and
// approves the consent page, and returns the redirect to the client.
func oauthSignIn(ctx context.Context, authorizeURL, user, password string) (*url.URL, error) {
	return browserSignIn(ctx, authorizeURL, signInAs{user: user, password: password})
}

// signInAs is who the browser signs in as, and how.
type signInAs struct {
	user, password string
	// provider is the text of an identity provider's "Sign in with …" button to sign
	// in through instead of the password form; its dev login takes any password.
	provider string
	// redirect, when set, is the client's redirect URI: the browser follows every
	// other redirect until it is sent there. Unset: the first redirect is the answer.
	redirect string
}

// browserSignIn plays the browser from an authorization URL of the built-in server:
// the password form, or an identity provider's button and the provider's own login
// and consent forms; then the built-in server's consent page. It returns the
// redirect to the client.
func browserSignIn(ctx context.Context, authorizeURL string, as signInAs) (*url.URL, error) {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next, err := url.Parse(authorizeURL)
	if err != nil {
		return nil, err
	}
	var button *regexp.Regexp
	if as.provider != "" {
		button = regexp.MustCompile(`<a class="button" href="([^"]+)">Sign in with ` + regexp.QuoteMeta(as.provider) + `</a>`)
	}
	var form url.Values
	for step := range 16 {
		method, body := http.MethodGet, io.Reader(nil)
		if form != nil {
			method, body = http.MethodPost, strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, next.String(), body)
		if err != nil {
			return nil, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		form = nil
		switch {
		case resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound:
			loc, err := resp.Location()
			if err != nil || as.redirect == "" || strings.HasPrefix(loc.String(), as.redirect+"?") {
				return loc, err
			}
			next = loc
			continue
		case resp.StatusCode != http.StatusOK:
			return nil, fmt.Errorf("step %d: %s %s: status %d: %s", step, method, next, resp.StatusCode, page)
		}
		if m := findSubmatch(button, page); m != nil {
			if next, err = next.Parse(html.UnescapeString(string(m[1]))); err != nil {
				return nil, err
			}
			continue
		}
		action := oauthFormAction.FindSubmatch(page)
		if action == nil {
			return nil, fmt.Errorf("step %d: %s shows no form:\n%s", step, next, page)
		}
		if next, err = next.Parse(html.UnescapeString(string(action[1]))); err != nil {
			return nil, err
		}
		if p := idpFormPrompt.FindSubmatch(page); p != nil { // the provider's own pages
			form = url.Values{"prompt": {string(p[1])}}
			if string(p[1]) == "login" {
				form.Set("login", as.user)
				form.Set("password", "any password")
			}
			continue
		}
		form = url.Values{}
		for _, m := range oauthHiddenField.FindAllSubmatch(page, -1) {
			form.Set(string(m[1]), string(m[2]))
		}
		if form.Get("request") == "" || form.Get("csrf") == "" {
			return nil, fmt.Errorf("step %d: %s shows no form with request and csrf fields:\n%s", step, next, page)
		}
		switch {
		case strings.Contains(string(page), `name="username"`):
			form.Set("action", "login")
			form.Set("username", as.user)
			form.Set("password", as.password)
		case strings.Contains(string(page), `value="approve"`):
			form.Set("action", "approve")
		default:
			return nil, fmt.Errorf("step %d: neither a login nor a consent page:\n%s", step, page)
		}
	}
	return nil, fmt.Errorf("no redirect to the client after 16 steps (last %s)", next)
}

// findSubmatch is re.FindSubmatch, with no match for no re.
func findSubmatch(re *regexp.Regexp, b []byte) [][]byte {
	if re == nil {
		return nil
	}
	return re.FindSubmatch(b)
}

var (
	oauthHiddenField = regexp.MustCompile(`name="(request|csrf)" value="([^"]*)"`)
	oauthFormAction  = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	idpFormPrompt    = regexp.MustCompile(`name="prompt" value="(\w+)"`)
)

// oauthServerToken signs alice in at the built-in server as the public client clientID
// (code flow, PKCE S256, resource bound by RFC 8707) and returns the access token.
func oauthServerToken(t *testing.T, issuer, clientID, redirect, resource string) string {
	t.Helper()
	verifier, state := randomURLString(t), randomURLString(t)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirect},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"resource":              {resource},
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	loc, err := oauthSignIn(ctx, issuer+"/authorize?"+q.Encode(), "alice", alicePassword)
	if err != nil {
		t.Fatalf("signing in: %v", err)
	}
	got := loc.Query()
	if !strings.HasPrefix(loc.String(), redirect+"?") || got.Get("state") != state || got.Get("iss") != issuer || got.Get("code") == "" {
		t.Fatalf("authorization response %s; want %s with a code, state %q and iss %q", loc, redirect, state, issuer)
	}
	return oidcToken(t, newHTTPClient(t), issuer, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {got.Get("code")},
		"redirect_uri":  {redirect},
		"client_id":     {clientID},
		"code_verifier": {verifier},
		"resource":      {resource},
	})
}

// cimdRedirect is the redirect URI the test's client metadata document lists.
const cimdRedirect = "http://127.0.0.1:38125/callback"

// cimdServer serves a client ID metadata document over https, with a certificate of a
// CA the test makes caddy trust (caFile).
type cimdServer struct {
	clientID string // the document's URL, which is its client_id
	caFile   string
	hits     chan struct{}
}

func (s *cimdServer) fetches() int { return len(s.hits) }

func startCIMDServer(t *testing.T) *cimdServer {
	s := &cimdServer{hits: make(chan struct{}, 100)}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/client.json" {
			http.NotFound(w, r)
			return
		}
		select {
		case s.hits <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"client_id":                  s.clientID,
			"client_name":                "go-sdk e2e (CIMD)",
			"redirect_uris":              []string{cimdRedirect},
			"grant_types":                []string{"authorization_code", "refresh_token"},
			"response_types":             []string{"code"},
			"token_endpoint_auth_method": "none",
		})
	}))
	t.Cleanup(ts.Close)
	s.clientID = ts.URL + "/client.json"
	s.caFile = filepath.Join(t.TempDir(), "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(s.caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// authorizationConformance is the outcome of one `conformance authorization` run.
type authorizationConformance struct {
	total, failed int
	scenarios     map[string]string // scenario -> "N passed, M failed"
	output        string
}

var (
	conformanceAuthURL  = regexp.MustCompile(`^https?://\S+/authorize\?\S+$`)
	conformanceScenario = regexp.MustCompile(`^[✓✗] (\S+): (\d+ passed, \d+ failed)$`)
	conformanceTotal    = regexp.MustCompile(`^Total: (\d+) passed, (\d+) failed$`)
)

// runAuthorizationConformance runs the conformance suite's authorization-server
// scenarios (metadata endpoint, PKCE code grant) against issuer for the public client
// clientID. The suite prints an authorization URL and waits for a browser; the test
// signs alice in at that URL and then delivers the redirect to the suite's callback
// listener itself.
func runAuthorizationConformance(t *testing.T, issuer, clientID, resource string) authorizationConformance {
	t.Helper()
	testenv.RequireTestDeps(t)
	script, err := testenv.ConformanceCLI(testenv.ConformanceNext)
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	args := []string{script, "authorization", "--url", issuer, "--client-id", clientID, "--port", strconv.Itoa(port)}
	if resource != "" {
		args = append(args, "--resource", resource)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.NodeBin(), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0", "NODE_NO_WARNINGS=1")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		waited <- err
	}()
	res := authorizationConformance{scenarios: map[string]string{}}
	var out strings.Builder
	var loginErr error
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := strings.TrimSpace(ansiEscapes.ReplaceAllString(sc.Text(), ""))
		out.WriteString(line + "\n")
		switch {
		case conformanceAuthURL.MatchString(line):
			loginErr = deliverConformanceLogin(ctx, line, port)
		case conformanceScenario.MatchString(line):
			m := conformanceScenario.FindStringSubmatch(line)
			res.scenarios[m[1]] = m[2]
		case conformanceTotal.MatchString(line):
			m := conformanceTotal.FindStringSubmatch(line)
			res.total, _ = strconv.Atoi(m[1])
			res.failed, _ = strconv.Atoi(m[2])
		}
	}
	io.Copy(io.Discard, pr)
	waitErr := <-waited
	res.output = out.String()
	if loginErr != nil {
		t.Fatalf("conformance authorization: driving the login: %v; output:\n%s", loginErr, res.output)
	}
	if ctx.Err() != nil || waitErr != nil {
		t.Errorf("conformance authorization %v: %v (context: %v); output:\n%s", args[1:], waitErr, ctx.Err(), res.output)
	}
	return res
}

var ansiEscapes = regexp.MustCompile("\x1b\\[[0-9;]*m")

// deliverConformanceLogin signs alice in at the suite's authorization URL and GETs the
// redirect, which lands on the suite's callback listener on 127.0.0.1:port.
func deliverConformanceLogin(ctx context.Context, authorizeURL string, port int) error {
	loc, err := oauthSignIn(ctx, authorizeURL, "alice", alicePassword)
	if err != nil {
		return err
	}
	want := "http://127.0.0.1:" + strconv.Itoa(port) + "/callback?"
	if !strings.HasPrefix(loc.String(), want) || loc.Query().Get("code") == "" {
		return fmt.Errorf("authorization response %s, want %s with a code", loc, want)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return err
	}
	// The callback listener starts right after the URL is printed; retry briefly.
	var resp *http.Response
	for try := 0; ; try++ {
		if resp, err = http.DefaultClient.Do(req); err == nil || try == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("delivering the code to the suite: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the suite's callback answered %d", resp.StatusCode)
	}
	return nil
}

// tsOAuthResult is what testdata/node/ts-oauth-client.mjs reports.
type tsOAuthResult struct {
	SignedIn bool     `json:"signedIn"`
	Iss      string   `json:"iss"`
	Tools    []string `json:"tools"`
	Calls    map[string]struct {
		OK    bool   `json:"ok"`
		Text  string `json:"text"`
		Error string `json:"error"`
	} `json:"calls"`
	Fatal string `json:"fatal"`
}

// runTSOAuthClient signs user in with the TypeScript SDK's OAuth client (DCR, PKCE,
// resource indicator) and calls tools at mcpURL.
func runTSOAuthClient(t *testing.T, mcpURL, user, password string, tools ...string) tsOAuthResult {
	t.Helper()
	return runTSOAuthClientEnv(t, nil, mcpURL, user, password, tools...)
}

// runTSOAuthClientEnv is runTSOAuthClient with variables added to the client's
// environment (SIGN_IN_PROVIDER).
func runTSOAuthClientEnv(t *testing.T, env []string, mcpURL, user, password string, tools ...string) tsOAuthResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{filepath.Join(testenv.NodeDir(), "ts-oauth-client.mjs"), mcpURL, user, password}, tools...)
	cmd := exec.CommandContext(ctx, testenv.NodeBin(), args...)
	cmd.Dir = testenv.NodeDir()
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.Output()
	var res tsOAuthResult
	if jerr := json.Unmarshal(stdout, &res); jerr != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ts-oauth-client.mjs: %v; stdout %q; stderr %s", err, stdout, stderr)
	}
	if res.Fatal != "" {
		t.Fatalf("TypeScript SDK OAuth client: %s", res.Fatal)
	}
	return res
}

var newTokenOnPage = regexp.MustCompile(`<code id="new-token">([^<]+)</code>`)

// accountToken signs user in on the built-in server's account page and mints a
// personal gateway token valid for one day, as the README shows for curl.
func accountToken(t *testing.T, issuer, user, password string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Jar: jar, Timeout: requestTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var page func(resp *http.Response, err error) string
	page = func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode == http.StatusSeeOther {
			loc, _ := resp.Location()
			return page(c.Get(loc.String()))
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s %s: %d %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, b)
		}
		return string(b)
	}
	csrfOf := func(body string) string {
		m := oauthHiddenField.FindStringSubmatch(body)
		if m == nil || m[1] != "csrf" {
			t.Fatalf("no csrf field on the page:\n%s", body)
		}
		return m[2]
	}
	iu, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	signin := page(c.Get(issuer + "/account")) // redirected to the sign-in page
	account := page(c.PostForm(issuer+"/login", url.Values{"csrf": {csrfOf(signin)}, "return_to": {iu.Path + "/account"}, "username": {user}, "password": {password}}))
	if !strings.Contains(account, "Signed in as <b>"+user+"</b>") {
		t.Fatalf("after sign-in, not the account page of %s:\n%s", user, account)
	}
	minted := page(c.PostForm(issuer+"/account", url.Values{"csrf": {csrfOf(account)}, "action": {"mint"}, "name": {"e2e curl"}, "days": {"1"}}))
	m := newTokenOnPage.FindStringSubmatch(minted)
	if m == nil {
		t.Fatalf("no new token on the page:\n%s", minted)
	}
	return m[1]
}

// lockedWriter serialises writes of a process's output with reads of it.
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// mcpRemoteSession runs mcp-remote (the TypeScript SDK's OAuth client behind a stdio
// proxy, as Claude Desktop runs it) against mcpURL, with the fake browser on $BROWSER
// signing in as env says (E2E_USER, E2E_PASSWORD or E2E_IDP), checks that it lists
// only allowedTool and calls it, and returns the session.
func mcpRemoteSession(t *testing.T, mcpURL string, env ...string) *mcp.ClientSession {
	t.Helper()
	home := t.TempDir() // mcp-remote keeps its tokens under ~/.mcp-auth
	stderr := &lockedWriter{w: new(strings.Builder)}
	cmd := exec.Command(testenv.NodeBin(), filepath.Join(testenv.NodeDir(), "node_modules", "mcp-remote", "dist", "proxy.js"), mcpURL)
	cmd.Dir = testenv.NodeDir()
	cmd.Env = append(append(os.Environ(), "HOME="+home, "BROWSER="+testenv.NodeBin()+" "+filepath.Join(testenv.NodeDir(), "fake-browser.mjs")), env...)
	cmd.Stderr = stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mcp-remote's stderr:\n%s", stderr.String())
		}
	})
	cs := connect(t, &mcp.CommandTransport{Command: cmd}, nil, "")
	if got := toolNames(t, cs); !slices.Equal(got, []string{allowedTool}) {
		t.Errorf("tools/list through mcp-remote: %v, want only %s", got, allowedTool)
	}
	if res := callTool(t, cs, &mcp.CallToolParams{Name: allowedTool}); res.IsError || text(res) == "" {
		t.Errorf("%s through mcp-remote: isError=%v %q", allowedTool, res.IsError, text(res))
	}
	return cs
}
