package oauthserver

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/principal"
)

// Access tokens are self-contained JWTs, so revoking one needs a list the gateway
// consults: a token revoked by its jti (RFC 7009 at the revocation endpoint), or every
// token of a subject issued before some time (the user was removed, or their groups
// changed, so tokens carrying the old groups must stop). The list lives in the store,
// where every instance reads it; each instance holds an immutable snapshot for the
// gateway's per-request check and refreshes it every revocationRefresh, and at once
// when it records a revocation itself.

const (
	revocationRefresh = 5 * time.Second
	// maxAccessTokenLifetime bounds access_token_lifetime, and so how long a subject's
	// revocation must be kept.
	maxAccessTokenLifetime = 24 * time.Hour
	subjectRevocationKeep  = maxAccessTokenLifetime + time.Hour
)

// Revocation is one entry of the revocation list.
type Revocation struct {
	// Key is "jti:<token id>" or "sub:<subject>".
	Key string `json:"key"`
	// Before, for a subject, revokes its tokens issued before this time.
	Before time.Time `json:"before,omitzero"`
	// Expires is when the entry can go: when the tokens it revokes have expired.
	Expires time.Time `json:"expires"`
}

func tokenRevocationKey(jti string) string   { return "jti:" + jti }
func subjectRevocationKey(sub string) string { return "sub:" + sub }

// revokeSubject returns the revocation of every token of sub issued until now.
func revokeSubject(sub string, now time.Time) Revocation {
	return Revocation{Key: subjectRevocationKey(sub), Before: now, Expires: now.Add(subjectRevocationKeep)}
}

// revocationSnapshot is an immutable view of the list.
type revocationSnapshot struct {
	tokens   map[string]struct{}  // revoked jtis
	subjects map[string]time.Time // subject → tokens issued before this are revoked
}

// revocations is the instance's copy of the list.
type revocations struct {
	snap atomic.Pointer[revocationSnapshot]
}

func (rv *revocations) set(list []Revocation, now time.Time) {
	s := &revocationSnapshot{tokens: map[string]struct{}{}, subjects: map[string]time.Time{}}
	for _, r := range list {
		if now.After(r.Expires) {
			continue
		}
		if jti, ok := strings.CutPrefix(r.Key, "jti:"); ok {
			s.tokens[jti] = struct{}{}
		} else if sub, ok := strings.CutPrefix(r.Key, "sub:"); ok && r.Before.After(s.subjects[sub]) {
			s.subjects[sub] = r.Before
		}
	}
	rv.snap.Store(s)
}

// revoked is the gateway's check of a token of this issuer: two map lookups, no lock.
func (rv *revocations) revoked(p *principal.Caller) bool {
	s := rv.snap.Load()
	if s == nil || (len(s.tokens) == 0 && len(s.subjects) == 0) {
		return false
	}
	if p.TokenID != "" {
		if _, ok := s.tokens[p.TokenID]; ok {
			return true
		}
	}
	before, ok := s.subjects[p.Subject]
	// iat has whole seconds: a token issued in the second of the revocation is
	// revoked too.
	return ok && p.IssuedAt.Before(before)
}

// reloadRevocations reads the list from the store into the snapshot.
func (s *Server) reloadRevocations(ctx context.Context) error {
	list, err := s.store.ListRevocations(ctx)
	if err != nil {
		return err
	}
	s.revocations.set(list, s.now())
	return nil
}

// refreshRevocations keeps the snapshot current until ctx ends.
func (s *Server) refreshRevocations(ctx context.Context) {
	t := time.NewTicker(revocationRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.reloadRevocations(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("reading the access-token revocation list", zapErr(err))
			}
		}
	}
}

// revoke records r and applies it on this instance at once.
func (s *Server) revoke(ctx context.Context, r Revocation) error {
	if err := s.store.PutRevocation(ctx, r); err != nil {
		return err
	}
	return s.reloadRevocations(ctx)
}

// revokeAccessToken revokes an access token this server issued to client clientID.
// Anything else (not ours, another client's, expired) is left alone, as RFC 7009 §2.2
// wants: the endpoint answers 200 either way.
func (s *Server) revokeAccessToken(ctx context.Context, clientID, token string) error {
	set, err := jwk.Parse(s.keys.jwksJSON())
	if err != nil {
		return err
	}
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(set, jws.WithInferAlgorithmFromKey(true)),
		jwt.WithValidate(true), jwt.WithClock(jwt.ClockFunc(s.now)), jwt.WithIssuer(s.Issuer))
	if err != nil {
		return nil
	}
	cid, _ := tok.Get("client_id")
	if cid != clientID || tok.JwtID() == "" {
		return nil
	}
	if err := s.revoke(ctx, Revocation{Key: tokenRevocationKey(tok.JwtID()), Expires: tok.Expiration().Add(time.Minute)}); err != nil {
		return err
	}
	s.logger.Info("access token revoked", zapClient(clientID), zap.String("user", tok.Subject()))
	return nil
}
