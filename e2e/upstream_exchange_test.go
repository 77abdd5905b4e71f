package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// upstreamExchangeCaddyfile: server "exch" takes tokens of its own authorization
// server (upstream-as.mjs), which trusts the gateway's built-in issuer for token
// exchange (RFC 8693); the gateway trades each caller's own gateway token there for
// one whose audience is the upstream. The gateway also trusts a second identity
// provider (provider.mjs), which that authorization server does not trust.
const upstreamExchangeCaddyfile = `{
	admin {{ADMIN}}
	mcp_registry {
		storage bbolt {{DB}}
		encryption_key {$MCP_ENCRYPTION_KEY}
		disable_builtin_server
		runtime_upstreams {
			allow 127.0.0.1/32
		}
		server exch {$SAAS_URL} {
			backend_auth oauth {
				grant token_exchange
				authorization_server {$AS_ISSUER}
				client_id gateway
				client_secret {env.GATEWAY_SECRET}
			}
		}
	}
}

:{{PORT}} {
` + twoUsersAuthServer + `	mcp_gateway {
		auth {
			issuer {$OIDC_ISSUER} {
				groups_claim groups
			}
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

type exchangeCount struct {
	Count    int      `json:"count"`
	Subjects []string `json:"subjects"`
	Refused  int      `json:"refused"`
}

// testCounters reads the upstream test authorization server's counters at path.
func testCounters[T any](t *testing.T, url string) T {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c T
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func exchangesAt(t *testing.T, issuer string) exchangeCount {
	return testCounters[exchangeCount](t, issuer+"/test/exchanges")
}

// Token exchange with real parts: the upstream's authorization server (oidc-provider
// with a custom RFC 8693 grant) verifies each subject token against its issuer's JWKS
// and issues a token for the upstream. Alice and bob each reach the upstream as
// themselves, one exchange per user however many calls (cached); a caller whose
// identity provider that server does not trust gets a clear JSON-RPC error, and the
// refusal is remembered rather than repeated on every call.
func TestUpstreamTokenExchange(t *testing.T) {
	t.Parallel()
	asIssuer := startUpstreamAS(t, `TRUSTED_SUBJECT_ISSUER=^http://127\.0\.0\.1:\d+/oauth$`)
	saas := startSaaSUpstream(t, asIssuer)
	idp := startOIDCProvider(t, "SERVICE_GROUPS=eng")
	base, caddy := startCaddy(t, upstreamExchangeCaddyfile, twoUsersEnv("SAAS_URL", saas.URL, "AS_ISSUER", asIssuer,
		"OIDC_ISSUER", idp, "GATEWAY_SECRET", "gateway-secret"))
	mcpURL := base + "/exch/mcp"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	aliceToken := gatewayToken(t, base, "alice", alicePassword)
	bobToken := gatewayToken(t, base, "bob", bobPassword)
	for _, u := range []struct{ name, token string }{{"alice", aliceToken}, {"bob", bobToken}, {"alice", aliceToken}} {
		cs, err := goClient(ctx, mcpURL, u.token)
		if err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
		for range 2 {
			if got := whoami(t, cs); !strings.HasPrefix(got, "sub="+u.name+" ") {
				t.Fatalf("%s's call reached the upstream as %q", u.name, got)
			}
		}
		cs.Close()
	}
	if c := exchangesAt(t, asIssuer); c.Count != 2 || c.Subjects[0] != "alice" || c.Subjects[1] != "bob" {
		t.Fatalf("exchanges at the authorization server: %+v; want one for alice, one for bob (cached after)", c)
	}

	// A caller the gateway trusts (a service of the other identity provider) but the
	// upstream's authorization server does not: refused there, a clear error here.
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {base}, "scope": {"mcp"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, idp+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("mcp-service", "mcp-service-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("client_credentials at the other provider: %d %s", resp.StatusCode, b)
	}
	for range 2 {
		_, err = goClient(ctx, mcpURL, tok.AccessToken)
		var rpcErr *jsonrpc.Error
		if !errors.As(err, &rpcErr) || rpcErr.Code != -32018 || !strings.Contains(rpcErr.Message, "token exchange refused") || !strings.Contains(rpcErr.Message, "exch") {
			t.Fatalf("untrusted caller: %v; want JSON-RPC error -32018 naming the refused exchange", err)
		}
	}
	if c := exchangesAt(t, asIssuer); c.Count != 2 || c.Refused != 1 {
		t.Fatalf("exchanges at the authorization server: %+v; want the 2 granted and 1 refusal (remembered, not repeated)", c)
	}

	tokens, refused := saas.seen()
	if refused != 0 || len(tokens) == 0 {
		t.Errorf("the upstream saw %d tokens and refused %d", len(tokens), refused)
	}
	out := caddy.Output()
	for _, tk := range append(tokens, aliceToken, bobToken, tok.AccessToken) {
		if strings.Contains(out, tk) {
			t.Error("a token appears in caddy's log")
		}
	}
	for _, tk := range tokens {
		if tk == aliceToken || tk == bobToken || tk == tok.AccessToken {
			t.Error("a gateway token reached the upstream")
		}
	}
}
