package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// oidcRedirectURI is the public client's registered redirect URI. It is never dialled:
// the login reads the code from the Location header that points at it.
const oidcRedirectURI = "http://127.0.0.1:1/callback"

// startOIDCProvider runs testdata/oidc/provider.mjs with the public client's redirect
// URI and returns its issuer.
func startOIDCProvider(t *testing.T, env ...string) string {
	t.Helper()
	return testenv.StartOIDCProvider(t, append([]string{"REDIRECT_URIS=" + oidcRedirectURI}, env...)...)
}

// oidcLogin logs user in at issuer without a browser — authorization code with PKCE
// (S256) for the public client, carrying resource (RFC 8707) — by keeping the provider's
// cookies and submitting its dev login and consent forms, and returns the access token.
func oidcLogin(t *testing.T, issuer, user, resource string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{
		Transport:     tr,
		Jar:           jar,
		Timeout:       requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	verifier := randomURLString(t)
	sum := sha256.Sum256([]byte(verifier))
	state := randomURLString(t)
	q := url.Values{
		"client_id":             {"mcp-public"},
		"response_type":         {"code"},
		"redirect_uri":          {oidcRedirectURI},
		"scope":                 {"openid groups mcp"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"state":                 {state},
		"resource":              {resource},
	}
	next, _ := url.Parse(issuer + "/auth?" + q.Encode())
	var form url.Values
	formAction := regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	formPrompt := regexp.MustCompile(`name="prompt" value="(\w+)"`)
	var code string
	for step := 0; code == ""; step++ {
		if step == 12 {
			t.Fatalf("login of %s: no code after %d steps (last URL %s)", user, step, next)
		}
		method, body := http.MethodGet, io.Reader(nil)
		if form != nil {
			method, body = http.MethodPost, strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, next.String(), body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("login of %s: %s %s: %v", user, method, next, err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		form = nil
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				t.Fatalf("login of %s: %d without Location: %v", user, resp.StatusCode, err)
			}
			if !strings.HasPrefix(loc.String(), oidcRedirectURI) {
				next = loc
				continue
			}
			got := loc.Query()
			if got.Get("error") != "" || got.Get("state") != state || got.Get("iss") != issuer {
				t.Fatalf("login of %s: redirect %s; want a code, state %q and iss %q", user, loc, state, issuer)
			}
			code = got.Get("code")
		case resp.StatusCode == http.StatusOK:
			a, p := formAction.FindSubmatch(page), formPrompt.FindSubmatch(page)
			if a == nil || p == nil {
				t.Fatalf("login of %s: %s shows no login or consent form:\n%s", user, next, page)
			}
			action, err := next.Parse(html.UnescapeString(string(a[1])))
			if err != nil {
				t.Fatal(err)
			}
			switch prompt := string(p[1]); prompt {
			case "login":
				form = url.Values{"prompt": {"login"}, "login": {user}, "password": {"any password"}}
			case "consent":
				form = url.Values{"prompt": {"consent"}}
			default:
				t.Fatalf("login of %s: unexpected prompt %q", user, prompt)
			}
			next = action
		default:
			t.Fatalf("login of %s: %s %s: status %d:\n%s", user, method, next, resp.StatusCode, page)
		}
	}
	return oidcToken(t, c, issuer, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {oidcRedirectURI},
		"client_id":     {"mcp-public"},
		"code_verifier": {verifier},
		"resource":      {resource},
	})
}

// oidcToken posts a token request and returns the access token.
func oidcToken(t *testing.T, c *http.Client, issuer string, form url.Values) string {
	t.Helper()
	resp, err := c.PostForm(issuer+"/token", form)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("token request (%s): status %d: %s", form.Get("grant_type"), resp.StatusCode, b)
	}
	return tok.AccessToken
}

func randomURLString(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b) // 43 characters: a valid PKCE verifier
}

// jwtClaims decodes (without verifying) the payload of a JWT.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT: %.40q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err == nil {
		err = json.Unmarshal(b, &claims)
	}
	if err != nil {
		t.Fatalf("access token payload: %v", err)
	}
	return claims
}

// bearer adds an Authorization header to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(req)
}

func bearerClient(t *testing.T, token string) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: bearer{token: token, base: tr}}
}

var wwwAuthParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// challenge parses a Bearer WWW-Authenticate header into its parameters.
func challenge(t *testing.T, resp *http.Response) map[string]string {
	t.Helper()
	h := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(h, "Bearer ") {
		t.Fatalf("status %d: WWW-Authenticate %q, want a Bearer challenge", resp.StatusCode, h)
	}
	params := map[string]string{}
	for _, m := range wwwAuthParam.FindAllStringSubmatch(h, -1) {
		params[m[1]] = m[2]
	}
	return params
}

// The oidc.Caddyfile example, unchanged but for its ports and storage path, in front of
// the npm everything server, with a real OpenID provider (oidc-provider) issuing RS256
// JWT access tokens whose "groups" claim testdata/policy/scopes.yml maps to scopes:
// users log in with the code flow + PKCE + resource, and the gateway lets each see and
// call only what the policy grants.
func TestOIDC(t *testing.T) {
	t.Parallel()
	issuer := startOIDCProvider(t, "SERVICE_GROUPS=readers")
	everything := testenv.StartServerEverythingNPM(t, testenv.NPMStreamableHTTP)

	cfg := exampleCaddyfile(t, "oidc.Caddyfile")
	// The resource is the gateway's own origin, whose port only startCaddy knows.
	resourceVar := regexp.MustCompile(`\{\$MCP_RESOURCE(:[^}]*)?\}`)
	if n := len(resourceVar.FindAllStringIndex(cfg, -1)); n == 0 {
		t.Fatalf("oidc.Caddyfile does not use {$MCP_RESOURCE}:\n%s", cfg)
	}
	cfg = resourceVar.ReplaceAllLiteralString(cfg, "http://127.0.0.1:{{PORT}}")
	base, _ := startCaddy(t, cfg, map[string]string{
		"OIDC_ISSUER":     issuer,
		"EVERYTHING_URL":  everything.URL,
		"MCP_SCOPES_FILE": filepath.Join(testenv.RepoRoot(), "testdata", "policy", "scopes.yml"),
	})
	mcpURL := base + "/everything/mcp"
	prmURL := base + "/.well-known/oauth-protected-resource/everything/mcp"
	raw := newHTTPClient(t)
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	withToken := func(h http.Header, token string) http.Header {
		h.Set("Authorization", "Bearer "+token)
		return h
	}

	// Every tool the upstream has, asked directly.
	allTools := toolNames(t, connect(t, &mcp.StreamableClientTransport{Endpoint: everything.URL}, nil, ""))
	if !slices.Contains(allTools, "echo") || !slices.Contains(allTools, "get-sum") {
		t.Fatalf("the everything server's tools %v lack echo or get-sum", allTools)
	}

	t.Run("no token: 401 pointing at PRM naming the provider", func(t *testing.T) {
		resp, body := send(t, raw, http.MethodPost, mcpURL, mcpHeader("", ""), initialize)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
		}
		ch := challenge(t, resp)
		if ch["resource_metadata"] != prmURL {
			t.Errorf("resource_metadata %q, want %q", ch["resource_metadata"], prmURL)
		}
		if _, ok := ch["scope"]; !ok {
			t.Errorf("challenge %q has no scope", resp.Header.Get("WWW-Authenticate"))
		}
		if _, ok := ch["error"]; ok {
			t.Errorf("challenge %q has an error for a request without a token", resp.Header.Get("WWW-Authenticate"))
		}
		resp, body = send(t, raw, http.MethodGet, ch["resource_metadata"], nil, "")
		var prm struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &prm) != nil {
			t.Fatalf("GET %s: status %d: %s", ch["resource_metadata"], resp.StatusCode, body)
		}
		if prm.Resource != mcpURL || !slices.Equal(prm.AuthorizationServers, []string{issuer}) {
			t.Errorf("PRM %s, want resource %q and authorization_servers [%q]", body, mcpURL, issuer)
		}
		// The authorization server it names is the provider, and usable by MCP clients.
		resp, body = send(t, raw, http.MethodGet, prm.AuthorizationServers[0]+"/.well-known/openid-configuration", nil, "")
		var meta struct {
			Issuer     string   `json:"issuer"`
			Challenges []string `json:"code_challenge_methods_supported"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &meta) != nil || meta.Issuer != issuer || !slices.Contains(meta.Challenges, "S256") {
			t.Errorf("provider discovery: status %d: %s", resp.StatusCode, body)
		}
	})

	t.Run("alice (readers) sees and calls only echo", func(t *testing.T) {
		token := oidcLogin(t, issuer, "alice", mcpURL)
		claims := jwtClaims(t, token)
		if claims["aud"] != mcpURL || claims["iss"] != issuer || claims["sub"] != "alice" {
			t.Fatalf("access token claims %v, want aud %q, iss %q, sub alice", claims, mcpURL, issuer)
		}
		if g, _ := json.Marshal(claims["groups"]); string(g) != `["readers"]` {
			t.Fatalf("access token groups %s, want [\"readers\"]", g)
		}

		cs := connect(t, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: bearerClient(t, token)}, nil, "")
		if got := toolNames(t, cs); !slices.Equal(got, []string{"echo"}) {
			t.Errorf("tools/list %v, want [echo]", got)
		}
		res := callTool(t, cs, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello from alice"}})
		if res.IsError || !strings.Contains(text(res), "hello from alice") {
			t.Errorf("echo: isError=%v text %q", res.IsError, text(res))
		}

		// get-sum is not granted: 403 insufficient_scope, in the same session.
		resp, body := send(t, raw, http.MethodPost, mcpURL, withToken(mcpHeader(cs.ID(), "2025-11-25"), token),
			`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}`)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("tools/call get-sum: status %d, want 403: %s", resp.StatusCode, body)
		}
		ch := challenge(t, resp)
		if ch["error"] != "insufficient_scope" || ch["resource_metadata"] != prmURL || !strings.Contains(ch["scope"], "servers/all") {
			t.Errorf("tools/call get-sum: WWW-Authenticate %q; want error=insufficient_scope, scope naming servers/all, resource_metadata %q",
				resp.Header.Get("WWW-Authenticate"), prmURL)
		}
		var msg rpcMessage
		if err := json.Unmarshal(body, &msg); err != nil || msg.Error == nil || string(msg.ID) != "7" || !strings.Contains(string(body), "get-sum") {
			t.Errorf("tools/call get-sum: body %s, want a JSON-RPC error for id 7 naming get-sum", body)
		}
	})

	t.Run("bob (platform-admins) sees every tool", func(t *testing.T) {
		token := oidcLogin(t, issuer, "bob", mcpURL)
		cs := connect(t, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: bearerClient(t, token)}, nil, "")
		if got := toolNames(t, cs); !slices.Equal(got, allTools) {
			t.Errorf("tools/list %v, want all of %v", got, allTools)
		}
		res := callTool(t, cs, &mcp.CallToolParams{Name: "get-sum", Arguments: map[string]any{"a": 2, "b": 3}})
		if res.IsError || !strings.Contains(text(res), "5") {
			t.Errorf("get-sum: isError=%v text %q", res.IsError, text(res))
		}
	})

	t.Run("registry REST API: same tokens, UI scopes, live routing", func(t *testing.T) {
		api := base + "/api/servers"
		resp, body := send(t, raw, http.MethodGet, api, nil, "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
			t.Fatalf("GET %s without a token: status %d %q: %s", api, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		// alice's groups map to no UI scope: nothing is listed, nothing exists for her.
		alice := oidcLogin(t, issuer, "alice", mcpURL)
		resp, body = send(t, raw, http.MethodGet, api, withToken(http.Header{}, alice), "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"servers":[]`) {
			t.Errorf("alice's list: status %d: %s", resp.StatusCode, body)
		}
		if resp, body = send(t, raw, http.MethodGet, api+"/everything", withToken(http.Header{}, alice), ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("alice GET everything: status %d, want 404: %s", resp.StatusCode, body)
		}
		// bob (platform-admins: every UI permission) registers a second route to the
		// same upstream; the next MCP request through the gateway reaches it.
		bob := oidcLogin(t, issuer, "bob", mcpURL)
		h := withToken(http.Header{"Content-Type": {"application/json"}}, bob)
		resp, body = send(t, raw, http.MethodPost, api, h, `{"name":"everything2","upstream":"`+everything.URL+`","description":"registered through the REST API"}`)
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("ETag") != `"1"` {
			t.Fatalf("bob registers: status %d ETag %q: %s", resp.StatusCode, resp.Header.Get("ETag"), body)
		}
		// bob's token names everything's MCP URL: per server (RFC 8707), it is not
		// accepted on the new route.
		if resp, body := send(t, raw, http.MethodPost, base+"/everything2/mcp", withToken(mcpHeader("", ""), bob), initialize); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("everything's token on everything2: status %d, want 401: %s", resp.StatusCode, body)
		}
		// A client asks for a token for the exact URL it connects to (RFC 8707): the
		// new server's URL is an accepted audience at once, without a reload; the URL
		// of a server that does not exist is not.
		bob2 := oidcLogin(t, issuer, "bob", base+"/everything2/mcp")
		if aud := jwtClaims(t, bob2)["aud"]; aud != base+"/everything2/mcp" {
			t.Fatalf("token aud %v", aud)
		}
		cs2 := connect(t, &mcp.StreamableClientTransport{Endpoint: base + "/everything2/mcp", HTTPClient: bearerClient(t, bob2)}, nil, "")
		if got := toolNames(t, cs2); !slices.Equal(got, allTools) {
			t.Errorf("tools/list with a token for the new server's URL %v", got)
		}
		ghost := oidcLogin(t, issuer, "bob", base+"/ghost/mcp")
		if resp, body := send(t, raw, http.MethodPost, mcpURL, withToken(mcpHeader("", ""), ghost), initialize); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token for an unregistered server's URL: status %d, want 401: %s", resp.StatusCode, body)
		}
		// alice cannot register (no register_service), and metadata upstreams are refused.
		resp, body = send(t, raw, http.MethodPost, api, withToken(http.Header{"Content-Type": {"application/json"}}, alice), `{"name":"mine","upstream":"`+everything.URL+`"}`)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("alice registers: status %d, want 403: %s", resp.StatusCode, body)
		}
		resp, body = send(t, raw, http.MethodPost, api, h, `{"name":"meta","upstream":"http://169.254.169.254/latest/meta-data/"}`)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"field":"upstream"`) {
			t.Errorf("metadata upstream: status %d: %s", resp.StatusCode, body)
		}
		// Disabled through the API: the gateway answers 503 at once; deleted: 404.
		resp, body = send(t, raw, http.MethodPost, api+"/everything2/disable", withToken(http.Header{"If-Match": {`"1"`}}, bob), "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("disable: status %d: %s", resp.StatusCode, body)
		}
		if resp, body = send(t, raw, http.MethodPost, base+"/everything2/mcp", withToken(mcpHeader("", ""), bob), initialize); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("disabled server: status %d, want 503: %s", resp.StatusCode, body)
		}
		if resp, body = send(t, raw, http.MethodDelete, api+"/everything2", withToken(http.Header{}, bob), ""); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete: status %d: %s", resp.StatusCode, body)
		}
		if resp, body = send(t, raw, http.MethodPost, base+"/everything2/mcp", withToken(mcpHeader("", ""), bob), initialize); resp.StatusCode != http.StatusNotFound {
			t.Errorf("deleted server: status %d, want 404: %s", resp.StatusCode, body)
		}
	})

	t.Run("carol (no groups) may not even initialize", func(t *testing.T) {
		token := oidcLogin(t, issuer, "carol", mcpURL)
		resp, body := send(t, raw, http.MethodPost, mcpURL, withToken(mcpHeader("", ""), token), initialize)
		if resp.StatusCode != http.StatusForbidden || challenge(t, resp)["error"] != "insufficient_scope" {
			t.Errorf("initialize: status %d, WWW-Authenticate %q, want 403 insufficient_scope: %s",
				resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})

	t.Run("token for another resource: 401 invalid_token", func(t *testing.T) {
		other := "http://127.0.0.1:1/everything/mcp"
		token := oidcLogin(t, issuer, "alice", other)
		if aud := jwtClaims(t, token)["aud"]; aud != other {
			t.Fatalf("access token aud %v, want %q", aud, other)
		}
		resp, body := send(t, raw, http.MethodPost, mcpURL, withToken(mcpHeader("", ""), token), initialize)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
		}
		if ch := challenge(t, resp); ch["error"] != "invalid_token" || ch["resource_metadata"] != prmURL {
			t.Errorf("WWW-Authenticate %q, want error=invalid_token and resource_metadata %q", resp.Header.Get("WWW-Authenticate"), prmURL)
		}
	})

	t.Run("client_credentials token of a service in readers", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		form := url.Values{"grant_type": {"client_credentials"}, "resource": {mcpURL}, "scope": {"mcp"}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("mcp-service", "mcp-service-secret")
		resp, err := raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
			t.Fatalf("client_credentials: status %d: %s", resp.StatusCode, b)
		}
		cs := connect(t, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: bearerClient(t, tok.AccessToken)}, nil, "")
		if got := toolNames(t, cs); !slices.Equal(got, []string{"echo"}) {
			t.Errorf("tools/list %v, want [echo]", got)
		}
	})
}

// The provider's PROFILE switch puts the groups where other IdPs do (Keycloak
// realm_access.roles, Cognito cognito:groups, Entra object-id GUIDs in groups); with the
// matching groups_claim and an inline policy the gateway grants alice the readers' echo
// and nothing else.
func TestOIDCGroupClaimProfiles(t *testing.T) {
	t.Parallel()
	everything := testenv.StartServerEverythingNPM(t, testenv.NPMStreamableHTTP)
	for _, p := range []struct{ profile, claim, readers string }{
		{"keycloak", "realm_access.roles", "readers"},
		{"cognito", "cognito:groups", "readers"},
		{"entra", "groups", "7d3c1a52-2222-4a9b-8c1d-5e6f7a8b9c01"}, // ENTRA_GUIDS.readers in provider.mjs
	} {
		t.Run(p.profile, func(t *testing.T) {
			t.Parallel()
			issuer := startOIDCProvider(t, "PROFILE="+p.profile)
			base, _ := gatewayFor(t, map[string]string{"everything": everything.URL}, `		auth {
			issuer `+issuer+` {
				groups_claim `+p.claim+`
			}
			resource http://127.0.0.1:{{PORT}}
			policy {
				group "`+p.readers+`" readonly
				scope readonly {
					rule everything {
						methods initialize notifications/initialized ping tools/list tools/call
						tools echo
					}
				}
			}
		}
`)
			mcpURL := base + "/everything/mcp"
			token := oidcLogin(t, issuer, "alice", mcpURL)
			cs := connect(t, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: bearerClient(t, token)}, nil, "")
			if got := toolNames(t, cs); !slices.Equal(got, []string{"echo"}) {
				t.Errorf("tools/list %v, want [echo] (access token claims %v)", got, jwtClaims(t, token))
			}
			// bob's group maps to nothing here: not even initialize.
			token = oidcLogin(t, issuer, "bob", mcpURL)
			h := mcpHeader("", "")
			h.Set("Authorization", "Bearer "+token)
			resp, body := send(t, newHTTPClient(t), http.MethodPost, mcpURL, h,
				`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("bob: initialize: status %d, want 403: %s", resp.StatusCode, body)
			}
		})
	}
}
