package oauthserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

const persistKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes, base64

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loadAS loads a config with the registry on db and the authorization server on port;
// registry adds to (or overrides) the registry's settings.
func loadAS(t *testing.T, db string, port int, registry map[string]any) error {
	t.Helper()
	reg := map[string]any{
		"storage":                map[string]any{"path": db, "open_timeout": int64(2 * time.Second)},
		"health":                 map[string]any{"disabled": true},
		"disable_builtin_server": true,
	}
	for k, v := range registry {
		reg[k] = v
	}
	cfg, err := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps": map[string]any{
			"mcp_registry": reg,
			"http": map[string]any{"servers": map[string]any{"as": map[string]any{
				"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
				"routes": []any{map[string]any{"handle": []any{map[string]any{
					"handler": "mcp_oauth_server",
					"issuer":  fmt.Sprintf("http://127.0.0.1:%d/oauth", port),
					"users":   []any{map[string]any{"name": "alice", "password_hash": testHashes(), "groups": []string{"eng"}}},
					"clients": []any{
						map[string]any{"id": nativeClient},
						map[string]any{"id": machine, "secret": machineKey, "groups": []string{"robots"}},
					},
				}}}},
			}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return caddy.Load(cfg, true)
}

func runningRegistry(t *testing.T) (*mcpregistry.App, *registryStore) {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("mcp_registry")
	if err != nil {
		t.Fatal(err)
	}
	reg := app.(*mcpregistry.App)
	db, err := reg.CollectionStore()
	if err != nil {
		t.Fatal(err)
	}
	return reg, newRegistryStore(db)
}

// TestStatePersistsAcrossReloads: clients, users, refresh families, consent and
// signing keys are in the registry's bbolt file, so a config loaded again on it (as
// after a restart) keeps them; a token signed before verifies against the JWKS after.
// The signing keys are sealed in the file; a backup carries them and, restored into an
// empty registry, makes the old tokens verify there.
func TestStatePersistsAcrossReloads(t *testing.T) {
	t.Cleanup(func() { caddy.Stop() })
	db := filepath.Join(t.TempDir(), "registry.db")
	port := freePort(t)
	if err := loadAS(t, db, port, map[string]any{"encryption_key": persistKey}); err != nil {
		t.Fatal(err)
	}
	as := &testAS{Server: &Server{Issuer: fmt.Sprintf("http://127.0.0.1:%d/oauth", port)}, clock: &testClock{}}
	resource := fmt.Sprintf("http://127.0.0.1:%d", port)
	verify := func(tok string) {
		t.Helper()
		as.clock.t = time.Now()
		verifyAccessToken(t, as, tok, resource)
	}

	machineTok := token(t, as, url.Values{"grant_type": {"client_credentials"}}, machine, machineKey)
	if machineTok.status != 200 {
		t.Fatalf("client_credentials: %+v", machineTok)
	}
	redirect := "http://127.0.0.1:40000/cb"
	loc := signIn(t, as, browser(t), authURL(as, nativeClient, redirect, "s", nil), "alice", testPassword)
	userTok := token(t, as, codeForm(nativeClient, loc.Query().Get("code"), redirect, testVerifier), "", "")
	if userTok.status != 200 || userTok.Refresh == "" {
		t.Fatalf("code grant: %+v", userTok)
	}
	st, m, _ := register(t, as, []byte(`{"redirect_uris":["http://127.0.0.1/cb"],"client_name":"Dyn"}`))
	dynID, _ := m["client_id"].(string)
	if st != 201 || dynID == "" {
		t.Fatalf("registration: %d %v", st, m)
	}
	reg, rs := runningRegistry(t)
	ctx := t.Context()
	if err := rs.CreateUser(ctx, User{Name: "bob", PasswordHash: testHashes(), Groups: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	keysBefore, _ := rs.ListSigningKeys(ctx)
	if len(keysBefore) == 0 {
		t.Fatal("no signing key in the registry store")
	}

	// Hostile reader of the file: the private keys are not in it in any encoding.
	sealer, err := reg.Sealer(sealerPurpose)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keysBefore {
		der, err := sealer.Open(keyAAD(k.ID), k.Sealed)
		if err != nil {
			t.Fatalf("stored key %s does not open with the registry's key: %v", k.ID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatal(err)
		}
		d := priv.(*ecdsa.PrivateKey).D.FillBytes(make([]byte, 32))
		if !bytes.Contains(raw, []byte(k.ID)) {
			t.Fatalf("key %s is not in %s: the check reads the wrong file", k.ID, db)
		}
		for _, clear := range [][]byte{der, d, []byte(base64.StdEncoding.EncodeToString(der)), []byte(base64.RawURLEncoding.EncodeToString(d)),
			[]byte(base64.StdEncoding.EncodeToString(d)), []byte(hex.EncodeToString(d))} {
			if bytes.Contains(raw, clear) {
				t.Fatalf("the registry file holds signing key %s in the clear", k.ID)
			}
		}
	}
	var backup bytes.Buffer
	if err := reg.Backup(&backup); err != nil {
		t.Fatal(err)
	}

	// Restart: a new config on the same file.
	if err := loadAS(t, db, port, map[string]any{"encryption_key": persistKey, "tombstone_retention": int64(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_, rs = runningRegistry(t)
	verify(machineTok.Access)
	verify(userTok.Access)
	if c, err := rs.GetClient(ctx, dynID); err != nil || c.Name != "Dyn" {
		t.Errorf("registered client after the reload: %+v, %v", c, err)
	}
	if u, err := rs.GetUser(ctx, "bob"); err != nil || !slices.Equal(u.Groups, []string{"ops"}) {
		t.Errorf("stored user after the reload: %+v, %v", u, err)
	}
	if ok, err := rs.HasConsent(ctx, "alice", nativeClient, resource); !ok || err != nil {
		t.Errorf("consent after the reload: %v, %v", ok, err)
	}
	keysAfter, _ := rs.ListSigningKeys(ctx)
	if len(keysAfter) != len(keysBefore) || keysAfter[0].ID != keysBefore[0].ID {
		t.Errorf("signing keys before %v, after %v", keysBefore, keysAfter)
	}
	r := token(t, as, url.Values{"grant_type": {"refresh_token"}, "client_id": {nativeClient}, "refresh_token": {userTok.Refresh}}, "", "")
	if r.status != 200 {
		t.Fatalf("refresh token issued before the reload: %+v", r)
	}
	verify(r.Access)

	// The backup carries the authorization server's collections ...
	var doc store.Backup
	if err := json.Unmarshal(backup.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{nsClients, nsUsers, nsFamilies, nsConsent, nsKeys, nsCodes} {
		if len(doc.Collections[ns]) == 0 {
			t.Errorf("backup has no %s", ns)
		}
	}
	// ... and restored into an empty registry, the old tokens verify there.
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	if err := loadAS(t, fresh, port, map[string]any{"encryption_key": persistKey}); err != nil {
		t.Fatal(err)
	}
	reg, _ = runningRegistry(t)
	if _, err := reg.Restore(context.Background(), bytes.NewReader(backup.Bytes()), store.RestoreReplace); err != nil {
		t.Fatal(err)
	}
	if err := loadAS(t, fresh, port, map[string]any{"encryption_key": persistKey, "tombstone_retention": int64(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	verify(machineTok.Access)
	_, rs = runningRegistry(t)
	if _, err := rs.GetUser(ctx, "bob"); err != nil {
		t.Errorf("restored user: %v", err)
	}
}

// TestProvisionNeedsAnEncryptionKey: without the registry's encryption_key or
// signing_key_encryption_key the config is refused (keys are never stored in the
// clear); either one is enough.
func TestProvisionNeedsAnEncryptionKey(t *testing.T) {
	t.Cleanup(func() { caddy.Stop() })
	db := filepath.Join(t.TempDir(), "registry.db")
	port := freePort(t)
	err := loadAS(t, db, port, nil)
	if err == nil || !strings.Contains(err.Error(), "encryption_key in mcp_registry") || !strings.Contains(err.Error(), "signing_key_encryption_key") {
		t.Fatalf("got %v, want a refusal naming both keys", err)
	}
	if err := loadAS(t, db, port, map[string]any{"encryption_key": persistKey}); err != nil {
		t.Fatalf("with the registry's key: %v", err)
	}
}
