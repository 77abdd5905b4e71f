package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upstreamRegistrationCaddyfile: two servers in front of the same real upstream, whose
// authorization server (upstream-as.mjs) knows nothing of the gateway beforehand. The
// gateway registers itself there for "dyn" by dynamic client registration (RFC 7591),
// and for "cimd" identifies itself by its client ID metadata document, served at
// $TLS_ORIGIN/cimd/connect/client-metadata.json ($TLS_ORIGIN: an https front of this
// gateway).
const upstreamRegistrationCaddyfile = `{
	admin {{ADMIN}}
	mcp_registry {
		storage bbolt {{DB}}
		encryption_key {$MCP_ENCRYPTION_KEY}
		disable_builtin_server
		runtime_upstreams {
			allow 127.0.0.1/32
		}
		server dyn {$SAAS_URL} {
			backend_auth oauth {
				registration dynamic
				scopes openid mcp
			}
		}
		server cimd {$SAAS_URL} {
			backend_auth oauth {
				registration cimd
				redirect_uri {$TLS_ORIGIN}/cimd/connect/callback
				scopes openid mcp
			}
		}
	}
}

` + upstreamOAuthSite

type clientCounts struct {
	Registrations int `json:"registrations"`
	CIMDFetches   int `json:"cimd_fetches"`
}

func clientsAt(t *testing.T, issuer string) clientCounts {
	return testCounters[clientCounts](t, issuer+"/test/clients")
}

// The gateway registers itself at an upstream's authorization server it was never
// configured for, with real parts on both ends: dynamic client registration at
// oidc-provider (registered once, the registration sealed in the store and reused by
// the next user and after a restart), and a client ID metadata document that
// oidc-provider (9.13, its own CIMD implementation, draft-02) fetches from the
// gateway over https — through a TLS front, since the document must be https; the
// test authorization server is told to trust that front's certificate and to fetch
// from loopback, which oidc-provider refuses by default.
func TestUpstreamOAuthRegistration(t *testing.T) {
	t.Parallel()

	// The https front, proxying to the gateway once it runs.
	var target atomic.Pointer[httputil.ReverseProxy]
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := target.Load(); p != nil {
			p.ServeHTTP(w, r)
			return
		}
		http.Error(w, "gateway not started", http.StatusServiceUnavailable)
	}))
	front.StartTLS()
	t.Cleanup(front.Close)
	caFile := filepath.Join(t.TempDir(), "front.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	asIssuer := startUpstreamAS(t, "NODE_EXTRA_CA_CERTS="+caFile, "CIMD_ALLOW_LOOPBACK=1")
	saas := startSaaSUpstream(t, asIssuer)
	base, caddy := startCaddy(t, upstreamRegistrationCaddyfile, twoUsersEnv("SAAS_URL", saas.URL, "TLS_ORIGIN", front.URL))
	gw, _ := url.Parse(base)
	target.Store(httputil.NewSingleHostReverseProxy(gw))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	aliceToken := gatewayToken(t, base, "alice", alicePassword)
	bobToken := gatewayToken(t, base, "bob", bobPassword)
	pool := x509.NewCertPool()
	pool.AddCert(front.Certificate())
	browserOf := func(user, password string) *browser {
		b := newBrowser(t, user, password)
		b.c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
		return b
	}
	alice, bob := browserOf("alice", alicePassword), browserOf("bob", bobPassword)

	// connectAndCall connects user's account at server through the connect page and
	// calls whoami there.
	connectAndCall := func(b *browser, token, server string) {
		t.Helper()
		_, err := goClient(ctx, base+"/"+server+"/mcp", token)
		link := elicitationFor(t, err, server)
		cb := b.connect(link)
		if resp, page := b.do(http.MethodGet, cb.String(), nil); resp.StatusCode != http.StatusOK || !strings.Contains(page, "connected for "+b.user) {
			t.Fatalf("%s's callback for %s: %d\n%s", b.user, server, resp.StatusCode, page)
		}
		cs, err := goClient(ctx, base+"/"+server+"/mcp", token)
		if err != nil {
			t.Fatalf("%s at %s after connecting: %v", b.user, server, err)
		}
		defer cs.Close()
		if got := whoami(t, cs); !strings.HasPrefix(got, "sub="+b.user+" ") {
			t.Fatalf("%s's call to %s reached the upstream as %q", b.user, server, got)
		}
	}

	t.Run("dynamic client registration", func(t *testing.T) {
		connectAndCall(alice, aliceToken, "dyn")
		if c := clientsAt(t, asIssuer); c.Registrations != 1 {
			t.Fatalf("registrations after alice connected: %+v; want 1", c)
		}
		// Restarted, the gateway reuses its stored registration for the next user.
		caddy.Restart()
		connectAndCall(bob, bobToken, "dyn")
		if c := clientsAt(t, asIssuer); c.Registrations != 1 {
			t.Fatalf("registrations after a restart and bob connected: %+v; want still 1", c)
		}
	})

	t.Run("client ID metadata document", func(t *testing.T) {
		resp, err := front.Client().Get(front.URL + "/cimd/connect/client-metadata.json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			ClientID     string   `json:"client_id"`
			RedirectURIs []string `json:"redirect_uris"`
			AuthMethod   string   `json:"token_endpoint_auth_method"`
			Secret       string   `json:"client_secret"`
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || doc.ClientID != front.URL+"/cimd/connect/client-metadata.json" || len(doc.RedirectURIs) != 1 ||
			doc.RedirectURIs[0] != front.URL+"/cimd/connect/callback" || doc.AuthMethod != "none" || doc.Secret != "" {
			t.Fatalf("client metadata document %+v (%v)", doc, err)
		}
		connectAndCall(alice, aliceToken, "cimd")
		if c := clientsAt(t, asIssuer); c.CIMDFetches == 0 || c.Registrations != 1 {
			t.Fatalf("at the authorization server: %+v; want the document fetched, no new registration", c)
		}
	})

	tokens, refused := saas.seen()
	if refused != 0 || len(tokens) == 0 {
		t.Errorf("the upstream saw %d tokens and refused %d", len(tokens), refused)
	}
	out := caddy.Output()
	for _, tk := range tokens {
		if strings.Contains(out, tk) {
			t.Error("an upstream token appears in caddy's log")
		}
	}
}
