package oauthserver

import (
	"testing"
	"time"
)

// rotatingSealer seals under cur and opens under cur or prev, like the registry's keyring;
// staleUnder adds its Stale.
type rotatingSealer struct{ cur, prev *AESGCMSealer }

func (r rotatingSealer) Seal(aad string, p []byte) ([]byte, error) { return r.cur.Seal(aad, p) }
func (r rotatingSealer) Open(aad string, s []byte) ([]byte, error) {
	if p, err := r.cur.Open(aad, s); err == nil {
		return p, nil
	}
	return r.prev.Open(aad, s)
}

// TestSigningKeysResealedUnderNewKey: keys sealed under a previous registry key are
// sealed again under the current one when loaded, so the previous key can go.
func TestSigningKeysResealedUnderNewKey(t *testing.T) {
	oldKey, _ := NewAESGCMSealer([]byte("0123456789abcdef0123456789abcdef"))
	newKey, _ := NewAESGCMSealer([]byte("fedcba9876543210fedcba9876543210"))
	st := newTestRegistryStore(t)
	ctx := t.Context()
	now := time.Now()
	first := &keyRing{store: st, sealer: oldKey, rotation: 24 * time.Hour, overlap: time.Hour}
	if _, err := first.signer(ctx, now); err != nil {
		t.Fatal(err)
	}
	keys, _ := st.ListSigningKeys(ctx)
	kid := keys[0].ID
	second := &keyRing{store: st, sealer: staleUnder{rotatingSealer{cur: newKey, prev: oldKey}, kid}, rotation: 24 * time.Hour, overlap: time.Hour}
	if sk, err := second.signer(ctx, now); err != nil || sk.kid != kid {
		t.Fatalf("signer after rotation: %v, %v", sk, err)
	}
	keys, _ = st.ListSigningKeys(ctx)
	if _, err := newKey.Open(keyAAD(kid), keys[0].Sealed); err != nil {
		t.Fatalf("key not re-sealed under the current key: %v", err)
	}
	if _, err := oldKey.Open(keyAAD(kid), keys[0].Sealed); err == nil {
		t.Fatal("key still opens under the previous key")
	}
}

// staleUnder reports a value stale when the current key cannot open it as kid's key.
type staleUnder struct {
	rotatingSealer
	kid string
}

func (s staleUnder) Stale(sealed []byte) bool {
	_, err := s.cur.Open(keyAAD(s.kid), sealed)
	return err != nil
}
