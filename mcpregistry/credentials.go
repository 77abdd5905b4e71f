package mcpregistry

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// Backend credentials: the secret a server's upstream wants (a bearer token or an API
// key, plus extra headers whose values may be secret too). The config names them with
// {env.*} / {file.*} placeholders, resolved in Provision; the store keeps them only
// sealed with AES-256-GCM (bucket "credentials", keyed by server name, the name as
// additional data so a sealed value cannot be moved to another server), beside the id
// of the key that sealed them. The decrypted header values live in the App's memory
// only, for the gateway and the health checker; no API, tool, log line or error
// message carries them.

// sealedCredential is the stored form of one server's credential.
type sealedCredential struct {
	// KeyID is hex(SHA-256(key)[:8]) of the key that sealed it.
	KeyID string `json:"kid"`
	Nonce []byte `json:"nonce"`
	// Ciphertext is AES-256-GCM of the JSON of credentialPlain.
	Ciphertext []byte `json:"ct"`
}

// credentialPlain is what is sealed.
type credentialPlain struct {
	// Origin is the upstream origin the credential was given for (upstreamOrigin): it
	// is sent nowhere else. Sealed with the secret, so no store write can rebind it.
	Origin  string                  `json:"origin,omitempty"`
	Scheme  model.BackendAuthScheme `json:"scheme,omitempty"`
	Header  string                  `json:"header,omitempty"`
	Value   string                  `json:"value,omitempty"`
	Headers map[string]string       `json:"headers,omitempty"`
}

// keyring holds the current encryption key and the previous ones still readable.
type keyring struct {
	current *aeadKey
	byID    map[string]*aeadKey
}

type aeadKey struct {
	id   string
	aead cipher.AEAD
}

// keyID is the public id of a key: the first 8 bytes of its SHA-256, in hex.
func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// parseKey decodes a 32-byte key given as base64 (standard or URL alphabet, padded or
// not) or hex.
func parseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("must be 32 bytes in base64 or hex (generate one with: openssl rand -base64 32)")
}

func newAEADKey(key []byte) (*aeadKey, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &aeadKey{id: keyID(key), aead: aead}, nil
}

// newKeyring resolves placeholders in the configured keys and parses them. It returns
// nil (and no error) when no current key is configured.
func newKeyring(current string, previous []string) (*keyring, error) {
	repl := caddy.NewReplacer()
	resolve := func(what, v string) ([]byte, error) {
		v = repl.ReplaceKnown(v, "")
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("%s is empty (does its {env.*} / {file.*} placeholder resolve?)", what)
		}
		k, err := parseKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", what, err)
		}
		return k, nil
	}
	if current == "" {
		if len(previous) > 0 {
			return nil, errors.New("previous_encryption_keys needs encryption_key (the current key)")
		}
		return nil, nil
	}
	kr := &keyring{byID: map[string]*aeadKey{}}
	k, err := resolve("encryption_key", current)
	if err != nil {
		return nil, err
	}
	if kr.current, err = newAEADKey(k); err != nil {
		return nil, fmt.Errorf("encryption_key: %v", err)
	}
	kr.byID[kr.current.id] = kr.current
	for i, p := range previous {
		k, err := resolve(fmt.Sprintf("previous_encryption_keys[%d]", i), p)
		if err != nil {
			return nil, err
		}
		ak, err := newAEADKey(k)
		if err != nil {
			return nil, fmt.Errorf("previous_encryption_keys[%d]: %v", i, err)
		}
		if _, dup := kr.byID[ak.id]; !dup {
			kr.byID[ak.id] = ak
		}
	}
	return kr, nil
}

// seal encrypts c for server name under the current key, with a fresh random nonce.
func (kr *keyring) seal(name string, c *credentialPlain) ([]byte, error) {
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, kr.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generating nonce: %v", err)
	}
	sc := sealedCredential{KeyID: kr.current.id, Nonce: nonce, Ciphertext: kr.current.aead.Seal(nil, nonce, plain, []byte(name))}
	clear(plain)
	return json.Marshal(sc)
}

// open decrypts the sealed credential of server name. stale reports that it was sealed
// under a previous key. Errors name the server and key id, never the content.
func (kr *keyring) open(name string, raw []byte) (c *credentialPlain, stale bool, err error) {
	var sc sealedCredential
	if err := json.Unmarshal(raw, &sc); err != nil {
		return nil, false, fmt.Errorf("credential for server %q is corrupt in the store", name)
	}
	if kr == nil {
		return nil, false, fmt.Errorf("credential for server %q is stored encrypted with key id %s but no encryption_key is configured; configure that key", name, sc.KeyID)
	}
	k := kr.byID[sc.KeyID]
	if k == nil {
		return nil, false, fmt.Errorf("credential for server %q was encrypted with key id %s; configure that key as encryption_key or in previous_encryption_keys (configured: %s)", name, sc.KeyID, kr.ids())
	}
	if len(sc.Nonce) != k.aead.NonceSize() {
		return nil, false, fmt.Errorf("credential for server %q is corrupt in the store", name)
	}
	plain, err := k.aead.Open(nil, sc.Nonce, sc.Ciphertext, []byte(name))
	if err != nil {
		return nil, false, fmt.Errorf("credential for server %q does not decrypt with key id %s (tampered, or stored for another server)", name, sc.KeyID)
	}
	c = new(credentialPlain)
	err = json.Unmarshal(plain, c)
	clear(plain)
	if err != nil {
		return nil, false, fmt.Errorf("credential for server %q is corrupt in the store", name)
	}
	return c, k != kr.current, nil
}

func (kr *keyring) ids() string {
	ids := make([]string, 0, len(kr.byID))
	for id := range kr.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ", ")
}

// declaredCredential resolves the placeholders of a config server's credential. It
// returns nil when the server declares none.
func declaredCredential(c *ServerConfig, s *model.Server) (*credentialPlain, error) {
	if c.BackendCredential == "" && len(c.BackendHeaders) == 0 {
		if s.BackendAuth.Scheme == model.BackendAuthBearer || s.BackendAuth.Scheme == model.BackendAuthAPIKey {
			return nil, fmt.Errorf("server %q: backend_auth %s needs backend_credential", s.Name, s.BackendAuth.Scheme)
		}
		return nil, nil
	}
	repl := caddy.NewReplacer()
	p := &credentialPlain{Origin: upstreamOrigin(s.Upstream), Scheme: s.BackendAuth.Scheme, Header: s.BackendAuth.Header}
	if c.BackendCredential != "" {
		if p.Scheme == model.BackendAuthNone {
			return nil, fmt.Errorf("server %q: backend_credential needs backend_auth bearer or api_key <header>", s.Name)
		}
		p.Value = trimNewline(repl.ReplaceKnown(c.BackendCredential, ""))
		if p.Value == "" {
			return nil, fmt.Errorf("server %q: backend_credential is empty (does its {env.*} / {file.*} placeholder resolve?)", s.Name)
		}
		if !validHeaderValue(p.Value) {
			return nil, fmt.Errorf("server %q: backend_credential contains characters not allowed in a header", s.Name)
		}
	} else if p.Scheme == model.BackendAuthBearer || p.Scheme == model.BackendAuthAPIKey {
		return nil, fmt.Errorf("server %q: backend_auth %s needs backend_credential", s.Name, p.Scheme)
	}
	if len(c.BackendHeaders) > 0 {
		p.Headers = make(map[string]string, len(c.BackendHeaders))
	}
	for name, v := range c.BackendHeaders {
		if !model.ValidHeaderName(name) {
			return nil, fmt.Errorf("server %q: backend_header %q is not a valid header name", s.Name, name)
		}
		v = trimNewline(repl.ReplaceKnown(v, ""))
		if !validHeaderValue(v) {
			return nil, fmt.Errorf("server %q: backend_header %s has characters not allowed in a header", s.Name, name)
		}
		p.Headers[http.CanonicalHeaderKey(name)] = v
	}
	return p, nil
}

func trimNewline(s string) string { return strings.TrimRight(s, "\r\n") }

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func (c *credentialPlain) equal(o *credentialPlain) bool {
	if c.Origin != o.Origin || c.Scheme != o.Scheme || c.Header != o.Header || c.Value != o.Value || len(c.Headers) != len(o.Headers) {
		return false
	}
	for k, v := range c.Headers {
		if ov, ok := o.Headers[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// headers turns c into the header values set on outbound requests.
func (c *credentialPlain) headers() http.Header {
	h := make(http.Header, len(c.Headers)+1)
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	switch c.Scheme {
	case model.BackendAuthBearer:
		h.Set("Authorization", "Bearer "+c.Value)
	case model.BackendAuthAPIKey:
		h.Set(c.Header, c.Value)
	}
	return h
}

// reconcileCredentials writes the config servers' credentials (sealed) into the store,
// removes those of config servers that no longer declare one, re-seals credentials
// stored under a previous key (binding one sealed before origins were recorded to its
// server's current upstream), and returns every server's decrypted headers.
func reconcileCredentials(st store.Store, kr *keyring, declared map[string]*credentialPlain, configServers map[string]bool) (map[string]boundHeaders, error) {
	if kr == nil {
		for name := range declared {
			return nil, fmt.Errorf("server %q declares a backend credential but the registry has no encryption_key; "+
				"credentials are only stored encrypted: set encryption_key {env.MCP_REGISTRY_KEY} (generate one with: openssl rand -base64 32)", name)
		}
	}
	out := map[string]boundHeaders{}
	err := st.Update(func(tx store.Tx) error {
		for name := range configServers {
			want := declared[name]
			raw, err := tx.GetCredential(name)
			if err != nil && !errors.Is(err, model.ErrNotFound) {
				return err
			}
			if want == nil {
				if raw != nil {
					if err := tx.DeleteCredential(name); err != nil {
						return err
					}
				}
				continue
			}
			if raw != nil {
				// A value sealed under a key we do not have is an error, not something
				// to overwrite: other instances may share the store with that key.
				have, stale, err := kr.open(name, raw)
				if err != nil {
					return err
				}
				if !stale && have.equal(want) {
					continue
				}
			}
			sealed, err := kr.seal(name, want)
			if err != nil {
				return fmt.Errorf("sealing credential for server %q: %v", name, err)
			}
			if err := tx.PutCredential(name, sealed); err != nil {
				return err
			}
		}
		names, err := tx.ListCredentials()
		if err != nil {
			return err
		}
		for _, name := range names {
			raw, err := tx.GetCredential(name)
			if err != nil {
				return err
			}
			c, stale, err := kr.open(name, raw)
			if err != nil {
				return err
			}
			if c.Origin == "" {
				rec, err := tx.Get(name)
				if err != nil {
					return err
				}
				c.Origin, stale = upstreamOrigin(rec.Upstream), true
			}
			if stale {
				sealed, err := kr.seal(name, c)
				if err != nil {
					return fmt.Errorf("re-sealing credential for server %q: %v", name, err)
				}
				if err := tx.PutCredential(name, sealed); err != nil {
					return err
				}
			}
			out[name] = c.bound()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// credentialState is what the App holds of the backend credentials at run time.
type credentialState struct {
	// headers: server name → decrypted backend headers and the origin they are for
	// (memory only; never logged), replaced copy-on-write under mu by runtime writes.
	headers map[string]boundHeaders
	mu      sync.RWMutex
	keys    *keyring // nil without an encryption_key
}

// BackendHeaders returns the headers (credential and extra headers) the gateway sets
// on requests to s's upstream, or nil: also nil when the credential was given for
// another origin than s's upstream (suspended until confirmed). Pass the record the
// request is routed with, so the check is against the upstream actually dialled. The
// returned map is shared: callers must not modify it, log it or put it in an error.
func (a *App) BackendHeaders(s *model.Server) http.Header {
	if s == nil {
		return nil
	}
	a.creds.mu.RLock()
	b := a.creds.headers[s.Name]
	a.creds.mu.RUnlock()
	if b.headers == nil || !sameOrigin(s.Upstream, b.origin) {
		return nil
	}
	return b.headers
}

// bound is c's headers bound to its origin.
func (c *credentialPlain) bound() boundHeaders {
	return boundHeaders{origin: c.Origin, headers: c.headers()}
}

// credentialTransport sets a server's backend headers on the health checker's requests.
type credentialTransport struct {
	base http.RoundTripper
	h    http.Header
}

func (t credentialTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header[k] = v
	}
	return t.base.RoundTrip(r)
}

// healthClientFor returns the HTTP client the health checker uses for s.
func (a *App) healthClientFor(s *model.Server) *http.Client {
	h := a.BackendHeaders(s)
	if len(h) == 0 {
		return a.health.client
	}
	return &http.Client{Transport: credentialTransport{base: a.health.transport, h: h}}
}
