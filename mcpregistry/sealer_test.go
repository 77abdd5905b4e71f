package mcpregistry

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const (
	sealerKeyA = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // "0123456789abcdef0123456789abcdef"
	sealerKeyB = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=" // "fedcba9876543210fedcba9876543210"
)

func sealerApp(t *testing.T, current string, previous ...string) *App {
	t.Helper()
	kr, err := newKeyring(current, previous)
	if err != nil {
		t.Fatal(err)
	}
	a := new(App)
	a.creds.keys = kr
	return a
}

func TestSealerNeedsEncryptionKey(t *testing.T) {
	_, err := sealerApp(t, "").Sealer("test")
	if !errors.Is(err, ErrNoEncryptionKey) || !strings.Contains(err.Error(), "set encryption_key in mcp_registry") {
		t.Fatalf("got %v, want ErrNoEncryptionKey naming encryption_key", err)
	}
	if _, err := sealerApp(t, sealerKeyA).Sealer(""); err == nil {
		t.Fatal("an empty purpose was accepted")
	}
}

func TestSealerBindsPurposeAndName(t *testing.T) {
	a := sealerApp(t, sealerKeyA)
	s, _ := a.Sealer("signing key")
	other, _ := a.Sealer("other purpose")
	secret := []byte("private key bytes 0123456789")
	sealed, err := s.Seal("k1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value holds the plaintext")
	}
	if got, err := s.Open("k1", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open("k2", sealed); err == nil {
		t.Error("opened under another name")
	}
	if _, err := other.Open("k1", sealed); err == nil {
		t.Error("opened under another purpose")
	}
	if _, err := s.Open("k1", []byte("{}")); err == nil {
		t.Error("opened garbage")
	}
	if s.Stale(sealed) {
		t.Error("fresh value reported stale")
	}
}

func TestSealerKeyRotation(t *testing.T) {
	old, _ := sealerApp(t, sealerKeyA).Sealer("p")
	sealed, _ := old.Seal("n", []byte("secret"))

	rotated, _ := sealerApp(t, sealerKeyB, sealerKeyA).Sealer("p")
	if got, err := rotated.Open("n", sealed); err != nil || string(got) != "secret" {
		t.Fatalf("value under the previous key: %q, %v", got, err)
	}
	if !rotated.Stale(sealed) {
		t.Error("value under the previous key not reported stale")
	}
	resealed, _ := rotated.Seal("n", []byte("secret"))
	if rotated.Stale(resealed) {
		t.Error("re-sealed value reported stale")
	}

	dropped, _ := sealerApp(t, sealerKeyB).Sealer("p")
	_, err := dropped.Open("n", sealed)
	if err == nil || !strings.Contains(err.Error(), "previous_encryption_keys") {
		t.Fatalf("value under a dropped key: %v, want an error naming previous_encryption_keys", err)
	}
}
