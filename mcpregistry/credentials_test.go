package mcpregistry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func newTestKey(t *testing.T) ([]byte, string) {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k, base64.StdEncoding.EncodeToString(k)
}

func TestKeyringSealOpen(t *testing.T) {
	k1, b64 := newTestKey(t)
	k2, _ := newTestKey(t)
	kr, err := newKeyring(b64, nil)
	if err != nil {
		t.Fatal(err)
	}
	// hex is accepted too and gives the same key id
	if kr2, err := newKeyring(hex.EncodeToString(k1), nil); err != nil || kr2.current.id != kr.current.id {
		t.Fatalf("hex key: %v", err)
	}
	if _, err := newKeyring("c2hvcnQ=", nil); err == nil || !strings.Contains(err.Error(), "openssl rand -base64 32") {
		t.Fatalf("short key: %v", err)
	}
	want := &credentialPlain{Scheme: model.BackendAuthAPIKey, Header: "X-Key", Value: "s3cr3t-value", Headers: map[string]string{"X-Tenant": "t1"}}
	sealed, err := kr.seal("gh", want)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("s3cr3t-value")) || bytes.Contains(sealed, []byte(`"X-Tenant":"t1"`)) {
		t.Fatal("sealed credential contains the plaintext")
	}
	again, _ := kr.seal("gh", want)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals are identical: the nonce is not random")
	}
	got, stale, err := kr.open("gh", sealed)
	if err != nil || stale || !got.equal(want) {
		t.Fatalf("open: %+v %v %v", got, stale, err)
	}
	if got.headers().Get("X-Key") != "s3cr3t-value" || got.headers().Get("X-Tenant") != "t1" {
		t.Fatalf("headers: %v", got.headers())
	}
	// the server name is additional data: a sealed value moved to another server fails
	if _, _, err := kr.open("other", sealed); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("moved credential: %v", err)
	}
	// wrong key: a clear error naming the server and the key id, never garbage
	wrong, _ := newKeyring(base64.StdEncoding.EncodeToString(k2), nil)
	_, _, err = wrong.open("gh", sealed)
	if err == nil || !strings.Contains(err.Error(), `"gh"`) || !strings.Contains(err.Error(), keyID(k1)) {
		t.Fatalf("wrong key: %v", err)
	}
	// rotation: the old key as a previous key opens it, marked stale
	rot, err := newKeyring(base64.StdEncoding.EncodeToString(k2), []string{b64})
	if err != nil {
		t.Fatal(err)
	}
	got, stale, err = rot.open("gh", sealed)
	if err != nil || !stale || !got.equal(want) {
		t.Fatalf("rotation: %v %v", stale, err)
	}
	// no key at all
	var none *keyring
	if _, _, err := none.open("gh", sealed); err == nil || !strings.Contains(err.Error(), "no encryption_key") {
		t.Fatalf("no key: %v", err)
	}
}

func storedKeyID(t *testing.T, db, name string) string {
	t.Helper()
	s, err := store.OpenBolt(db, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var kid string
	err = s.View(func(tx store.Tx) error {
		raw, err := tx.GetCredential(name)
		if err != nil {
			return err
		}
		var sc sealedCredential
		if err := json.Unmarshal(raw, &sc); err != nil {
			return err
		}
		kid = sc.KeyID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

func TestBackendCredentialsEncryptedAtRest(t *testing.T) {
	const secret, extra = "ghp_PLAINTEXT_token_123", "tenant-SECRET-456"
	k1, key1 := newTestKey(t)
	k2, key2 := newTestKey(t)
	t.Setenv("TEST_MCP_CRED", secret)
	t.Setenv("TEST_MCP_KEY1", key1)
	t.Setenv("TEST_MCP_KEY2", key2)
	credFile := filepath.Join(t.TempDir(), "extra")
	if err := os.WriteFile(credFile, []byte(extra+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "registry.db")
	storage := map[string]any{"path": db}
	servers := []map[string]any{{
		"name": "gh", "upstream": "http://127.0.0.1:9/mcp",
		"backend_credential": "{env.TEST_MCP_CRED}",
		"backend_headers":    map[string]string{"X-Tenant": "{file." + credFile + "}"},
	}}
	cfg := func(key string, prev ...string) map[string]any {
		c := map[string]any{"storage": storage, "servers": servers, "health": map[string]any{"disabled": true}}
		if key != "" {
			c["encryption_key"] = key
		}
		if len(prev) > 0 {
			c["previous_encryption_keys"] = prev
		}
		return c
	}
	loadConfig(t, cfg("{env.TEST_MCP_KEY1}"))
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	h := app.BackendHeaders(app.Server("gh"))
	if h.Get("Authorization") != "Bearer "+secret || h.Get("X-Tenant") != extra {
		t.Fatalf("backend headers not loaded (Authorization %t, X-Tenant %t)", h.Get("Authorization") != "", h.Get("X-Tenant") != "")
	}
	s := app.Server("gh")
	if s.BackendAuth.Scheme != model.BackendAuthBearer {
		t.Fatalf("scheme %q, want bearer implied by backend_credential", s.BackendAuth.Scheme)
	}
	for what, v := range map[string]any{"server": s, "summary": app.summarize(s), "list": app.ListServers()} {
		b, _ := json.Marshal(v)
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(extra)) {
			t.Fatalf("the credential appears in the %s JSON", what)
		}
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(extra)) {
		t.Fatal("the database file contains the plaintext credential")
	}
	if !bytes.Contains(raw, []byte(keyID(k1))) {
		t.Fatal("the database file has no credential sealed under the key")
	}

	// a wrong key is a clear startup error naming the server and the key id
	c, _ := json.Marshal(map[string]any{"admin": noAdmin, "apps": map[string]any{"mcp_registry": cfg("{env.TEST_MCP_KEY2}")}})
	err = caddy.Load(c, true)
	if err == nil || !strings.Contains(err.Error(), `"gh"`) || !strings.Contains(err.Error(), keyID(k1)) || strings.Contains(err.Error(), secret) {
		t.Fatalf("wrong key: %v", err)
	}
	// no key while a credential is declared: refused, with guidance
	c, _ = json.Marshal(map[string]any{"admin": noAdmin, "apps": map[string]any{"mcp_registry": cfg("")}})
	if err := caddy.Load(c, true); err == nil || !strings.Contains(err.Error(), "encryption_key") || !strings.Contains(err.Error(), "openssl rand") {
		t.Fatalf("no key: %v", err)
	}

	// rotation: new key plus the old one as previous → readable and re-sealed
	loadConfig(t, cfg("{env.TEST_MCP_KEY2}", "{env.TEST_MCP_KEY1}"))
	if runningApp(t).BackendHeaders(runningApp(t).Server("gh")).Get("Authorization") != "Bearer "+secret {
		t.Fatal("credential lost across rotation")
	}
	caddy.Stop()
	if kid := storedKeyID(t, db, "gh"); kid != keyID(k2) {
		t.Fatalf("after rotation the credential is under key %s, want %s", kid, keyID(k2))
	}
	// and the old key is no longer needed
	loadConfig(t, cfg("{env.TEST_MCP_KEY2}"))
	if runningApp(t).BackendHeaders(runningApp(t).Server("gh")).Get("X-Tenant") != extra {
		t.Fatal("credential lost after dropping the previous key")
	}

	// removing the credential from the config removes it from the store
	servers = []map[string]any{{"name": "gh", "upstream": "http://127.0.0.1:9/mcp"}}
	loadConfig(t, cfg(""))
	if runningApp(t).BackendHeaders(runningApp(t).Server("gh")) != nil {
		t.Fatal("credential still in memory after removal")
	}
}

func TestHealthCheckSendsBackendCredential(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Api-Key")+"|"+r.Header.Get("X-Extra"))
		mu.Unlock()
		// Upstreams echo what they were sent: in a 401 body, or in a JSON-RPC error.
		if r.URL.Path == "/rpc" {
			var req struct {
				ID json.RawMessage `json:"id"`
			}
			json.NewDecoder(r.Body).Decode(&req)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32001,"message":"key %s rejected"}}`, req.ID, r.Header.Get("X-Api-Key"))
			return
		}
		http.Error(w, "bad key "+r.Header.Get("X-Api-Key"), http.StatusUnauthorized)
	}))
	defer up.Close()
	_, key := newTestKey(t)
	db := filepath.Join(t.TempDir(), "registry.db")
	loadConfig(t, map[string]any{
		"storage":        map[string]any{"path": db},
		"encryption_key": key,
		"health":         map[string]any{"disabled": true},
		"servers": []map[string]any{
			{"name": "keyed", "upstream": up.URL + "/mcp", "backend_auth": map[string]any{"scheme": "api_key", "header": "X-API-Key"},
				"backend_credential": "k-123", "backend_headers": map[string]string{"X-Extra": "e"}},
			{"name": "plain", "upstream": up.URL + "/mcp"},
			{"name": "rpc", "upstream": up.URL + "/rpc", "backend_auth": map[string]any{"scheme": "api_key", "header": "X-API-Key"},
				"backend_credential": "k-456"},
		},
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// last_error is the checker's own words: no echoed secret, no upstream address
	// (list-only callers see last_error but not the upstream).
	host := strings.TrimPrefix(up.URL, "http://")
	for name, want := range map[string]string{"keyed": "HTTP 401", "rpc": "JSON-RPC error -32001"} {
		h, _ := app.RefreshNow(ctx, name)
		if strings.Contains(h.LastError, "k-123") || strings.Contains(h.LastError, "k-456") || strings.Contains(h.LastError, host) ||
			strings.Contains(h.LastError, "rejected") || !strings.Contains(h.LastError, want) {
			t.Errorf("%s: last_error %q, want %q and no upstream text", name, h.LastError, want)
		}
	}
	app.RefreshNow(ctx, "plain")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 || !slices.Contains(seen, "k-123|e") || !slices.Contains(seen, "k-456|") || seen[len(seen)-1] != "|" {
		t.Fatalf("upstream saw %q; want the credential on the keyed server's check only", seen)
	}
}

func TestCaddyfileBackendCredential(t *testing.T) {
	d := caddyfile.NewTestDispenser(`mcp_registry {
		encryption_key {env.MCP_REGISTRY_KEY}
		previous_encryption_keys {file./run/secrets/old} {env.OLD2}
		server gh http://127.0.0.1:3000/mcp {
			backend_auth api_key X-GitHub-Token
			backend_credential {env.GITHUB_TOKEN}
			backend_header X-Tenant {file./run/secrets/tenant}
			backend_header X-Static yes
			gateway_token_header x-authorization
			forward_identity X-User
			forward_client_credentials
		}
	}`)
	a := new(App)
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	s := a.Servers[0]
	if a.EncryptionKey != "{env.MCP_REGISTRY_KEY}" || len(a.PreviousEncryptionKeys) != 2 ||
		s.BackendAuth.Scheme != model.BackendAuthAPIKey || s.BackendAuth.Header != "X-GitHub-Token" ||
		s.BackendCredential != "{env.GITHUB_TOKEN}" || s.BackendHeaders["X-Tenant"] != "{file./run/secrets/tenant}" ||
		s.BackendHeaders["X-Static"] != "yes" || s.GatewayTokenHeader != "x-authorization" ||
		s.ForwardIdentity == nil || s.ForwardIdentity.UserHeader != "X-User" || s.ForwardIdentity.GroupsHeader != "" ||
		!s.ForwardClientCredentials {
		t.Fatalf("parsed %+v / %+v", a, s)
	}
	for _, bad := range []string{
		`mcp_registry {
			server a http://x/mcp {
				backend_header X-A
			}
		}`,
		`mcp_registry {
			server a http://x/mcp {
				forward_identity a b c
			}
		}`,
		`mcp_registry {
			server a http://x/mcp {
				forward_client_credentials yes
			}
		}`,
	} {
		if err := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestNormalizeGatewayOptions(t *testing.T) {
	s := &model.Server{Name: "a", Upstream: "http://x/mcp", GatewayTokenHeader: "X-Authorization", ForwardIdentity: &model.ForwardIdentity{}}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if s.GatewayTokenHeader != model.GatewayTokenXAuthorization || s.ForwardIdentity.UserHeader != model.DefaultUserHeader || s.ForwardIdentity.GroupsHeader != model.DefaultGroupsHeader {
		t.Fatalf("%+v %+v", s, s.ForwardIdentity)
	}
	for _, bad := range []*model.Server{
		{Name: "a", Upstream: "http://x/mcp", GatewayTokenHeader: "cookie"},
		{Name: "a", Upstream: "http://x/mcp", ForwardIdentity: &model.ForwardIdentity{UserHeader: "Bad Header"}},
		{Name: "a", Upstream: "http://x/mcp", BackendAuth: model.BackendAuth{Scheme: model.BackendAuthAPIKey, Header: "X:Y"}},
	} {
		if err := bad.Normalize(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
