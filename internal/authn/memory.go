package authn

import "sync"

// KeyMemory remembers, across Validators, the last key set fetched from each JWKS URL and
// the JWKS URL discovered for each issuer. Caddy builds a new Validator on every config
// reload; with a KeyMemory that outlives them (a package-level variable in the Caddy
// glue), a reload during an IdP outage keeps validating with the keys the previous
// Validator had, instead of answering 503 until the IdP is back. The new Validator still
// refreshes those keys at once and on its normal schedule.
//
// It holds public keys only. It grows with the number of distinct issuers and JWKS URLs
// ever configured in the process, which is small. Safe for concurrent use.
type KeyMemory struct {
	mu      sync.Mutex
	keys    map[string]*keyIndex // JWKS URL -> last good index
	jwksURL map[string]string    // issuer -> discovered JWKS URL
}

// NewKeyMemory returns an empty KeyMemory.
func NewKeyMemory() *KeyMemory {
	return &KeyMemory{keys: map[string]*keyIndex{}, jwksURL: map[string]string{}}
}

func (m *KeyMemory) putKeys(u string, ix *keyIndex) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.keys[u] = ix
	m.mu.Unlock()
}

func (m *KeyMemory) getKeys(u string) *keyIndex {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[u]
}

func (m *KeyMemory) putIssuer(issuer, u string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.jwksURL[issuer] = u
	m.mu.Unlock()
}

func (m *KeyMemory) getIssuer(issuer string) string {
	if m == nil {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jwksURL[issuer]
}
