package mcpregistry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// The key file is made once, private, and every later start (or a concurrent one)
// reads the same key; a file that is no key is refused with a message saying why.
func TestEncryptionKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "encryption.key")
	var wg sync.WaitGroup
	keys := make([]string, 8)
	created := make([]bool, 8)
	for i := range keys {
		wg.Go(func() {
			var err error
			keys[i], created[i], err = loadOrCreateKeyFile(path)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	for i, k := range keys {
		if k != keys[0] {
			t.Fatalf("start %d read key %q, start 0 %q: concurrent starts disagree", i, k, keys[0])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d starts say they created the key, want 1", n)
	}
	if _, err := parseKey(keys[0]); err != nil {
		t.Errorf("generated key %q does not parse: %v", keys[0], err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if again, made, err := loadOrCreateKeyFile(path); err != nil || made || again != keys[0] {
		t.Errorf("second start: %q created=%v %v", again, made, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "data", ".encryption-key-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	empty := filepath.Join(dir, "empty.key")
	os.WriteFile(empty, nil, 0o600)
	if _, _, err := loadOrCreateKeyFile(empty); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty key file: %v", err)
	}
	big := filepath.Join(dir, "big.key")
	os.WriteFile(big, make([]byte, 10<<10), 0o600)
	if _, _, err := loadOrCreateKeyFile(big); err == nil || !strings.Contains(err.Error(), "not a key") {
		t.Errorf("10 KiB key file: %v", err)
	}
}

// A config with both encryption_key and encryption_key_file is refused, and nothing is
// written: one key must decide what seals the store.
func TestEncryptionKeyAndFileExclusive(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "encryption.key")
	cfg, _ := json.Marshal(map[string]any{"admin": noAdmin, "apps": map[string]any{"mcp_registry": map[string]any{
		"storage":             map[string]any{"path": filepath.Join(dir, "registry.db")},
		"encryption_key":      strings.Repeat("ab", 32),
		"encryption_key_file": keyFile,
	}}})
	err := caddy.Load(cfg, true)
	if err == nil || !strings.Contains(err.Error(), "exclusive") {
		caddy.Stop()
		t.Fatalf("both keys: %v, want a refusal naming them exclusive", err)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("the key file was written although the config was refused (%v)", err)
	}
}
