package oauthserver

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// The account pages let a user sign in without an application asking (<issuer>/login),
// mint, list and revoke their own personal gateway tokens (<issuer>/account) and sign
// out (<issuer>/logout). Other handlers of the config send the browser to the sign-in
// page through the issuer's BrowserSignIn (authn.LocalIssuers.SignIn).

// maxPersonalTokensPerUser bounds what one user can mint for themself.
const maxPersonalTokensPerUser = 50

func (s *Server) accountPath() string { return s.issuerPath + "/account" }

// SignedIn returns the user signed in in the browser that sent r.
func (s *Server) SignedIn(r *http.Request) (string, bool) {
	sess, ok := s.currentSession(r)
	if !ok || sess.User == "" {
		return "", false
	}
	if _, known := s.lookupUser(r, sess.User); !known {
		return "", false
	}
	return sess.User, true
}

// SignedInUser is SignedIn with the user's groups.
func (s *Server) SignedInUser(r *http.Request) (string, []string, bool) {
	sess, ok := s.currentSession(r)
	if !ok || sess.User == "" {
		return "", nil, false
	}
	u, known := s.lookupUser(r, sess.User)
	if !known {
		return "", nil, false
	}
	return u.Name, slices.Clone(u.Groups), true
}

// SignInURL is the sign-in page that sends the browser on to returnTo.
func (s *Server) SignInURL(returnTo string) string {
	return s.Issuer + "/login?" + url.Values{"return_to": {returnTo}}.Encode()
}

// localReturnTo accepts a path on the issuer's own site (no scheme, host or
// protocol-relative form, so the sign-in page is no open redirect); anything else is
// the account page.
func (s *Server) localReturnTo(v string) string {
	if len(v) > 2048 || !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") || strings.ContainsAny(v, "\\\x00\r\n\t") {
		return s.accountPath()
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return s.accountPath()
	}
	return v
}

// serveLogin is the sign-in page of a browser that no application sent.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		returnTo := s.localReturnTo(r.URL.Query().Get("return_to"))
		if _, ok := s.SignedIn(r); ok {
			http.Redirect(w, r, returnTo, http.StatusSeeOther)
			return
		}
		sess, err := s.browserSession(w, r)
		if err != nil {
			s.logger.Error("creating session failed", zapErr(err))
			renderError(w, http.StatusInternalServerError, "Server error", "Your session could not be created.")
			return
		}
		s.renderSignIn(w, http.StatusOK, sess, returnTo, "")
	case http.MethodPost:
		sess, ok := s.accountForm(w, r)
		if !ok {
			return
		}
		returnTo := s.localReturnTo(r.PostForm.Get("return_to"))
		user, result, wait := s.checkCredentials(r)
		switch result {
		case signInUnavailable:
			renderError(w, http.StatusInternalServerError, "Server error", "Sign-in is unavailable.")
			return
		case signInThrottled:
			s.renderSignIn(w, http.StatusTooManyRequests, sess, returnTo, throttledAnswer(w, wait))
			return
		case signInFailed:
			s.renderSignIn(w, http.StatusUnauthorized, sess, returnTo, badCredentials)
			return
		}
		if _, ok := s.signInSession(w, r, sess, user.Name); ok {
			http.Redirect(w, r, returnTo, http.StatusSeeOther)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		renderError(w, http.StatusMethodNotAllowed, "Method not allowed", "The sign-in page takes GET and POST.")
	}
}

func (s *Server) renderSignIn(w http.ResponseWriter, status int, sess Session, returnTo, problem string) {
	if to, ok := s.onlyProvider("", returnTo); ok && problem == "" {
		noStore(w)
		w.Header().Set("Location", to)
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	renderPage(w, status, "signin", pageData{Title: "Sign in", Action: s.issuerPath + "/login", CSRF: sess.CSRF, ReturnTo: returnTo, Error: problem,
		Providers: s.providerLinks("", returnTo), NoPassword: s.DisablePasswordSignIn}, "")
}

// accountForm parses a form posted by the account pages and checks that it came from
// this browser's session. On false the answer has been written.
func (s *Server) accountForm(w http.ResponseWriter, r *http.Request) (Session, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		renderError(w, http.StatusBadRequest, "Bad request", "The form is malformed or too large.")
		return Session{}, false
	}
	sess, ok := s.currentSession(r)
	if !s.sameSiteForm(r) || !ok || sess.CSRF == "" || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.CSRF)) != 1 {
		s.logger.Warn("account form with a bad CSRF token or session", zap.String("remote_ip", clientIP(r)))
		renderError(w, http.StatusForbidden, "Forbidden", "This form does not belong to your session. Reload the page and try again.")
		return Session{}, false
	}
	return sess, true
}

// serveLogout ends the browser's session.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		renderError(w, http.StatusMethodNotAllowed, "Method not allowed", "Sign out with the button on your account page.")
		return
	}
	sess, ok := s.accountForm(w, r)
	if !ok {
		return
	}
	s.store.DeleteSession(r.Context(), sess.ID)
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r), Value: "", Path: "/", MaxAge: -1, Secure: r.TLS != nil, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, s.issuerPath+"/login", http.StatusSeeOther)
}

// serveAccount shows the signed-in user their personal gateway tokens, and mints and
// revokes them.
func (s *Server) serveAccount(w http.ResponseWriter, r *http.Request) {
	var sess Session
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		cur, ok := s.currentSession(r)
		if !ok || cur.User == "" {
			http.Redirect(w, r, s.SignInURL(s.accountPath()), http.StatusSeeOther)
			return
		}
		sess = cur
	case http.MethodPost:
		var ok bool
		if sess, ok = s.accountForm(w, r); !ok {
			return
		}
		if sess.User == "" {
			http.Redirect(w, r, s.SignInURL(s.accountPath()), http.StatusSeeOther)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		renderError(w, http.StatusMethodNotAllowed, "Method not allowed", "The account page takes GET and POST.")
		return
	}
	user, known := s.lookupUser(r, sess.User)
	if !known {
		http.Redirect(w, r, s.SignInURL(s.accountPath()), http.StatusSeeOther)
		return
	}
	data := pageData{Title: "Your account", Action: s.accountPath(), CSRF: sess.CSRF, User: user.Name,
		Groups: strings.Join(user.Groups, ", "), Resource: s.Resource, MaxDays: s.maxPersonalDays(), LogoutAction: s.issuerPath + "/logout"}
	if c, ok := s.idps[user.Provider]; ok && user.PasswordHash == "" {
		data.ManagedBy = c.Provider().DisplayName
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = s.accountAction(r, user, &data)
	}
	tokens, err := s.store.ListPersonalTokens(r.Context(), user.Name)
	if err != nil {
		s.logger.Error("listing personal tokens failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "Your tokens could not be read.")
		return
	}
	now := s.now()
	for _, t := range tokens {
		if now.Before(t.Expires) {
			data.Tokens = append(data.Tokens, tokenRow{ID: t.ID, Name: t.Name, Created: t.Created.UTC().Format(time.DateOnly), Expires: t.Expires.UTC().Format(time.DateOnly)})
		}
	}
	renderPage(w, status, "account", data, "")
}

// maxPersonalDays is the longest lifetime, in whole days, a user may choose.
func (s *Server) maxPersonalDays() int {
	return max(1, int(time.Duration(s.PersonalTokenMaxLifetime)/(24*time.Hour)))
}

// accountAction performs a posted account action and returns the page's status.
func (s *Server) accountAction(r *http.Request, user User, data *pageData) int {
	ctx := r.Context()
	switch r.PostForm.Get("action") {
	case "mint":
		name := strings.TrimSpace(r.PostForm.Get("name"))
		if len(name) > 128 || strings.ContainsAny(name, "\x00\r\n") {
			data.Error = "The name must be at most 128 characters on one line."
			return http.StatusBadRequest
		}
		days, err := strconv.Atoi(r.PostForm.Get("days"))
		if err != nil || days < 1 || days > data.MaxDays {
			data.Error = "The lifetime must be a whole number of days from 1 to " + strconv.Itoa(data.MaxDays) + "."
			return http.StatusBadRequest
		}
		existing, err := s.store.ListPersonalTokens(ctx, user.Name)
		if err != nil {
			s.logger.Error("listing personal tokens failed", zapErr(err))
			data.Error = "Your tokens could not be read."
			return http.StatusInternalServerError
		}
		if len(existing) >= maxPersonalTokensPerUser {
			data.Error = "You have " + strconv.Itoa(len(existing)) + " tokens, the most one user may hold. Revoke one first."
			return http.StatusConflict
		}
		token, t := newPersonalToken(user.Name, name, time.Duration(days)*24*time.Hour, s.now().UTC())
		if err := s.store.CreatePersonalToken(ctx, t); err != nil {
			s.logger.Error("storing a personal token failed", zapErr(err))
			data.Error = "The token could not be stored."
			return http.StatusInternalServerError
		}
		s.logger.Info("personal token minted by its user", zap.String("user", user.Name), zap.String("token_id", t.ID), zap.Time("expires", t.Expires))
		data.NewToken = token
		data.NewTokenName = name
		return http.StatusCreated
	case "revoke":
		id := r.PostForm.Get("id")
		t, err := s.store.GetPersonalToken(ctx, id)
		// Someone else's token is answered as an unknown one.
		if errors.Is(err, ErrNotFound) || (err == nil && t.User != user.Name) {
			data.Error = "No such token."
			return http.StatusNotFound
		}
		if err == nil {
			err = s.store.DeletePersonalToken(ctx, id)
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			s.logger.Error("revoking a personal token failed", zapErr(err))
			data.Error = "The token could not be revoked."
			return http.StatusInternalServerError
		}
		s.logger.Info("personal token revoked by its user", zap.String("user", user.Name), zap.String("token_id", id))
		data.Message = "Token revoked."
		return http.StatusOK
	case "password":
		return s.changePassword(r, user, data)
	}
	data.Error = "Unknown action."
	return http.StatusBadRequest
}

// changePassword sets a store-held user's password after checking the current one; a
// wrong current password counts as a failed sign-in for the user's throttling.
func (s *Server) changePassword(r *http.Request, user User, data *pageData) int {
	ctx := r.Context()
	if _, configured := s.users[user.Name]; configured {
		data.Error = "Your password is set in the server's configuration; ask an administrator to change it."
		return http.StatusConflict
	}
	if user.PasswordHash == "" {
		data.Error = "You sign in through an identity provider; change your password there."
		return http.StatusConflict
	}
	userKey := "user:" + strings.ToLower(user.Name)
	now := s.now()
	if wait, err := s.throttled(ctx, userKey, "ip:"+clientIP(r), now); err != nil || wait > 0 {
		data.Error = "Too many failed attempts. Wait a moment and try again."
		return http.StatusTooManyRequests
	}
	current, next := r.PostForm.Get("current_password"), r.PostForm.Get("new_password")
	if len(current) > maxPasswordLength || bcrypt.CompareHashAndPassword([]byte(user.PasswordHash), []byte(current)) != nil {
		s.store.AddLoginFailure(ctx, userKey, now, failureWindow)
		s.logger.Info("password change with a wrong current password", zap.String("user", user.Name), zap.String("remote_ip", clientIP(r)))
		data.Error = "The current password is wrong."
		return http.StatusForbidden
	}
	if len(next) < minPasswordBytes || len(next) > maxPasswordBytes {
		data.Error = "The new password must be " + strconv.Itoa(minPasswordBytes) + " to " + strconv.Itoa(maxPasswordBytes) + " bytes long."
		return http.StatusBadRequest
	}
	if next != r.PostForm.Get("repeat_password") {
		data.Error = "The new password and its repetition differ."
		return http.StatusBadRequest
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(next), bcrypt.DefaultCost)
	if err == nil {
		user.PasswordHash = string(hash)
		err = s.store.UpdateUser(ctx, user)
	}
	if err != nil {
		s.logger.Error("changing a password failed", zap.String("user", user.Name), zapErr(err))
		data.Error = "The password could not be changed."
		return http.StatusInternalServerError
	}
	s.logger.Info("password changed by its user", zap.String("user", user.Name))
	data.Message = "Password changed."
	return http.StatusOK
}

// tokenRow is a personal token as the account page lists it.
type tokenRow struct{ ID, Name, Created, Expires string }
