package mcpregistry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// The vault holds each user's upstream OAuth tokens (backend_auth oauth): one record
// per (user, server), the tokens sealed with the registry's keyring (Sealer purpose
// vaultPurpose, the record's key as additional data, so a sealed value moved to
// another user's or server's record does not open), beside what may be listed in
// clear: the server, the user, when it was connected and refreshed, the scopes. It also
// holds the pending connect flows (state, PKCE verifier, the browser they are bound
// to), each single-use and short-lived.

// Collections of the vault in the registry's store.
const (
	nsVaultTokens  = "upstream.tokens"  // by vaultKey
	nsVaultFlows   = "upstream.flows"   // pending connect flows, by SHA-256 of the state
	nsVaultClients = "upstream.clients" // the gateway's dynamic registrations, by server
)

const vaultPurpose = "upstream oauth token"

// VaultRecord is one user's connection to one server, as stored.
type VaultRecord struct {
	Server  string `json:"server"`
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// Scope is what the upstream's authorization server granted (space-separated).
	Scope       string    `json:"scope,omitempty"`
	ConnectedAt time.Time `json:"connected_at"`
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
	// ExpiresAt is the access token's expiry (zero: none given).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Sealed is the JSON of vaultSecret, sealed.
	Sealed []byte `json:"sealed"`
}

// vaultSecret is what is sealed.
type vaultSecret struct {
	// Origin is the upstream origin the tokens are sent to; nowhere else.
	Origin string `json:"origin"`
	// AuthServer is the issuer of the authorization server that issued them: the
	// refresh token goes only to it.
	AuthServer string `json:"as"`
	// ClientID is the gateway's client id the tokens were issued to (it changes with
	// a new dynamic registration, and with the origin of a CIMD client id).
	ClientID     string `json:"cid,omitempty"`
	AccessToken  string `json:"at"`
	RefreshToken string `json:"rt,omitempty"`
}

// ConnectFlow is a pending connection: created when the user starts it on the connect
// page, taken (and deleted) by the callback.
type ConnectFlow struct {
	Server  string `json:"server"`
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// Verifier is the PKCE code verifier.
	Verifier    string `json:"verifier"`
	RedirectURI string `json:"redirect_uri"`
	// AuthServer is the issuer the browser was sent to.
	AuthServer string `json:"as"`
	// ClientID is the gateway's client id in the authorization request.
	ClientID string `json:"client_id,omitempty"`
	// Browser is the SHA-256 (hex) of the nonce in the browser's flow cookie.
	Browser   string    `json:"browser"`
	ExpiresAt time.Time `json:"expires_at"`
}

// VaultStore keeps the vault's records. The registry's store implements it through
// its Collections (collectionVault); another backend implements the same methods.
type VaultStore interface {
	// GetToken returns the record under key, or an error matching model.ErrNotFound.
	GetToken(key string) (*VaultRecord, error)
	// PutToken stores rec under key.
	PutToken(key string, rec *VaultRecord) error
	// DeleteTokens removes every record for which match is true and returns them.
	DeleteTokens(match func(key string, rec *VaultRecord) bool) ([]VaultRecord, error)
	// ListTokens returns every record for which match is true, in key order.
	ListTokens(match func(key string, rec *VaultRecord) bool) ([]VaultRecord, error)
	// PutFlow stores a pending flow under key, dropping expired ones, unless that
	// would make more than perUser pending flows of f's user or total in all: then it
	// stores nothing and returns a *TooManyFlowsError.
	PutFlow(key string, f *ConnectFlow, now time.Time, perUser, total int) error
	// TakeFlow returns and deletes the flow under key in one atomic step, or an error
	// matching model.ErrNotFound: a flow is taken at most once.
	TakeFlow(key string) (*ConnectFlow, error)
	// GetClient returns the gateway's dynamic registration for server, or an error
	// matching model.ErrNotFound.
	GetClient(server string) (*ClientRecord, error)
	// PutClient stores the gateway's dynamic registration for server.
	PutClient(server string, rec *ClientRecord) error
}

// vaultUserKey identifies a user in vault keys: issuer and subject hashed, so keys
// have a fixed shape whatever the subject holds.
func vaultUserKey(issuer, subject string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + subject))
	return hex.EncodeToString(sum[:16])
}

// vaultKey is the key of (user, server): the user key, '/', the server name.
func vaultKey(issuer, subject, server string) string {
	return vaultUserKey(issuer, subject) + "/" + server
}

// flowKey is the key of a flow: the SHA-256 of its state, so the store never holds a
// state that would complete it.
func flowKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// collectionVault is the VaultStore over the registry's Collections.
type collectionVault struct{ db *CollectionStore }

func (v collectionVault) in(ns string, write bool, fn func(store.Collection) error) error {
	run := v.db.View
	if write {
		run = v.db.Update
	}
	return run(func(tx Collections) error {
		c, err := tx.Collection(ns)
		if err != nil {
			return err
		}
		return fn(c)
	})
}

func (v collectionVault) GetToken(key string) (rec *VaultRecord, err error) {
	err = v.in(nsVaultTokens, false, func(c store.Collection) error {
		rec, err = store.GetJSON[VaultRecord](c, key)
		return err
	})
	return rec, err
}

func (v collectionVault) PutToken(key string, rec *VaultRecord) error {
	return v.in(nsVaultTokens, true, func(c store.Collection) error { return store.PutJSON(c, key, rec) })
}

func (v collectionVault) DeleteTokens(match func(string, *VaultRecord) bool) (out []VaultRecord, err error) {
	err = v.in(nsVaultTokens, true, func(c store.Collection) error {
		out = nil
		var keys []string
		if err := forEachRecord(c, func(k string, rec *VaultRecord) {
			if match(k, rec) {
				keys = append(keys, k)
				out = append(out, *rec)
			}
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := c.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func (v collectionVault) ListTokens(match func(string, *VaultRecord) bool) (out []VaultRecord, err error) {
	err = v.in(nsVaultTokens, false, func(c store.Collection) error {
		out = nil
		return forEachRecord(c, func(k string, rec *VaultRecord) {
			if match(k, rec) {
				out = append(out, *rec)
			}
		})
	})
	return out, err
}

func forEachRecord(c store.Collection, fn func(string, *VaultRecord)) error {
	return c.ForEach(func(k string, raw []byte) error {
		rec := new(VaultRecord)
		if err := json.Unmarshal(raw, rec); err != nil {
			return fmt.Errorf("vault record %q is corrupt: %v", k, err)
		}
		fn(k, rec)
		return nil
	})
}

// TooManyFlowsError refuses a new connect flow: the user (PerUser) or everyone has
// as many pending as allowed.
type TooManyFlowsError struct {
	PerUser bool
	Limit   int
}

func (e *TooManyFlowsError) Error() string {
	if e.PerUser {
		return fmt.Sprintf("you have %d connections pending already; finish one, or start again in a few minutes when they expire", e.Limit)
	}
	return fmt.Sprintf("the gateway has %d connections pending; try again in a few minutes", e.Limit)
}

func (v collectionVault) PutFlow(key string, f *ConnectFlow, now time.Time, perUser, total int) error {
	return v.in(nsVaultFlows, true, func(c store.Collection) error {
		var expired []string
		live, mine := 0, 0
		if err := c.ForEach(func(k string, raw []byte) error {
			var old ConnectFlow
			if json.Unmarshal(raw, &old) != nil || now.After(old.ExpiresAt) {
				expired = append(expired, k)
				return nil
			}
			live++
			if old.Issuer == f.Issuer && old.Subject == f.Subject {
				mine++
			}
			return nil
		}); err != nil {
			return err
		}
		if mine >= perUser {
			return &TooManyFlowsError{PerUser: true, Limit: perUser}
		}
		if live >= total {
			return &TooManyFlowsError{Limit: total}
		}
		for _, k := range expired {
			if err := c.Delete(k); err != nil {
				return err
			}
		}
		return store.PutJSON(c, key, f)
	})
}

func (v collectionVault) TakeFlow(key string) (f *ConnectFlow, err error) {
	err = v.in(nsVaultFlows, true, func(c store.Collection) error {
		if f, err = store.GetJSON[ConnectFlow](c, key); err != nil {
			return err
		}
		return c.Delete(key)
	})
	return f, err
}

func (v collectionVault) GetClient(server string) (rec *ClientRecord, err error) {
	err = v.in(nsVaultClients, false, func(c store.Collection) error {
		rec, err = store.GetJSON[ClientRecord](c, server)
		return err
	})
	return rec, err
}

func (v collectionVault) PutClient(server string, rec *ClientRecord) error {
	return v.in(nsVaultClients, true, func(c store.Collection) error { return store.PutJSON(c, server, rec) })
}

// userOfKey reports whether vault key k belongs to the user key uk.
func userOfKey(k, uk string) bool { return strings.HasPrefix(k, uk+"/") }

var _ VaultStore = collectionVault{}
