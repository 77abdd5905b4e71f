package oauthserver

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"strings"
	"time"

	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/principal"
)

// Personal gateway tokens are for clients that cannot do OAuth (curl, scripts, older
// IDE plugins): an opaque bearer token "mcpgw_<id>_<secret>" that acts as one user
// with the groups that user has at the time of each request. They are stored hashed,
// listed and revocable; the gateway looks each one up on every request, so revoking
// one, or removing its user, holds for the very next request.

const (
	personalTokenPrefix             = "mcpgw_"
	defaultPersonalTokenMaxLifetime = 90 * 24 * time.Hour
	// maxPersonalTokenLifetime bounds what the admin endpoint mints; the server's
	// PersonalTokenMaxLifetime decides what it honours.
	maxPersonalTokenLifetime = 365 * 24 * time.Hour
)

// newPersonalToken returns a token for user and its stored form.
func newPersonalToken(user, name string, lifetime time.Duration, now time.Time) (string, PersonalToken) {
	id := rand.Text()
	secret := rand.Text() + rand.Text()
	return personalTokenPrefix + id + "_" + secret, PersonalToken{
		ID: id, User: user, Name: name, Hash: hashToken(secret), Created: now, Expires: now.Add(lifetime),
	}
}

// splitPersonalToken returns the id and secret of a personal token.
func splitPersonalToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, personalTokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != "" && len(rest) <= 128
}

// resolvePersonalToken is the gateway's view of a personal token: the user it acts
// as, with their current groups, its audience the server's resource (valid on every
// server the user's grant reaches).
func (s *Server) resolvePersonalToken(ctx context.Context, token string) (*principal.Caller, error) {
	reject := &authn.InvalidTokenError{Reason: authn.ReasonRevoked}
	id, secret, ok := splitPersonalToken(token)
	if !ok {
		return nil, reject
	}
	t, err := s.store.GetPersonalToken(ctx, id)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.logger.Error("reading a personal token failed", zapErr(err))
		}
		return nil, reject
	}
	now := s.now()
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hashToken(secret))) != 1 ||
		!now.Before(t.Expires) || t.Expires.Sub(t.Created) > time.Duration(s.PersonalTokenMaxLifetime) {
		return nil, reject
	}
	u, ok := s.lookupUserByName(ctx, t.User)
	if !ok || !s.federatedUserActive(u) {
		return nil, reject
	}
	return &principal.Caller{
		Subject: u.Name, Issuer: s.Issuer, ClientID: "personal-token:" + t.ID, Groups: u.Groups,
		ExpiresAt: t.Expires, Audiences: []string{s.Resource},
	}, nil
}
