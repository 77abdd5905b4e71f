package oauthserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// mcpResource is a tiny MCP server that accepts this authorization server's tokens for
// its exact URL, checked with the server's JWKS, and serves RFC 9728 metadata.
func mcpResource(t *testing.T, as func() *testAS) *httptest.Server {
	server := mcp.NewServer(&mcp.Implementation{Name: "resource", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "the caller"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, struct{}, error) {
		info := req.Extra.TokenInfo
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s %v", info.UserID, info.Extra["groups"])}}}, struct{}{}, nil
	})
	mux := http.NewServeMux()
	var rs *httptest.Server
	verify := func(ctx context.Context, tok string, _ *http.Request) (*auth.TokenInfo, error) {
		a := as()
		set, err := jwk.Fetch(ctx, a.Issuer+"/jwks")
		if err != nil {
			return nil, err
		}
		parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer(a.Issuer), jwt.WithAudience(rs.URL+"/mcp"), jwt.WithValidate(true))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
		}
		groups, _ := parsed.Get("groups")
		return &auth.TokenInfo{UserID: parsed.Subject(), Expiration: parsed.Expiration(), Extra: map[string]any{"groups": groups}}, nil
	}
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	mux.Handle("/mcp", auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{})(mcpHandler))
	rs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-protected-resource/mcp" {
			auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
				Resource:             rs.URL + "/mcp",
				AuthorizationServers: []string{as().Issuer},
			}).ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(rs.Close)
	return rs
}

// The go-sdk's OAuth client registers through DCR, signs in (the test submits the
// login and consent forms in place of a browser), and calls a tool with the token.
func TestGoSDKClientLogsInThroughDCR(t *testing.T) {
	var as *testAS
	rs := mcpResource(t, func() *testAS { return as })
	as = newTestAS(t, func(s *Server) { s.Resource = rs.URL }, nil)

	b := browser(t)
	redirect := "http://127.0.0.1:38123/callback"
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs:            []string{redirect},
			TokenEndpointAuthMethod: "none",
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ClientName:              "go-sdk test client",
		}},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			loc := signIn(t, as, b, args.URL, "alice", testPassword)
			q := loc.Query()
			if q.Get("error") != "" {
				return nil, fmt.Errorf("authorization failed: %s", q.Get("error"))
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: rs.URL + "/mcp", OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect with OAuth: %v", err)
	}
	defer session.Close()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "alice [eng ops]" {
		t.Fatalf("whoami = %q", got)
	}
	if n := as.logs.FilterMessage("client registered").Len(); n != 1 {
		t.Errorf("%d registrations, want 1 (DCR)", n)
	}
}
