package oauthserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// accessClaims are the RFC 9068 claims of an access token.
type accessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	ClientID string   `json:"client_id"`
	Groups   []string `json:"groups"`
	Scope    string   `json:"scope,omitempty"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func hashToken(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// clientPost answers CORS preflights and everything but a POST, reads the bounded form
// and authenticates the client: the common opening of the token and revocation
// endpoints. ok is false once it has answered.
func (s *Server) clientPost(w http.ResponseWriter, r *http.Request) (c Client, ok bool) {
	if !allowCORS(w, r, "POST, OPTIONS") {
		return c, false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeOAuthError(w, &oauthError{Code: "invalid_request", Description: "use POST", status: http.StatusMethodNotAllowed})
		return c, false
	}
	if oerr := parseTokenForm(w, r); oerr != nil {
		writeOAuthError(w, oerr)
		return c, false
	}
	c, oerr := s.authenticateClient(r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return c, false
	}
	return c, true
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	c, ok := s.clientPost(w, r)
	if !ok {
		return
	}
	var resp *tokenResponse
	var oerr *oauthError
	switch grant := r.PostForm.Get("grant_type"); grant {
	case "authorization_code":
		resp, oerr = s.codeGrant(r, c)
	case "refresh_token":
		resp, oerr = s.refreshGrant(r, c)
	case "client_credentials":
		resp, oerr = s.clientCredentialsGrant(r, c)
	case "":
		oerr = errInvalidRequest("grant_type missing")
	default:
		oerr = newOAuthError("unsupported_grant_type", "grant_type "+truncate(grant, 60)+" is not supported")
	}
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	noStore(w)
	writeJSON(w, http.StatusOK, resp)
}

// parseTokenForm reads a bounded form body and refuses repeated parameters (RFC 6749
// §3.2: parameters must not be included more than once).
func parseTokenForm(w http.ResponseWriter, r *http.Request) *oauthError {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return errInvalidRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		return errInvalidRequest("the form is malformed or too large")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return errInvalidRequest("parameter " + truncate(k, 40) + " appears more than once")
		}
	}
	return nil
}

func (s *Server) codeGrant(r *http.Request, c Client) (*tokenResponse, *oauthError) {
	ctx := r.Context()
	code, verifier := r.PostForm.Get("code"), r.PostForm.Get("code_verifier")
	if code == "" || len(code) > 256 {
		return nil, errInvalidRequest("code missing")
	}
	if verifier == "" {
		return nil, errInvalidRequest("code_verifier missing (PKCE is required)")
	}
	if !hasGrant(c, "authorization_code") {
		return nil, newOAuthError("unauthorized_client", "the client may not use this grant")
	}
	familyID := rand.Text()
	stored, err := s.store.RedeemCode(ctx, hashToken(code), familyID, s.now())
	switch {
	case errors.Is(err, ErrCodeReused):
		// A code used twice was stolen or replayed: what its first use produced goes too.
		if stored.FamilyID != "" {
			s.store.RevokeFamily(ctx, stored.FamilyID)
		}
		s.logger.Warn("authorization code reused; its refresh tokens revoked", zapClient(c.ID), zap.String("user", stored.Subject))
		return nil, errInvalidGrant("the code was already used")
	case errors.Is(err, ErrNotFound):
		return nil, errInvalidGrant("the code is unknown or expired")
	case err != nil:
		s.logger.Error("redeeming code failed", zapErr(err))
		return nil, errServer("the code could not be redeemed")
	}
	if subtle.ConstantTimeCompare([]byte(stored.ClientID), []byte(c.ID)) != 1 {
		return nil, errInvalidGrant("the code was issued to another client")
	}
	if r.PostForm.Get("redirect_uri") != stored.RedirectURI {
		return nil, errInvalidGrant("redirect_uri differs from the authorization request")
	}
	if !verifierMatches(verifier, stored.CodeChallenge) {
		return nil, errInvalidGrant("code_verifier does not match the code_challenge")
	}
	if res := r.PostForm.Get("resource"); res != "" && res != stored.Resource {
		return nil, newOAuthError("invalid_target", "resource differs from the authorization request")
	}
	return s.issue(r, c, stored.Subject, stored.Groups, stored.Resource, stored.Scope, familyID)
}

// verifierMatches checks PKCE S256 (RFC 7636 §4.6) with a well-formed verifier.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		if !isUnreserved(verifier[i]) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// A refresh token is <family id>.<secret>; the store holds the hash of the whole token.
func splitRefreshToken(tok string) (family string, ok bool) {
	family, secret, ok := strings.Cut(tok, ".")
	return family, ok && family != "" && secret != "" && len(tok) <= 256
}

func (s *Server) refreshGrant(r *http.Request, c Client) (*tokenResponse, *oauthError) {
	ctx := r.Context()
	tok := r.PostForm.Get("refresh_token")
	familyID, ok := splitRefreshToken(tok)
	if !ok {
		return nil, errInvalidGrant("refresh_token missing or malformed")
	}
	if !hasGrant(c, "refresh_token") {
		return nil, newOAuthError("unauthorized_client", "the client may not use refresh tokens")
	}
	fam, err := s.store.GetFamily(ctx, familyID)
	if errors.Is(err, ErrNotFound) {
		return nil, errInvalidGrant("the refresh token is unknown")
	} else if err != nil {
		s.logger.Error("reading refresh family failed", zapErr(err))
		return nil, errServer("the refresh token could not be checked")
	}
	if subtle.ConstantTimeCompare([]byte(fam.ClientID), []byte(c.ID)) != 1 {
		return nil, errInvalidGrant("the refresh token was issued to another client")
	}
	if res := r.PostForm.Get("resource"); res != "" && res != fam.Resource {
		return nil, newOAuthError("invalid_target", "resource differs from the one the refresh token was issued for")
	}
	scope := fam.Scope
	if req := r.PostForm.Get("scope"); req != "" {
		granted := strings.Fields(fam.Scope)
		for _, sc := range strings.Fields(req) {
			if !slices.Contains(granted, sc) {
				return nil, newOAuthError("invalid_scope", "a refresh may only narrow the granted scope")
			}
		}
		scope = strings.Join(strings.Fields(req), " ")
	}
	user, known := s.lookupUser(r, fam.Subject)
	if !known {
		s.store.RevokeFamily(ctx, familyID)
		return nil, errInvalidGrant("the user no longer exists")
	}
	if !s.federatedSignInLive(user) {
		return nil, errInvalidGrant("sign in again: the sign-in through the identity provider is older than reauthenticate_after")
	}
	next := familyID + "." + rand.Text() + rand.Text()
	now := s.now()
	_, err = s.store.RotateRefresh(ctx, familyID, hashToken(tok), hashToken(next), now.Add(time.Duration(s.RefreshTokenLifetime)), now)
	switch {
	case errors.Is(err, ErrRefreshReused):
		s.logger.Warn("refresh token reused; its family revoked", zapClient(c.ID), zap.String("user", fam.Subject))
		return nil, errInvalidGrant("the refresh token was already used")
	case errors.Is(err, ErrRevoked), errors.Is(err, ErrNotFound):
		return nil, errInvalidGrant("the refresh token is revoked or expired")
	case err != nil:
		s.logger.Error("rotating refresh token failed", zapErr(err))
		return nil, errServer("the refresh token could not be rotated")
	}
	resp, oerr := s.accessToken(r, c, user.Name, user.Groups, fam.Resource, scope)
	if oerr != nil {
		return nil, oerr
	}
	resp.RefreshToken = next
	return resp, nil
}

func (s *Server) clientCredentialsGrant(r *http.Request, c Client) (*tokenResponse, *oauthError) {
	if (c.SecretHash == "" && c.AuthMethod != authPrivateKeyJWT) || !hasGrant(c, "client_credentials") || len(c.Groups) == 0 {
		return nil, newOAuthError("unauthorized_client", "the client may not use client_credentials")
	}
	resource := s.Resource
	if res := r.PostForm.Get("resource"); res != "" {
		if !s.allowedResource(res) {
			return nil, newOAuthError("invalid_target", "resource is not served by this gateway")
		}
		resource = res
	}
	scope, oerr := s.checkScope(r.PostForm.Get("scope"))
	if oerr != nil {
		return nil, oerr
	}
	return s.accessToken(r, c, c.ID, c.Groups, resource, scope)
}

// issue mints an access token and, for clients allowed to refresh, starts a refresh
// family.
func (s *Server) issue(r *http.Request, c Client, subject string, groups []string, resource, scope, familyID string) (*tokenResponse, *oauthError) {
	resp, oerr := s.accessToken(r, c, subject, groups, resource, scope)
	if oerr != nil {
		return nil, oerr
	}
	if hasGrant(c, "refresh_token") {
		now := s.now()
		refresh := familyID + "." + rand.Text() + rand.Text()
		err := s.store.CreateFamily(r.Context(), RefreshFamily{
			ID: familyID, ClientID: c.ID, Subject: subject, Resource: resource, Scope: scope,
			CurrentHash: hashToken(refresh), Expires: now.Add(time.Duration(s.RefreshTokenLifetime)), Created: now,
		})
		if err != nil {
			s.logger.Error("storing refresh family failed", zapErr(err))
			return nil, errServer("the refresh token could not be stored")
		}
		resp.RefreshToken = refresh
	}
	return resp, nil
}

func (s *Server) accessToken(r *http.Request, c Client, subject string, groups []string, resource, scope string) (*tokenResponse, *oauthError) {
	now := s.now()
	key, err := s.keys.signer(r.Context(), now)
	if err != nil {
		s.logger.Error("signing key unavailable", zapErr(err))
		return nil, errServer("no signing key")
	}
	if groups == nil {
		groups = []string{}
	}
	lifetime := time.Duration(s.AccessTokenLifetime)
	jwt, err := key.sign(accessClaims{
		Issuer: s.Issuer, Subject: subject, Audience: resource, ClientID: c.ID, Groups: groups, Scope: scope,
		Expiry: now.Add(lifetime).Unix(), IssuedAt: now.Unix(), ID: rand.Text(),
	})
	if err != nil {
		s.logger.Error("signing access token failed", zapErr(err))
		return nil, errServer("the token could not be signed")
	}
	return &tokenResponse{AccessToken: jwt, TokenType: "Bearer", ExpiresIn: int64(lifetime / time.Second), Scope: scope}, nil
}

// serveRevoke is RFC 7009: refresh tokens revoke their whole family; access tokens go
// on the revocation list the gateway consults (revocation.go).
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	c, ok := s.clientPost(w, r)
	if !ok {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		writeOAuthError(w, errInvalidRequest("token missing"))
		return
	}
	noStore(w)
	if strings.Count(tok, ".") == 2 {
		if err := s.revokeAccessToken(r.Context(), c.ID, tok); err != nil {
			s.logger.Error("revoking an access token failed", zapErr(err))
			writeOAuthError(w, errServer("the revocation could not be stored"))
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if familyID, ok := splitRefreshToken(tok); ok {
		fam, err := s.store.GetFamily(r.Context(), familyID)
		// RFC 7009 §2.2: an unknown token, or another client's, is answered 200 too, and
		// left alone.
		if err == nil && fam.ClientID == c.ID && subtle.ConstantTimeCompare([]byte(fam.CurrentHash), []byte(hashToken(tok))) == 1 {
			s.store.RevokeFamily(r.Context(), familyID)
			s.logger.Info("refresh token revoked", zapClient(c.ID), zap.String("user", fam.Subject))
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if !allowCORS(w, r, "GET, HEAD, OPTIONS") {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if _, err := s.keys.signer(r.Context(), s.now()); err != nil {
		s.logger.Error("signing keys unavailable", zapErr(err))
		http.Error(w, "signing keys unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(s.keys.jwksJSON())
}
