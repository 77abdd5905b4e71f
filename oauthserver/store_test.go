package oauthserver

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// storeImpls are the Store implementations every behaviour test runs against.
var storeImpls = []struct {
	name string
	open func(testing.TB) Store
}{
	{"memory", func(testing.TB) Store { return NewMemoryStore() }},
	{"registry", func(t testing.TB) Store { return newTestRegistryStore(t) }},
}

// newTestRegistryStore opens a registry store on a fresh bbolt file.
func newTestRegistryStore(t testing.TB) *registryStore {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "registry.db"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newRegistryStore(mcpregistry.NewCollectionStore(st))
}

// testRegistrySealer is a sealer with a fixed key, standing in for the registry's.
func testRegistrySealer(t testing.TB) Sealer {
	t.Helper()
	s, err := NewAESGCMSealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func forEachStore(t *testing.T, test func(t *testing.T, st Store)) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) { test(t, impl.open(t)) })
	}
}

func TestStoreClients(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := t.Context()
		c := Client{ID: "c1", AuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/cb"}, Created: time.Now().UTC()}
		if err := st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateClient(ctx, c); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate client: %v", err)
		}
		got, err := st.GetClient(ctx, "c1")
		if err != nil || !slices.Equal(got.RedirectURIs, c.RedirectURIs) || !got.Created.Equal(c.Created) {
			t.Fatalf("GetClient = %+v, %v", got, err)
		}
		got.RedirectURIs[0] = "https://evil.example"
		if again, _ := st.GetClient(ctx, "c1"); again.RedirectURIs[0] != c.RedirectURIs[0] {
			t.Fatal("GetClient returned shared state")
		}
		if err := st.DeleteClient(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetClient(ctx, "c1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted client: %v", err)
		}
	})
}

func TestStoreRequestsAndSessionsExpire(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := t.Context()
		now := time.Now()
		st.PutAuthRequest(ctx, AuthRequest{ID: "live", Expires: now.Add(time.Minute)})
		st.PutAuthRequest(ctx, AuthRequest{ID: "old", Expires: now.Add(-time.Second)})
		st.PutSession(ctx, Session{ID: "s-live", User: "alice", Expires: now.Add(time.Minute)})
		st.PutSession(ctx, Session{ID: "s-old", Expires: now.Add(-time.Second)})
		if r, err := st.GetAuthRequest(ctx, "live"); err != nil || r.ID != "live" {
			t.Fatalf("live request: %+v, %v", r, err)
		}
		if _, err := st.GetAuthRequest(ctx, "old"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired request: %v", err)
		}
		if s, err := st.GetSession(ctx, "s-live"); err != nil || s.User != "alice" {
			t.Fatalf("live session: %+v, %v", s, err)
		}
		if _, err := st.GetSession(ctx, "s-old"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired session: %v", err)
		}
		st.DeleteAuthRequest(ctx, "live")
		st.DeleteSession(ctx, "s-live")
		if _, err := st.GetAuthRequest(ctx, "live"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted request: %v", err)
		}
		if _, err := st.GetSession(ctx, "s-live"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted session: %v", err)
		}
	})
}

func TestStoreCodeRedeemedOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := t.Context()
		now := time.Now()
		code := Code{Hash: "h1", ClientID: "c", Subject: "alice", Groups: []string{"eng"}, Expires: now.Add(time.Minute)}
		if err := st.PutCode(ctx, code); err != nil {
			t.Fatal(err)
		}
		if err := st.PutCode(ctx, code); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate code: %v", err)
		}
		if _, err := st.RedeemCode(ctx, "nope", "f", now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown code: %v", err)
		}
		// Many concurrent redemptions: exactly one wins, the rest learn its family.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				family := string(rune('a' + i))
				c, err := st.RedeemCode(ctx, "h1", family, now)
				switch {
				case err == nil:
					wins.Add(1)
					if c.FamilyID != family || c.Subject != "alice" || !c.Redeemed {
						t.Errorf("redeemed code %+v", c)
					}
				case errors.Is(err, ErrCodeReused):
					if c.FamilyID == "" {
						t.Error("a reused code does not name the family to revoke")
					}
				default:
					t.Errorf("RedeemCode: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d redemptions succeeded, want 1", wins.Load())
		}
		st.PutCode(ctx, Code{Hash: "h2", Expires: now.Add(-time.Second)})
		if _, err := st.RedeemCode(ctx, "h2", "f", now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired code: %v", err)
		}
	})
}

func TestStoreRefreshRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := t.Context()
		now := time.Now()
		f := RefreshFamily{ID: "f1", ClientID: "c", Subject: "alice", CurrentHash: "r0", Expires: now.Add(time.Hour), Created: now}
		if err := st.CreateFamily(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateFamily(ctx, f); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate family: %v", err)
		}
		if _, err := st.RotateRefresh(ctx, "nope", "r0", "r1", now.Add(time.Hour), now); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown family: %v", err)
		}
		// Concurrent rotations of one token: exactly one succeeds.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				got, err := st.RotateRefresh(ctx, "f1", "r0", "r1", now.Add(2*time.Hour), now)
				if err == nil {
					wins.Add(1)
					if got.CurrentHash != "r1" {
						t.Errorf("rotated family %+v", got)
					}
				} else if !errors.Is(err, ErrRefreshReused) && !errors.Is(err, ErrRevoked) {
					t.Errorf("RotateRefresh: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d rotations succeeded, want 1", wins.Load())
		}
		// The losers presented a rotated-out token: the family is revoked, and stays so.
		if got, err := st.GetFamily(ctx, "f1"); err != nil || !got.Revoked {
			t.Fatalf("family after a replay: %+v, %v", got, err)
		}
		if _, err := st.RotateRefresh(ctx, "f1", "r1", "r2", now.Add(time.Hour), now); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked family rotated: %v", err)
		}

		st.CreateFamily(ctx, RefreshFamily{ID: "f2", CurrentHash: "x", Expires: now.Add(time.Hour)})
		if _, err := st.RotateRefresh(ctx, "f2", "other", "y", now.Add(time.Hour), now); !errors.Is(err, ErrRefreshReused) {
			t.Fatalf("replay: %v", err)
		}
		if _, err := st.RotateRefresh(ctx, "f2", "x", "y", now.Add(time.Hour), now); !errors.Is(err, ErrRevoked) {
			t.Fatalf("a replay did not revoke the family: %v", err)
		}
		st.CreateFamily(ctx, RefreshFamily{ID: "f3", CurrentHash: "x", Expires: now.Add(time.Hour)})
		if err := st.RevokeFamily(ctx, "f3"); err != nil {
			t.Fatal(err)
		}
		if err := st.RevokeFamily(ctx, "unknown"); err != nil {
			t.Fatalf("revoking an unknown family: %v", err)
		}
		if _, err := st.RotateRefresh(ctx, "f3", "x", "y", now.Add(time.Hour), now); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked family: %v", err)
		}
		st.CreateFamily(ctx, RefreshFamily{ID: "f4", CurrentHash: "x", Expires: now.Add(-time.Second)})
		if _, err := st.RotateRefresh(ctx, "f4", "x", "y", now.Add(time.Hour), now); !errors.Is(err, ErrRevoked) {
			t.Fatalf("expired family: %v", err)
		}
	})
}

func TestStoreConsentUsersKeysThrottle(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := t.Context()
		now := time.Now()
		st.PutConsent(ctx, Consent{User: "alice", ClientID: "https://c.example/a b", Resource: "https://mcp.example", Granted: now})
		for _, tc := range []struct {
			user, client, resource string
			want                   bool
		}{
			{"alice", "https://c.example/a b", "https://mcp.example", true},
			{"alice", "https://c.example/a", "b https://mcp.example", false}, // parts must not run together
			{"bob", "https://c.example/a b", "https://mcp.example", false},
			{"alice", "https://c.example/a b", "https://mcp.example/x", false},
		} {
			if got, err := st.HasConsent(ctx, tc.user, tc.client, tc.resource); err != nil || got != tc.want {
				t.Errorf("HasConsent(%q, %q, %q) = %v, %v", tc.user, tc.client, tc.resource, got, err)
			}
		}

		if err := st.CreateUser(ctx, User{Name: "zoe", PasswordHash: "h", Groups: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
		st.CreateUser(ctx, User{Name: "bob", PasswordHash: "h"})
		if err := st.CreateUser(ctx, User{Name: "bob"}); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate user: %v", err)
		}
		if err := st.UpdateUser(ctx, User{Name: "zoe", PasswordHash: "h2", Groups: []string{"b"}}); err != nil {
			t.Fatal(err)
		}
		if err := st.UpdateUser(ctx, User{Name: "ghost"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("updating a missing user: %v", err)
		}
		if u, err := st.GetUser(ctx, "zoe"); err != nil || u.PasswordHash != "h2" || !slices.Equal(u.Groups, []string{"b"}) {
			t.Fatalf("GetUser = %+v, %v", u, err)
		}
		users, _ := st.ListUsers(ctx)
		if len(users) != 2 || users[0].Name != "bob" || users[1].Name != "zoe" {
			t.Fatalf("ListUsers = %+v", users)
		}
		if err := st.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteUser(ctx, "bob"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting a missing user: %v", err)
		}

		st.PutSigningKey(ctx, SigningKey{ID: "new", Sealed: []byte{1}, Created: now})
		st.PutSigningKey(ctx, SigningKey{ID: "old", Sealed: []byte{2}, Created: now.Add(-time.Hour)})
		keys, _ := st.ListSigningKeys(ctx)
		if len(keys) != 2 || keys[0].ID != "old" || keys[1].ID != "new" || keys[0].Sealed[0] != 2 {
			t.Fatalf("ListSigningKeys = %+v", keys)
		}
		st.DeleteSigningKey(ctx, "old")
		if keys, _ := st.ListSigningKeys(ctx); len(keys) != 1 {
			t.Fatalf("after delete: %+v", keys)
		}

		if f, err := st.LoginFailures(ctx, "user:alice"); err != nil || f.Count != 0 {
			t.Fatalf("no failures yet: %+v, %v", f, err)
		}
		st.AddLoginFailure(ctx, "user:alice", now, time.Hour)
		if f, _ := st.AddLoginFailure(ctx, "user:alice", now.Add(time.Minute), time.Hour); f.Count != 2 {
			t.Fatalf("second failure counted %d", f.Count)
		}
		if f, _ := st.AddLoginFailure(ctx, "user:alice", now.Add(3*time.Hour), time.Hour); f.Count != 1 {
			t.Fatalf("failure after the window counted %d", f.Count)
		}
		st.ClearLoginFailures(ctx, "user:alice")
		if f, _ := st.LoginFailures(ctx, "user:alice"); f.Count != 0 {
			t.Fatalf("cleared failures: %+v", f)
		}
	})
}

// TestRegistryStoreSweep: expired short-lived records are purged by Sweep and by the
// periodic sweep, which ends with its context; live ones and long-lived ones stay.
func TestRegistryStoreSweep(t *testing.T) {
	st := newTestRegistryStore(t)
	ctx := t.Context()
	now := time.Now()
	past := now.Add(-time.Second)
	st.PutAuthRequest(ctx, AuthRequest{ID: "old", Expires: past})
	st.PutAuthRequest(ctx, AuthRequest{ID: "live", Expires: now.Add(time.Minute)})
	st.PutSession(ctx, Session{ID: "old", Expires: past})
	st.PutCode(ctx, Code{Hash: "old", Expires: now.Add(-2 * codeLifetime)})
	st.PutCode(ctx, Code{Hash: "recent", Expires: past, Redeemed: true}) // kept to recognise a replay
	st.CreateFamily(ctx, RefreshFamily{ID: "old", Expires: past})
	st.CreateFamily(ctx, RefreshFamily{ID: "live", Expires: now.Add(time.Hour)})
	st.AddLoginFailure(ctx, "ip:192.0.2.1", now.Add(-failureRetention-time.Minute), time.Hour)
	st.AddLoginFailure(ctx, "ip:192.0.2.2", now, time.Hour)
	st.CreateUser(ctx, User{Name: "alice"})
	st.PutConsent(ctx, Consent{User: "alice", ClientID: "c", Resource: "r"})

	n, err := st.Sweep(now)
	if err != nil || n != 5 {
		t.Fatalf("Sweep = %d, %v; want 5 records purged", n, err)
	}
	count := func(ns string) (n int) {
		st.view(ns, func(c store.Collection) error {
			return c.ForEach(func(string, []byte) error { n++; return nil })
		})
		return n
	}
	for ns, want := range map[string]int{nsAuthRequests: 1, nsSessions: 0, nsCodes: 1, nsFamilies: 1, nsThrottle: 1, nsUsers: 1, nsConsent: 1} {
		if got := count(ns); got != want {
			t.Errorf("%s holds %d records after the sweep, want %d", ns, got, want)
		}
	}
	if n, err := st.Sweep(now); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v", n, err)
	}

	// The periodic sweep purges what expires later, and stops with its context.
	st.PutSession(ctx, Session{ID: "soon", Expires: time.Now().Add(50 * time.Millisecond)})
	sweepCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { st.sweepEvery(sweepCtx, 20*time.Millisecond, nopLogger()); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for count(nsSessions) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the periodic sweep did not purge an expired session")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the periodic sweep did not stop with its context")
	}
}

// TestRegistryStorePurgesOnRead: an expired request or session found by a read is
// deleted then, not left for the sweep.
func TestRegistryStorePurgesOnRead(t *testing.T) {
	st := newTestRegistryStore(t)
	ctx := t.Context()
	st.PutAuthRequest(ctx, AuthRequest{ID: "old", Expires: time.Now().Add(-time.Second)})
	st.PutSession(ctx, Session{ID: "old", Expires: time.Now().Add(-time.Second)})
	st.GetAuthRequest(ctx, "old")
	st.GetSession(ctx, "old")
	for _, ns := range []string{nsAuthRequests, nsSessions} {
		err := st.view(ns, func(c store.Collection) error { _, err := c.Get("old"); return err })
		if err == nil {
			t.Errorf("expired record still in %s after a read", ns)
		}
	}
}

// flowsOnRegistryStore makes newTestAS use a registry store (TestFlowsOnRegistryStore).
var flowsOnRegistryStore bool

// TestFlowsOnRegistryStore runs the flow tests that depend on the store's behaviour
// against the registry store as well (the others run on the MemoryStore).
func TestFlowsOnRegistryStore(t *testing.T) {
	flowsOnRegistryStore = true
	t.Cleanup(func() { flowsOnRegistryStore = false })
	for name, test := range map[string]func(*testing.T){
		"CodeFlowRefreshRotationAndReplay": TestCodeFlowRefreshRotationAndReplay,
		"CodeReuseRevokesWhatItProduced":   TestCodeReuseRevokesWhatItProduced,
		"CodeExpiresAfterSixtySeconds":     TestCodeExpiresAfterSixtySeconds,
		"RevokeRefreshToken":               TestRevokeRefreshToken,
		"KeyRotationKeepsOldKeyPublished":  TestKeyRotationKeepsOldKeyPublished,
		"ClientCredentials":                TestClientCredentials,
		"LoginBruteForceThrottled":         TestLoginBruteForceThrottled,
		"LoginFormCSRFAndSessionBinding":   TestLoginFormCSRFAndSessionBinding,
		"StoreUsersSignIn":                 TestStoreUsersSignIn,
		"DynamicClientRegistration":        TestDynamicClientRegistration,
		"CIMDClientSignsIn":                TestCIMDClientSignsIn,
	} {
		t.Run(name, test)
	}
}

// storedClients counts the dynamically registered clients st holds.
func storedClients(t testing.TB, st Store) int {
	t.Helper()
	switch st := st.(type) {
	case *MemoryStore:
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.clients)
	case *registryStore:
		n := 0
		if err := st.view(nsClients, func(c store.Collection) error {
			return c.ForEach(func(string, []byte) error { n++; return nil })
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("no client count for %T", st)
	return 0
}

// An assertion is used once, across instances sharing the store, until it expires.
func TestStoreUseAssertionOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store) {
		ctx := context.Background()
		exp := time.Now().Add(time.Minute)
		if err := st.UseAssertion(ctx, "k", exp); err != nil {
			t.Fatal(err)
		}
		if err := st.UseAssertion(ctx, "k", exp); !errors.Is(err, ErrExists) {
			t.Errorf("second use: %v, want ErrExists", err)
		}
		if err := st.UseAssertion(ctx, "k2", exp); err != nil {
			t.Errorf("another assertion: %v", err)
		}
		if err := st.UseAssertion(ctx, "old", time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := st.UseAssertion(ctx, "old", exp); err != nil {
			t.Errorf("after its record expired: %v", err)
		}
	})
}
