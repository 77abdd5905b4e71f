package oauthserver

import (
	"context"
	"crypto/subtle"
	"slices"
	"sort"
	"sync"
	"time"
)

// MemoryStore is a thread-safe in-memory Store for tests and embedders without a
// registry; its state is lost on restart. The module keeps its state in the registry's
// store (registryStore).
type MemoryStore struct {
	mu        sync.Mutex
	clients   map[string]Client
	requests  map[string]AuthRequest
	sessions  map[string]Session
	codes     map[string]Code
	families  map[string]RefreshFamily
	consents  map[[3]string]Consent
	users     map[string]User
	personal  map[string]PersonalToken
	keys      map[string]SigningKey
	failures  map[string]LoginFailures
	used      map[string]UsedAssertion
	revoked   map[string]Revocation
	lastSweep time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		clients:  map[string]Client{},
		requests: map[string]AuthRequest{},
		sessions: map[string]Session{},
		codes:    map[string]Code{},
		families: map[string]RefreshFamily{},
		consents: map[[3]string]Consent{},
		users:    map[string]User{},
		keys:     map[string]SigningKey{},
		failures: map[string]LoginFailures{},
		used:     map[string]UsedAssertion{},
		revoked:  map[string]Revocation{},
	}
}

// sweep drops expired short-lived records, at most once a minute; mu must be held.
func (m *MemoryStore) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < time.Minute {
		return
	}
	m.lastSweep = now
	for k, v := range m.requests {
		if now.After(v.Expires) {
			delete(m.requests, k)
		}
	}
	for k, v := range m.sessions {
		if now.After(v.Expires) {
			delete(m.sessions, k)
		}
	}
	for k, v := range m.codes {
		// Redeemed codes are kept past expiry no longer than a code lives twice, so a
		// late replay is still recognised and revokes what the first use produced.
		if now.After(v.Expires.Add(codeLifetime)) {
			delete(m.codes, k)
		}
	}
	for k, v := range m.families {
		if now.After(v.Expires) {
			delete(m.families, k)
		}
	}
	for k, v := range m.failures {
		if now.Sub(v.Last) > failureRetention {
			delete(m.failures, k)
		}
	}
	for k, v := range m.used {
		if now.After(v.Expires) {
			delete(m.used, k)
		}
	}
	for k, v := range m.revoked {
		if now.After(v.Expires) {
			delete(m.revoked, k)
		}
	}
}

func (m *MemoryStore) PutRevocation(_ context.Context, r Revocation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked[r.Key] = r
	return nil
}

func (m *MemoryStore) ListRevocations(_ context.Context) ([]Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	out := make([]Revocation, 0, len(m.revoked))
	for _, r := range m.revoked {
		if !now.After(r.Expires) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *MemoryStore) UseAssertion(_ context.Context, key string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.sweep(now)
	if u, ok := m.used[key]; ok && !now.After(u.Expires) {
		return ErrExists
	}
	m.used[key] = UsedAssertion{Expires: expires}
	return nil
}

func cloneClient(c Client) Client {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	c.Groups = slices.Clone(c.Groups)
	return c
}

func (m *MemoryStore) CreateClient(_ context.Context, c Client) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.clients[c.ID]; ok {
		return ErrExists
	}
	m.clients[c.ID] = cloneClient(c)
	return nil
}

func (m *MemoryStore) GetClient(_ context.Context, id string) (Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[id]
	if !ok {
		return Client{}, ErrNotFound
	}
	return cloneClient(c), nil
}

func (m *MemoryStore) DeleteClient(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.clients, id)
	return nil
}

func (m *MemoryStore) PutAuthRequest(_ context.Context, r AuthRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(time.Now())
	m.requests[r.ID] = r
	return nil
}

func (m *MemoryStore) GetAuthRequest(_ context.Context, id string) (AuthRequest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.requests[id]
	if !ok || time.Now().After(r.Expires) {
		return AuthRequest{}, ErrNotFound
	}
	return r, nil
}

func (m *MemoryStore) DeleteAuthRequest(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.requests, id)
	return nil
}

func (m *MemoryStore) PutSession(_ context.Context, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[s.ID] = s
	return nil
}

func (m *MemoryStore) GetSession(_ context.Context, id string) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || time.Now().After(s.Expires) {
		return Session{}, ErrNotFound
	}
	return s, nil
}

func (m *MemoryStore) DeleteSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	return nil
}

func (m *MemoryStore) PutCode(_ context.Context, c Code) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(time.Now())
	if _, ok := m.codes[c.Hash]; ok {
		return ErrExists
	}
	c.Groups = slices.Clone(c.Groups)
	m.codes[c.Hash] = c
	return nil
}

func (m *MemoryStore) RedeemCode(_ context.Context, hash, familyID string, now time.Time) (Code, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.codes[hash]
	if !ok {
		return Code{}, ErrNotFound
	}
	if c.Redeemed {
		return c, ErrCodeReused
	}
	if now.After(c.Expires) {
		return Code{}, ErrNotFound
	}
	c.Redeemed = true
	c.FamilyID = familyID
	m.codes[hash] = c
	c.Groups = slices.Clone(c.Groups)
	return c, nil
}

func (m *MemoryStore) CreateFamily(_ context.Context, f RefreshFamily) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.families[f.ID]; ok {
		return ErrExists
	}
	m.families[f.ID] = f
	return nil
}

func (m *MemoryStore) RotateRefresh(_ context.Context, familyID, presentedHash, nextHash string, nextExpires, now time.Time) (RefreshFamily, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.families[familyID]
	if !ok {
		return RefreshFamily{}, ErrNotFound
	}
	if f.Revoked || now.After(f.Expires) {
		return RefreshFamily{}, ErrRevoked
	}
	if subtle.ConstantTimeCompare([]byte(f.CurrentHash), []byte(presentedHash)) != 1 {
		f.Revoked = true
		m.families[familyID] = f
		return RefreshFamily{}, ErrRefreshReused
	}
	f.CurrentHash = nextHash
	f.Expires = nextExpires
	m.families[familyID] = f
	return f, nil
}

func (m *MemoryStore) GetFamily(_ context.Context, familyID string) (RefreshFamily, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.families[familyID]
	if !ok {
		return RefreshFamily{}, ErrNotFound
	}
	return f, nil
}

func (m *MemoryStore) RevokeFamily(_ context.Context, familyID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.families[familyID]; ok {
		f.Revoked = true
		m.families[familyID] = f
	}
	return nil
}

func (m *MemoryStore) HasConsent(_ context.Context, user, clientID, resource string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.consents[[3]string{user, clientID, resource}]
	return ok, nil
}

func (m *MemoryStore) PutConsent(_ context.Context, c Consent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.consents[[3]string{c.User, c.ClientID, c.Resource}] = c
	return nil
}

func (m *MemoryStore) GetUser(_ context.Context, name string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[name]
	if !ok {
		return User{}, ErrNotFound
	}
	u.Groups = slices.Clone(u.Groups)
	return u, nil
}

func (m *MemoryStore) CreateUser(_ context.Context, u User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[u.Name]; ok {
		return ErrExists
	}
	u.Groups = slices.Clone(u.Groups)
	m.users[u.Name] = u
	return nil
}

func (m *MemoryStore) UpdateUser(_ context.Context, u User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[u.Name]; !ok {
		return ErrNotFound
	}
	u.Groups = slices.Clone(u.Groups)
	m.users[u.Name] = u
	return nil
}

func (m *MemoryStore) DeleteUser(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[name]; !ok {
		return ErrNotFound
	}
	delete(m.users, name)
	return nil
}

func (m *MemoryStore) ListUsers(_ context.Context) ([]User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]User, 0, len(m.users))
	for _, u := range m.users {
		u.Groups = slices.Clone(u.Groups)
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *MemoryStore) ListSigningKeys(_ context.Context) ([]SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SigningKey, 0, len(m.keys))
	for _, k := range m.keys {
		k.Sealed = slices.Clone(k.Sealed)
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

func (m *MemoryStore) PutSigningKey(_ context.Context, k SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k.Sealed = slices.Clone(k.Sealed)
	m.keys[k.ID] = k
	return nil
}

func (m *MemoryStore) DeleteSigningKey(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, id)
	return nil
}

func (m *MemoryStore) LoginFailures(_ context.Context, key string) (LoginFailures, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failures[key], nil
}

func (m *MemoryStore) AddLoginFailure(_ context.Context, key string, now time.Time, window time.Duration) (LoginFailures, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	f := m.failures[key]
	if now.Sub(f.Last) > window {
		f.Count = 0
	}
	f.Count++
	f.Last = now
	m.failures[key] = f
	return f, nil
}

func (m *MemoryStore) ClearLoginFailures(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failures, key)
	return nil
}

var _ Store = (*MemoryStore)(nil)

func (m *MemoryStore) CreatePersonalToken(_ context.Context, t PersonalToken) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.personal[t.ID]; ok {
		return ErrExists
	}
	if m.personal == nil {
		m.personal = map[string]PersonalToken{}
	}
	m.personal[t.ID] = t
	return nil
}

func (m *MemoryStore) GetPersonalToken(_ context.Context, id string) (PersonalToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.personal[id]
	if !ok {
		return PersonalToken{}, ErrNotFound
	}
	return t, nil
}

func (m *MemoryStore) ListPersonalTokens(_ context.Context, user string) ([]PersonalToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []PersonalToken{}
	for _, t := range m.personal {
		if user == "" || t.User == user {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b PersonalToken) int { return a.Created.Compare(b.Created) })
	return out, nil
}

func (m *MemoryStore) DeletePersonalToken(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.personal[id]; !ok {
		return ErrNotFound
	}
	delete(m.personal, id)
	return nil
}
