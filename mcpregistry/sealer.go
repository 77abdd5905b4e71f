package mcpregistry

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrNoEncryptionKey is what App.Sealer returns when the registry has no encryption_key:
// secrets are never stored in plaintext.
var ErrNoEncryptionKey = errors.New("the registry has no encryption key: set encryption_key in mcp_registry " +
	"(32 bytes in base64 or hex, e.g. {env.MCP_REGISTRY_KEY}; generate one with: openssl rand -base64 32)")

// Sealer encrypts one module's secrets at rest with the registry's keyring
// (AES-256-GCM under encryption_key), so they rotate with it: a value sealed under one
// of previous_encryption_keys still opens, and Stale tells the owner to seal it again.
// The additional data binds each value to the sealer's purpose and to the name it is
// sealed under: a sealed value copied to another record, or to another module's
// records, does not open there.
type Sealer struct {
	keys    *keyring
	purpose string
}

// Sealer returns the sealer for purpose (a fixed label such as
// "mcp_oauth_server signing key"), or ErrNoEncryptionKey.
func (a *App) Sealer(purpose string) (*Sealer, error) {
	if purpose == "" || strings.ContainsRune(purpose, 0) {
		return nil, fmt.Errorf("sealer purpose %q must be non-empty text without NUL", purpose)
	}
	if a.creds.keys == nil {
		return nil, ErrNoEncryptionKey
	}
	return &Sealer{keys: a.creds.keys, purpose: purpose}, nil
}

// aad is the additional data of name's value. Server credentials use the bare server
// name, which never holds a NUL, so no sealed value passes for a credential either.
func (s *Sealer) aad(name string) []byte {
	return []byte("mcp_registry sealer\x00" + s.purpose + "\x00" + name)
}

// Seal encrypts plain for name under the current key with a fresh random nonce.
func (s *Sealer) Seal(name string, plain []byte) ([]byte, error) {
	k := s.keys.current
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generating nonce: %v", err)
	}
	return json.Marshal(sealedCredential{KeyID: k.id, Nonce: nonce, Ciphertext: k.aead.Seal(nil, nonce, plain, s.aad(name))})
}

// Open decrypts what Seal produced for name, under the current key or a previous one.
// Errors name the key id, never the content.
func (s *Sealer) Open(name string, sealed []byte) ([]byte, error) {
	var sc sealedCredential
	if err := json.Unmarshal(sealed, &sc); err != nil {
		return nil, fmt.Errorf("%s %q is corrupt in the store", s.purpose, name)
	}
	k := s.keys.byID[sc.KeyID]
	if k == nil {
		return nil, fmt.Errorf("%s %q was encrypted with key id %s; configure that key as encryption_key or in previous_encryption_keys of mcp_registry (configured: %s)",
			s.purpose, name, sc.KeyID, s.keys.ids())
	}
	if len(sc.Nonce) != k.aead.NonceSize() {
		return nil, fmt.Errorf("%s %q is corrupt in the store", s.purpose, name)
	}
	plain, err := k.aead.Open(nil, sc.Nonce, sc.Ciphertext, s.aad(name))
	if err != nil {
		return nil, fmt.Errorf("%s %q does not decrypt with key id %s (tampered, or sealed for another record)", s.purpose, name, sc.KeyID)
	}
	return plain, nil
}

// Stale reports whether sealed was sealed under another key than the current one (or
// cannot be read): its owner should open it and seal it again, so that previous keys
// can be retired.
func (s *Sealer) Stale(sealed []byte) bool {
	var sc sealedCredential
	return json.Unmarshal(sealed, &sc) != nil || sc.KeyID != s.keys.current.id
}
