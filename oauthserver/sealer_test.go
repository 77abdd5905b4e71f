package oauthserver

import (
	"bytes"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func durationOf(d time.Duration) caddy.Duration { return caddy.Duration(d) }

func TestSealerBindsAAD(t *testing.T) {
	s, err := NewAESGCMSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("key a", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("plaintext visible")
	}
	if _, err := s.Open("key b", sealed); err == nil {
		t.Fatal("opened under another aad")
	}
	other, _ := NewAESGCMSealer(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open("key a", sealed); err == nil {
		t.Fatal("opened with another key")
	}
	if plain, err := s.Open("key a", sealed); err != nil || string(plain) != "secret" {
		t.Fatalf("open: %q %v", plain, err)
	}
	if _, err := NewAESGCMSealer([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}
