package oauthserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/upstreamoauth"
	"github.com/caddymcp/caddymcp/oauthserver/federation"
)

// Sign-in through an identity provider (federation.Provider):
//
//	GET <issuer>/login/<provider>?request=<authorization request>  (from the sign-in page of an authorization)
//	GET <issuer>/login/<provider>?return_to=<path>                 (from the account sign-in page)
//	GET <issuer>/login/<provider>/callback                          (the provider's redirect back)
//
// What the sign-in must remember across the provider's pages (state, nonce, PKCE
// verifier, where to go next) travels in a sealed, short-lived cookie bound to the
// browser's session, so nothing is stored for a sign-in that is never finished, and a
// callback carried to another browser finds no cookie to match.

const (
	federationCookie   = "mcp_idp_signin"
	federationLifetime = 10 * time.Minute
	federationAAD      = "oauthserver federated sign-in"
)

// federationState is the sealed cookie's content.
type federationState struct {
	federation.Pending
	Provider string `json:"p"`
	Session  string `json:"sid"`
	Request  string `json:"r,omitempty"`
	ReturnTo string `json:"t,omitempty"`
	Expires  int64  `json:"e"`
}

// providerLink is a sign-in button.
type providerLink struct{ Name, URL string }

// providerLinks are the sign-in buttons of a page: for an authorization request when
// requestID is set, else for the account sign-in that goes on to returnTo.
func (s *Server) providerLinks(requestID, returnTo string) []providerLink {
	links := make([]providerLink, 0, len(s.idpOrder))
	for _, c := range s.idpOrder {
		q := url.Values{}
		if requestID != "" {
			q.Set("request", requestID)
		} else {
			q.Set("return_to", returnTo)
		}
		links = append(links, providerLink{Name: c.Provider().DisplayName, URL: s.issuerPath + "/login/" + c.Provider().Name + "?" + q.Encode()})
	}
	return links
}

// onlyProvider is the one way to sign in when there is no other: password sign-in off
// and a single provider. The sign-in pages then send the browser straight to it.
func (s *Server) onlyProvider(requestID, returnTo string) (string, bool) {
	if !s.DisablePasswordSignIn || len(s.idpOrder) != 1 {
		return "", false
	}
	return s.providerLinks(requestID, returnTo)[0].URL, true
}

func (s *Server) federationCallbackURL(provider string) string {
	return s.Issuer + "/login/" + provider + "/callback"
}

func (s *Server) federationCookieName(r *http.Request) string {
	if r.TLS != nil {
		return secureCookiePfx + federationCookie
	}
	return federationCookie
}

// serveFederated serves <issuer>/login/<rest>.
func (s *Server) serveFederated(w http.ResponseWriter, r *http.Request, rest string) {
	name, callback := strings.CutSuffix(rest, "/callback")
	c, ok := s.idps[name]
	if !ok {
		renderError(w, http.StatusNotFound, "Not found", "There is no identity provider "+quoteName(name)+" here.")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		renderError(w, http.StatusMethodNotAllowed, "Method not allowed", "Sign-in through an identity provider takes GET.")
		return
	}
	if len(r.URL.RawQuery) > maxQueryLength {
		renderError(w, http.StatusRequestURITooLong, "Bad request", "The query is too long.")
		return
	}
	if callback {
		s.finishFederated(w, r, c)
		return
	}
	s.startFederated(w, r, c)
}

// startFederated sends the browser to the provider.
func (s *Server) startFederated(w http.ResponseWriter, r *http.Request, c *federation.Client) {
	ctx := r.Context()
	sess, err := s.browserSession(w, r)
	if err != nil {
		s.logger.Error("creating session failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "Your session could not be created.")
		return
	}
	name := c.Provider().Name
	st := federationState{Provider: name, Session: sess.ID, Pending: federation.NewPending(), Expires: s.now().Add(federationLifetime).Unix()}
	q := r.URL.Query()
	if id := q.Get("request"); id != "" {
		req, err := s.store.GetAuthRequest(ctx, id)
		if err != nil || req.SessionID != sess.ID {
			renderError(w, http.StatusBadRequest, "Sign-in expired", "This sign-in request has expired or was started in another browser. Start again from your application.")
			return
		}
		st.Request = id
	} else {
		st.ReturnTo = s.localReturnTo(q.Get("return_to"))
	}
	target, err := c.AuthorizeURL(ctx, s.federationCallbackURL(name), st.Pending)
	if err != nil {
		s.logger.Error("identity provider unavailable", zap.String("provider", name), zapErr(err))
		renderError(w, http.StatusBadGateway, "Identity provider unavailable", "The identity provider "+c.Provider().DisplayName+" cannot be reached. Try again in a moment.")
		return
	}
	plain, _ := json.Marshal(st)
	sealed, err := s.sealer.Seal(federationAAD, plain)
	if err != nil {
		s.logger.Error("sealing the sign-in state failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "The sign-in could not be started.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.federationCookieName(r),
		Value:    base64.RawURLEncoding.EncodeToString(sealed),
		Path:     "/",
		MaxAge:   int(federationLifetime / time.Second),
		Secure:   r.TLS != nil,
		HttpOnly: true,
		// Lax: the provider's redirect back is a top-level cross-site navigation.
		SameSite: http.SameSiteLaxMode,
	})
	noStore(w)
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// federationStateOf opens the browser's sign-in cookie, which must be live, for this
// provider and for the browser's current session.
func (s *Server) federationStateOf(r *http.Request, provider string) (federationState, Session, bool) {
	var st federationState
	ck, err := r.Cookie(s.federationCookieName(r))
	if err != nil || len(ck.Value) > 4096 {
		return st, Session{}, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return st, Session{}, false
	}
	plain, err := s.sealer.Open(federationAAD, sealed)
	if err != nil || json.Unmarshal(plain, &st) != nil {
		return st, Session{}, false
	}
	sess, ok := s.currentSession(r)
	if !ok || st.Provider != provider || st.Session != sess.ID || s.now().Unix() > st.Expires {
		return st, Session{}, false
	}
	return st, sess, true
}

// finishFederated takes the provider's redirect back: it signs the user in and goes on
// with the authorization request or to the page the sign-in was for.
func (s *Server) finishFederated(w http.ResponseWriter, r *http.Request, c *federation.Client) {
	ctx := r.Context()
	p := c.Provider()
	st, sess, ok := s.federationStateOf(r, p.Name)
	// The cookie is good for one return, whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: s.federationCookieName(r), Value: "", Path: "/", MaxAge: -1, Secure: r.TLS != nil, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if !ok {
		s.logger.Warn("identity provider callback without this browser's sign-in", zap.String("provider", p.Name), zap.String("remote_ip", clientIP(r)))
		renderError(w, http.StatusBadRequest, "Sign-in expired", "This sign-in was not started in this browser, or took too long. Start again.")
		return
	}
	id, err := c.Finish(ctx, s.federationCallbackURL(p.Name), st.Pending, r.URL.Query())
	if err != nil {
		var refused *federation.RefusedError
		var notAllowed *federation.NotAllowedError
		if errors.As(err, &notAllowed) {
			s.logger.Info("identity provider's user not in allowed_groups", zap.String("provider", p.Name), zap.String("user", truncate(notAllowed.User, 64)), zap.String("remote_ip", clientIP(r)))
			renderError(w, http.StatusForbidden, "Not allowed", err.Error()+".")
			return
		}
		if errors.As(err, &refused) {
			s.logger.Info("identity provider refused a sign-in", zap.String("provider", p.Name), zap.String("error", refused.Code), zap.String("remote_ip", clientIP(r)))
			renderError(w, http.StatusForbidden, "Sign-in refused", p.DisplayName+" did not sign you in ("+refused.Code+"). "+refused.Description)
			return
		}
		s.logger.Warn("sign-in through an identity provider failed", zap.String("provider", p.Name), zap.String("remote_ip", clientIP(r)), zapErr(err))
		renderError(w, http.StatusBadGateway, "Sign-in failed", "Signing in through "+p.DisplayName+" failed: "+err.Error())
		return
	}
	user, err := s.federatedUser(ctx, p, id)
	if err != nil {
		s.logger.Warn("federated user refused", zap.String("provider", p.Name), zap.String("user", truncate(id.Username, 64)), zapErr(err))
		renderError(w, http.StatusConflict, "Sign-in refused", err.Error())
		return
	}
	newSess, ok := s.signInSession(w, r, sess, user.Name)
	if !ok {
		return
	}
	s.logger.Info("signed in", zap.String("user", user.Name), zap.String("provider", p.Name), zap.Strings("groups", user.Groups), zap.String("remote_ip", clientIP(r)))
	if st.Request == "" {
		http.Redirect(w, r, st.ReturnTo, http.StatusSeeOther)
		return
	}
	req, err := s.store.GetAuthRequest(ctx, st.Request)
	if err != nil || req.SessionID != sess.ID {
		renderError(w, http.StatusBadRequest, "Sign-in expired", "You are signed in, but the application's request has expired. Start again from your application.")
		return
	}
	client, err := s.client(ctx, req.ClientID)
	if err != nil {
		renderError(w, http.StatusBadRequest, "Unknown application", "The application of this request is no longer registered. Start again from your application.")
		return
	}
	s.proceedSignedIn(w, r, req, client, newSess)
}

// federatedUser records the user a provider signed in: created on their first sign-in,
// their groups and sign-in time updated on each. A name stays bound to the provider
// and subject that first used it: a local user's name, or another identity's, is
// refused rather than taken over.
func (s *Server) federatedUser(ctx context.Context, p federation.Provider, id federation.Identity) (User, error) {
	if err := validUserName(id.Username); err != nil {
		return User{}, err
	}
	if _, local := s.users[id.Username]; local {
		return User{}, fmt.Errorf("the name %s belongs to a local account of this server; ask an administrator", quoteName(id.Username))
	}
	want := User{Name: id.Username, Groups: id.Groups, Provider: p.Name, ProviderSubject: p.Issuer + " " + id.Subject, SignedIn: s.now().UTC()}
	for range 3 {
		stored, err := s.store.GetUser(ctx, id.Username)
		if errors.Is(err, ErrNotFound) {
			err = s.store.CreateUser(ctx, want)
			if errors.Is(err, ErrExists) {
				continue // another sign-in of the same name won the race: check it
			}
			return want, err
		}
		if err != nil {
			return User{}, err
		}
		if stored.Provider != want.Provider || stored.ProviderSubject != want.ProviderSubject {
			return User{}, fmt.Errorf("the name %s belongs to another account of this server; ask an administrator", quoteName(id.Username))
		}
		if p.GroupsClaim == federation.NoGroups {
			want.Groups = stored.Groups // set on the admin endpoint
		}
		if err := s.store.UpdateUser(ctx, want); err != nil {
			return User{}, err
		}
		if !sameGroups(stored.Groups, want.Groups) {
			// Tokens issued with the old groups stop working, as when an admin changes them.
			// The revocation starts at this second, so the token about to be issued lives.
			if err := s.revoke(ctx, revokeSubject(want.Name, s.now().Truncate(time.Second))); err != nil {
				s.logger.Error("revoking tokens after a group change failed", zap.String("user", want.Name), zapErr(err))
			}
		}
		return want, nil
	}
	return User{}, errors.New("the user record keeps changing; try again")
}

func sameGroups(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// federatedSignInLive reports whether a user of an identity provider signed in there
// recently enough for their refresh token to be honoured (reauthenticate_after).
func (s *Server) federatedSignInLive(u User) bool {
	if u.Provider == "" {
		return true
	}
	c, ok := s.idps[u.Provider]
	return ok && s.now().Before(u.SignedIn.Add(time.Duration(c.Provider().ReauthenticateAfter)))
}

// federatedUserActive reports whether a user of an identity provider signed in there
// recently enough for their personal tokens to be honoured (inactive_after).
func (s *Server) federatedUserActive(u User) bool {
	if u.Provider == "" {
		return true
	}
	c, ok := s.idps[u.Provider]
	return ok && s.now().Before(u.SignedIn.Add(time.Duration(c.Provider().InactiveAfter)))
}

// provisionIdentityProviders resolves the providers' placeholders and prepares their
// clients; ctx bounds their key refresh.
func (s *Server) provisionIdentityProviders(ctx context.Context, repl *caddy.Replacer) error {
	s.idps = map[string]*federation.Client{}
	s.idpOrder = nil
	for _, p := range s.IdentityProviders {
		p.Issuer = repl.ReplaceKnown(p.Issuer, "")
		p.ClientID = repl.ReplaceKnown(p.ClientID, "")
		p.ClientSecret = repl.ReplaceKnown(p.ClientSecret, "")
		c, err := federation.New(ctx, p, federationHTTPClient())
		if err != nil {
			return err
		}
		name := c.Provider().Name
		if _, dup := s.idps[name]; dup {
			return fmt.Errorf("identity provider %q configured twice", name)
		}
		s.idps[name] = c
		s.idpOrder = append(s.idpOrder, c)
	}
	if s.DisablePasswordSignIn && len(s.idps) == 0 {
		return errors.New("disable_password_sign_in needs an identity provider to sign in with")
	}
	if s.DisablePasswordSignIn && s.FirstUser != nil {
		return errors.New("first_user signs in with a password, and password sign-in is off: remove one of them (the provider's groups make the first administrator)")
	}
	return nil
}

func quoteName(s string) string { return fmt.Sprintf("%q", truncate(s, 64)) }

// federationHTTPClient calls the providers: bounded in time, no redirects followed.
func federationHTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: upstreamoauth.NoRedirects}
}
