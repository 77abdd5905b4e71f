package oauthserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// The registry Collections the authorization server keeps its state in. They travel
// with the registry's backups.
const (
	nsClients      = "oauth.clients"         // dynamically registered clients, by client_id
	nsAuthRequests = "oauth.auth_requests"   // pending authorization requests, by id
	nsSessions     = "oauth.sessions"        // browser sessions, by id
	nsCodes        = "oauth.codes"           // authorization codes, by SHA-256 of the code
	nsFamilies     = "oauth.families"        // refresh-token families, by id
	nsConsent      = "oauth.consent"         // approvals, by consentKey
	nsUsers        = "oauth.users"           // store-held local users, by name
	nsKeys         = "oauth.keys"            // sealed signing keys, by kid
	nsThrottle     = "oauth.throttle"        // failed sign-ins, by throttling key
	nsPersonal     = "oauth.personal_tokens" // personal gateway tokens, by id
	nsAssertions   = "oauth.used_assertions" // client assertions used, by hash of client and jti
	nsRevocations  = "oauth.revocations"     // the access-token revocation list, by Revocation.Key
)

// failureRetention is how long a throttling key's failures are kept after the last
// one: well past failureWindow, so the record is only dropped once it counts no more.
const failureRetention = 24 * time.Hour

// sweepInterval is how often the registry store purges expired records.
const sweepInterval = time.Minute

// registryStore is the Store kept in the registry's Collections: state survives
// restarts and is shared by every instance on the same store. Each method is one
// transaction, so the compare-and-swap operations (RedeemCode, RotateRefresh,
// AddLoginFailure) are atomic across instances too. Expired records are dropped when a
// read finds them and by Sweep.
type registryStore struct {
	db  *mcpregistry.CollectionStore
	now func() time.Time
}

func newRegistryStore(db *mcpregistry.CollectionStore) *registryStore {
	return &registryStore{db: db, now: time.Now}
}

// view runs fn on collection ns in a read-only transaction.
func (r *registryStore) view(ns string, fn func(store.Collection) error) error {
	return r.db.View(func(tx mcpregistry.Collections) error {
		c, err := tx.Collection(ns)
		if err != nil {
			return err
		}
		return fn(c)
	})
}

// write runs fn on collection ns in its own atomic transaction, sharing the commit
// with concurrent writers. fn may run more than once: it must set every variable it
// reports through on each run.
func (r *registryStore) write(ns string, fn func(store.Collection) error) error {
	return r.db.Batch(func(tx mcpregistry.Collections) error {
		c, err := tx.Collection(ns)
		if err != nil {
			return err
		}
		return fn(c)
	})
}

// load decodes the record under key into v; found is false when there is none.
func load[T any](c store.Collection, key string) (v T, found bool, err error) {
	p, err := store.GetJSON[T](c, key)
	if errors.Is(err, model.ErrNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	return *p, true, nil
}

// get reads one record of ns, or ErrNotFound.
func get[T any](r *registryStore, ns, key string) (T, error) {
	var v T
	err := r.view(ns, func(c store.Collection) error {
		var found bool
		var err error
		if v, found, err = load[T](c, key); err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	return v, err
}

// create stores v under key unless the key is taken (ErrExists).
func (r *registryStore) create(ns, key string, v any) error {
	return r.write(ns, func(c store.Collection) error {
		if _, err := c.Get(key); err == nil {
			return ErrExists
		} else if !errors.Is(err, model.ErrNotFound) {
			return err
		}
		return store.PutJSON(c, key, v)
	})
}

func (r *registryStore) put(ns, key string, v any) error {
	return r.write(ns, func(c store.Collection) error { return store.PutJSON(c, key, v) })
}

func (r *registryStore) delete(ns, key string) error {
	return r.write(ns, func(c store.Collection) error { return c.Delete(key) })
}

// getLive reads a record that expires; an expired one is deleted and ErrNotFound.
func getLive[T any](r *registryStore, ns, key string, expires func(T) time.Time) (T, error) {
	v, err := get[T](r, ns, key)
	if err != nil {
		return v, err
	}
	if r.now().After(expires(v)) {
		var zero T
		if err := r.delete(ns, key); err != nil {
			return zero, err
		}
		return zero, ErrNotFound
	}
	return v, nil
}

func (r *registryStore) CreateClient(_ context.Context, c Client) error {
	return r.create(nsClients, c.ID, c)
}

func (r *registryStore) GetClient(_ context.Context, id string) (Client, error) {
	return get[Client](r, nsClients, id)
}

func (r *registryStore) DeleteClient(_ context.Context, id string) error {
	return r.delete(nsClients, id)
}

func (r *registryStore) PutAuthRequest(_ context.Context, a AuthRequest) error {
	return r.put(nsAuthRequests, a.ID, a)
}

func (r *registryStore) GetAuthRequest(_ context.Context, id string) (AuthRequest, error) {
	return getLive(r, nsAuthRequests, id, func(a AuthRequest) time.Time { return a.Expires })
}

func (r *registryStore) DeleteAuthRequest(_ context.Context, id string) error {
	return r.delete(nsAuthRequests, id)
}

func (r *registryStore) PutSession(_ context.Context, s Session) error {
	return r.put(nsSessions, s.ID, s)
}

func (r *registryStore) GetSession(_ context.Context, id string) (Session, error) {
	return getLive(r, nsSessions, id, func(s Session) time.Time { return s.Expires })
}

func (r *registryStore) DeleteSession(_ context.Context, id string) error {
	return r.delete(nsSessions, id)
}

func (r *registryStore) PutCode(_ context.Context, c Code) error {
	return r.create(nsCodes, c.Hash, c)
}

func (r *registryStore) RedeemCode(_ context.Context, hash, familyID string, now time.Time) (Code, error) {
	var out Code
	var result error
	err := r.write(nsCodes, func(c store.Collection) error {
		out, result = Code{}, nil
		code, found, err := load[Code](c, hash)
		switch {
		case err != nil:
			return err
		case !found:
			result = ErrNotFound
			return nil
		case code.Redeemed:
			out, result = code, ErrCodeReused
			return nil
		case now.After(code.Expires):
			result = ErrNotFound
			return nil
		}
		code.Redeemed, code.FamilyID = true, familyID
		if err := store.PutJSON(c, hash, code); err != nil {
			return err
		}
		out = code
		return nil
	})
	if err != nil {
		return Code{}, err
	}
	return out, result
}

func (r *registryStore) CreateFamily(_ context.Context, f RefreshFamily) error {
	return r.create(nsFamilies, f.ID, f)
}

func (r *registryStore) RotateRefresh(_ context.Context, familyID, presentedHash, nextHash string, nextExpires, now time.Time) (RefreshFamily, error) {
	var out RefreshFamily
	var result error
	// A mismatch revokes the family and still commits: result carries the refusal,
	// the transaction's error only failures.
	err := r.write(nsFamilies, func(c store.Collection) error {
		out, result = RefreshFamily{}, nil
		f, found, err := load[RefreshFamily](c, familyID)
		switch {
		case err != nil:
			return err
		case !found:
			result = ErrNotFound
			return nil
		case f.Revoked || now.After(f.Expires):
			result = ErrRevoked
			return nil
		case subtle.ConstantTimeCompare([]byte(f.CurrentHash), []byte(presentedHash)) != 1:
			f.Revoked = true
			result = ErrRefreshReused
			return store.PutJSON(c, familyID, f)
		}
		f.CurrentHash, f.Expires = nextHash, nextExpires
		if err := store.PutJSON(c, familyID, f); err != nil {
			return err
		}
		out = f
		return nil
	})
	if err != nil {
		return RefreshFamily{}, err
	}
	return out, result
}

func (r *registryStore) GetFamily(_ context.Context, familyID string) (RefreshFamily, error) {
	return get[RefreshFamily](r, nsFamilies, familyID)
}

func (r *registryStore) RevokeFamily(_ context.Context, familyID string) error {
	return r.write(nsFamilies, func(c store.Collection) error {
		f, found, err := load[RefreshFamily](c, familyID)
		if err != nil || !found || f.Revoked {
			return err
		}
		f.Revoked = true
		return store.PutJSON(c, familyID, f)
	})
}

// consentKey names an approval; each part is escaped so that none can run into the next.
func consentKey(user, clientID, resource string) string {
	return url.QueryEscape(user) + " " + url.QueryEscape(clientID) + " " + url.QueryEscape(resource)
}

func (r *registryStore) HasConsent(_ context.Context, user, clientID, resource string) (bool, error) {
	_, err := get[Consent](r, nsConsent, consentKey(user, clientID, resource))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (r *registryStore) PutConsent(_ context.Context, c Consent) error {
	return r.put(nsConsent, consentKey(c.User, c.ClientID, c.Resource), c)
}

func (r *registryStore) GetUser(_ context.Context, name string) (User, error) {
	return get[User](r, nsUsers, name)
}

func (r *registryStore) CreateUser(_ context.Context, u User) error {
	return r.create(nsUsers, u.Name, u)
}

func (r *registryStore) UpdateUser(_ context.Context, u User) error {
	return r.onExisting(nsUsers, u.Name, func(c store.Collection) error { return store.PutJSON(c, u.Name, u) })
}

func (r *registryStore) DeleteUser(_ context.Context, name string) error {
	return r.onExisting(nsUsers, name, func(c store.Collection) error { return c.Delete(name) })
}

// onExisting runs fn in a write transaction when ns holds key, else ErrNotFound.
func (r *registryStore) onExisting(ns, key string, fn func(store.Collection) error) error {
	return r.write(ns, func(c store.Collection) error {
		if _, err := c.Get(key); errors.Is(err, model.ErrNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		return fn(c)
	})
}

// list decodes every record of ns.
func list[T any](r *registryStore, ns string) ([]T, error) {
	var out []T
	err := r.view(ns, func(c store.Collection) error {
		return c.ForEach(func(key string, _ []byte) error {
			v, _, err := load[T](c, key)
			if err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	return out, err
}

func (r *registryStore) ListUsers(_ context.Context) ([]User, error) {
	out, err := list[User](r, nsUsers)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

func (r *registryStore) ListSigningKeys(_ context.Context) ([]SigningKey, error) {
	out, err := list[SigningKey](r, nsKeys)
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

func (r *registryStore) PutSigningKey(_ context.Context, k SigningKey) error {
	return r.put(nsKeys, k.ID, k)
}

func (r *registryStore) DeleteSigningKey(_ context.Context, id string) error {
	return r.delete(nsKeys, id)
}

func (r *registryStore) LoginFailures(_ context.Context, key string) (LoginFailures, error) {
	f, err := get[LoginFailures](r, nsThrottle, key)
	if errors.Is(err, ErrNotFound) {
		return LoginFailures{}, nil
	}
	return f, err
}

func (r *registryStore) AddLoginFailure(_ context.Context, key string, now time.Time, window time.Duration) (LoginFailures, error) {
	var out LoginFailures
	err := r.write(nsThrottle, func(c store.Collection) error {
		f, _, err := load[LoginFailures](c, key)
		if err != nil {
			return err
		}
		if now.Sub(f.Last) > window {
			f.Count = 0
		}
		f.Count++
		f.Last = now
		out = f
		return store.PutJSON(c, key, f)
	})
	return out, err
}

func (r *registryStore) UseAssertion(_ context.Context, key string, expires time.Time) error {
	return r.write(nsAssertions, func(c store.Collection) error {
		u, found, err := load[UsedAssertion](c, key)
		if err != nil {
			return err
		}
		if found && !r.now().After(u.Expires) {
			return ErrExists
		}
		return store.PutJSON(c, key, UsedAssertion{Expires: expires})
	})
}

func (r *registryStore) PutRevocation(_ context.Context, rv Revocation) error {
	return r.put(nsRevocations, rv.Key, rv)
}

func (r *registryStore) ListRevocations(_ context.Context) ([]Revocation, error) {
	var out []Revocation
	now := r.now()
	err := r.view(nsRevocations, func(c store.Collection) error {
		out = out[:0]
		return c.ForEach(func(_ string, raw []byte) error {
			var rv Revocation
			if json.Unmarshal(raw, &rv) == nil && !now.After(rv.Expires) {
				out = append(out, rv)
			}
			return nil
		})
	})
	return out, err
}

func (r *registryStore) ClearLoginFailures(_ context.Context, key string) error {
	return r.delete(nsThrottle, key)
}

// expiry says, for each collection of short-lived records, when a record is dropped.
var expiry = map[string]func(raw []byte) (time.Time, error){
	nsAuthRequests: expiresAt[AuthRequest](func(v AuthRequest) time.Time { return v.Expires }),
	nsSessions:     expiresAt[Session](func(v Session) time.Time { return v.Expires }),
	// Redeemed codes outlive their expiry by one code lifetime, so a late replay is
	// still recognised and revokes what the first redemption produced.
	nsCodes:       expiresAt[Code](func(v Code) time.Time { return v.Expires.Add(codeLifetime) }),
	nsFamilies:    expiresAt[RefreshFamily](func(v RefreshFamily) time.Time { return v.Expires }),
	nsThrottle:    expiresAt[LoginFailures](func(v LoginFailures) time.Time { return v.Last.Add(failureRetention) }),
	nsAssertions:  expiresAt[UsedAssertion](func(v UsedAssertion) time.Time { return v.Expires }),
	nsRevocations: expiresAt[Revocation](func(v Revocation) time.Time { return v.Expires }),
}

func expiresAt[T any](at func(T) time.Time) func([]byte) (time.Time, error) {
	return func(raw []byte) (time.Time, error) {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return time.Time{}, err
		}
		return at(v), nil
	}
}

// Sweep deletes the records that expired before now and returns how many it deleted.
// It finds them in a read transaction and deletes them in one write transaction (none
// when nothing expired), checking each again there: a record replaced in between is
// kept. An undecodable record is dropped too: nothing could ever read it.
func (r *registryStore) Sweep(now time.Time) (int, error) {
	expired := func(at func([]byte) (time.Time, error), raw []byte) bool {
		t, err := at(raw)
		return err != nil || now.After(t)
	}
	found := map[string][]string{}
	err := r.db.View(func(tx mcpregistry.Collections) error {
		for ns, at := range expiry {
			c, err := tx.Collection(ns)
			if err != nil {
				return err
			}
			if err := c.ForEach(func(key string, raw []byte) error {
				if expired(at, raw) {
					found[ns] = append(found[ns], key)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(found) == 0 {
		return 0, err
	}
	var n int
	err = r.db.Update(func(tx mcpregistry.Collections) error {
		n = 0
		for ns, keys := range found {
			c, err := tx.Collection(ns)
			if err != nil {
				return err
			}
			for _, key := range keys {
				raw, err := c.Get(key)
				if errors.Is(err, model.ErrNotFound) {
					continue
				} else if err != nil {
					return err
				}
				if !expired(expiry[ns], raw) {
					continue
				}
				if err := c.Delete(key); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// sweepEvery runs Sweep every interval until ctx ends (the config is unloaded).
func (r *registryStore) sweepEvery(ctx context.Context, interval time.Duration, logger *zap.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := r.Sweep(r.now()); err != nil {
				logger.Warn("purging expired authorization server records", zap.Error(err))
			} else if n > 0 {
				logger.Debug("purged expired authorization server records", zap.Int("records", n))
			}
		}
	}
}

var _ Store = (*registryStore)(nil)

func (r *registryStore) CreatePersonalToken(_ context.Context, t PersonalToken) error {
	return r.create(nsPersonal, t.ID, t)
}

func (r *registryStore) GetPersonalToken(_ context.Context, id string) (PersonalToken, error) {
	return get[PersonalToken](r, nsPersonal, id)
}

func (r *registryStore) ListPersonalTokens(_ context.Context, user string) ([]PersonalToken, error) {
	all, err := list[PersonalToken](r, nsPersonal)
	out := slices.DeleteFunc(all, func(t PersonalToken) bool { return user != "" && t.User != user })
	slices.SortFunc(out, func(a, b PersonalToken) int { return a.Created.Compare(b.Created) })
	return out, err
}

func (r *registryStore) DeletePersonalToken(_ context.Context, id string) error {
	return r.onExisting(nsPersonal, id, func(c store.Collection) error { return c.Delete(id) })
}
