package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// federationCaddyfile: the built-in authorization server signs users in only through
// the company's provider (provider.mjs); the group readers may call one tool.
const federationCaddyfile = `{
	admin {{ADMIN}}
	mcp_registry {
		storage bbolt {{DB}}
		encryption_key {$MCP_ENCRYPTION_KEY}
		disable_builtin_server
		server everything {$EVERYTHING_URL}
	}
}

:{{PORT}} {
	mcp_oauth_server http://127.0.0.1:{{PORT}}/oauth {
		identity_provider corp {
			issuer        {$IDP_ISSUER}
			client_id     caddymcp-login
			client_secret {$IDP_SECRET}
			display_name  "Corp SSO"
			scopes        openid profile email groups
			groups_claim  {$IDP_GROUPS_CLAIM}
			group         7d3c1a52-2222-4a9b-8c1d-5e6f7a8b9c01 readers
		}
		password_sign_in off
	}
	mcp_oauth_metadata {
		resource http://127.0.0.1:{{PORT}}
		authorization_servers http://127.0.0.1:{{PORT}}/oauth
	}
	mcp_gateway {
		auth {
			resource http://127.0.0.1:{{PORT}}
			policy {
				group readers servers/read
				scope servers/read {
					rule everything {
						methods *
						tools ` + allowedTool + `
					}
				}
			}
		}
	}
}
`

// The client-by-identity-provider matrix: for each provider shape (Okta-like plain
// groups, Keycloak realm roles, Cognito's cognito:groups, Entra's group object ids),
// three real MCP clients that know nothing of the provider (the go-sdk and TypeScript
// SDK OAuth clients, and mcp-remote as Claude Desktop runs it), each registering itself
// by DCR at the built-in server, sign a user in through the provider's own login pages
// and call through the gateway exactly what the user's provider group is granted.
func TestIdentityProviderMatrix(t *testing.T) {
	t.Parallel()
	everything := testenv.StartEverythingServer(t, false)
	for _, tc := range []struct{ profile, claim string }{
		{"generic", "groups"},
		{"keycloak", "realm_access.roles"},
		{"cognito", "cognito:groups"},
		{"entra", "groups"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			idp := testenv.StartOIDCProvider(t, "PROFILE="+tc.profile,
				`LOGIN_REDIRECT_PATTERN=^http://127\.0\.0\.1:\d+/oauth/login/corp/callback$`)
			base, _ := startCaddy(t, federationCaddyfile, map[string]string{
				"MCP_ENCRYPTION_KEY": "6d0c3a1e9b2f4c5d8e7f60718293a4b5c6d7e8f9012345678901234567890abc",
				"EVERYTHING_URL":     everything.URL,
				"IDP_ISSUER":         idp,
				"IDP_SECRET":         "caddymcp-login-secret",
				"IDP_GROUPS_CLAIM":   tc.claim,
			})
			mcpURL := base + "/everything/mcp"
			// readers in every profile; Entra's object id for it is renamed by the group line.
			const user = "frank"
			t.Run("go-sdk client through DCR", func(t *testing.T) {
				federatedGoSDK(t, mcpURL, user, tc.profile)
			})
			t.Run("TypeScript SDK client through DCR", func(t *testing.T) {
				res := runTSOAuthClientEnv(t, []string{"SIGN_IN_PROVIDER=Corp SSO"}, mcpURL, user, "", allowedTool, deniedTool)
				if !res.SignedIn || !slices.Equal(res.Tools, []string{allowedTool}) || !res.Calls[allowedTool].OK {
					t.Errorf("signed in %v, tools %v, %s %+v", res.SignedIn, res.Tools, allowedTool, res.Calls[allowedTool])
				}
				if c := res.Calls[deniedTool]; c.OK || !strings.Contains(c.Error, deniedTool) {
					t.Errorf("%s: %+v, want a JSON-RPC error naming it", deniedTool, c)
				}
			})
			t.Run("mcp-remote through the browser", func(t *testing.T) {
				mcpRemoteSession(t, mcpURL, "E2E_USER="+user, "E2E_IDP=Corp SSO")
			})
		})
	}
}

// federatedGoSDK signs user in with the go-sdk OAuth client (DCR at the built-in
// server, the browser played by federatedSignIn), calls the granted tool, and checks
// the token's name and groups and that another tool is refused.
func federatedGoSDK(t *testing.T, mcpURL, user, profile string) {
	t.Helper()
	redirect := "http://127.0.0.1:38125/callback"
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs:            []string{redirect},
			TokenEndpointAuthMethod: "none",
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ClientName:              "go-sdk e2e (DCR, " + profile + ")",
		}},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			loc, err := browserSignIn(ctx, args.URL, signInAs{user: user, provider: "Corp SSO", redirect: redirect})
			if err != nil {
				return nil, err
			}
			q := loc.Query()
			if q.Get("code") == "" {
				return nil, fmt.Errorf("authorization response %s has no code", loc)
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, &mcp.StreamableClientTransport{Endpoint: mcpURL, OAuthHandler: handler}, nil, "")
	if res := callTool(t, cs, &mcp.CallToolParams{Name: allowedTool}); res.IsError || text(res) == "" {
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
	if g, _ := json.Marshal(claims["groups"]); claims["sub"] != user || string(g) != `["readers"]` {
		t.Errorf("token sub %v groups %s, want %s in [readers]", claims["sub"], g, user)
	}
	h := mcpHeader(cs.ID(), "")
	h.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, body := send(t, newHTTPClient(t), http.MethodPost, mcpURL, h,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"`+deniedTool+`","arguments":{}}}`)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), deniedTool) {
		t.Errorf("tools/call %s: %d %s, want 403 naming it", deniedTool, resp.StatusCode, body)
	}
}
