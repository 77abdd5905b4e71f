package oauthserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

const (
	maxUserNameLength = 128
	maxPasswordLength = 1024
	failureWindow     = time.Hour
	freeUserFailures  = 5
	freeIPFailures    = 20
	maxLockout        = 15 * time.Minute
	badCredentials    = "Invalid username or password."
)

func validUserName(name string) error {
	if name == "" || len(name) > maxUserNameLength || !utf8.ValidString(name) || strings.ContainsFunc(name, isControlOrSpace) {
		return fmt.Errorf("user name %q: want 1 to %d printable characters without spaces", truncate(name, 40), maxUserNameLength)
	}
	return nil
}

func (s *Server) cookieName(r *http.Request) string {
	if r.TLS != nil {
		return secureCookiePfx + sessionCookie
	}
	return sessionCookie
}

// currentSession returns the browser's live session, if any.
func (s *Server) currentSession(r *http.Request) (Session, bool) {
	ck, err := r.Cookie(s.cookieName(r))
	if err != nil || len(ck.Value) > 64 {
		return Session{}, false
	}
	sess, err := s.store.GetSession(r.Context(), ck.Value)
	return sess, err == nil
}

// browserSession returns the browser's session, starting one when it has none.
func (s *Server) browserSession(w http.ResponseWriter, r *http.Request) (Session, error) {
	if sess, ok := s.currentSession(r); ok {
		return sess, nil
	}
	return s.newSession(w, r, "")
}

// newSession starts a session with a fresh random id (also on sign-in, so an id planted
// before sign-in is worthless after it) and sets its cookie.
func (s *Server) newSession(w http.ResponseWriter, r *http.Request, user string) (Session, error) {
	sess := Session{ID: rand.Text(), User: user, CSRF: rand.Text(), Expires: s.now().Add(sessionLifetime)}
	if err := s.store.PutSession(r.Context(), sess); err != nil {
		return Session{}, err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(r),
		Value:    sess.ID,
		Path:     "/",
		MaxAge:   int(sessionLifetime / time.Second),
		Secure:   r.TLS != nil,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	return sess, nil
}

// lookupUser finds a user in the config, then in the store.
func (s *Server) lookupUser(r *http.Request, name string) (User, bool) {
	return s.lookupUserByName(r.Context(), name)
}

func (s *Server) lookupUserByName(ctx context.Context, name string) (User, bool) {
	if u, ok := s.users[name]; ok {
		return u, true
	}
	u, err := s.store.GetUser(ctx, name)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.logger.Error("reading user failed", zapErr(err))
		}
		return User{}, false
	}
	return u, true
}

// lockedFor is how long a key with these failures must wait: nothing for the first
// free failures, then 1 s doubling per failure up to maxLockout.
func lockedFor(f LoginFailures, free int, now time.Time) time.Duration {
	if f.Count < free {
		return 0
	}
	wait := time.Second << min(f.Count-free, 20)
	if wait > maxLockout {
		wait = maxLockout
	}
	return f.Last.Add(wait).Sub(now)
}

func (s *Server) throttled(ctx context.Context, userKey, ipKey string, now time.Time) (time.Duration, error) {
	uf, err := s.store.LoginFailures(ctx, userKey)
	if err != nil {
		return 0, err
	}
	ipf, err := s.store.LoginFailures(ctx, ipKey)
	if err != nil {
		return 0, err
	}
	return max(lockedFor(uf, freeUserFailures, now), lockedFor(ipf, freeIPFailures, now)), nil
}

// signInResult is the outcome of checking a sign-in form's credentials.
type signInResult int

const (
	signInOK signInResult = iota
	signInFailed
	signInThrottled
	signInUnavailable
)

// checkCredentials checks the username and password of a sign-in form, throttled per
// user and per client IP. Unknown users and wrong passwords get the same answer and
// cost the same bcrypt comparison. wait is set when throttled.
func (s *Server) checkCredentials(r *http.Request) (user User, result signInResult, wait time.Duration) {
	ctx := r.Context()
	name := r.PostForm.Get("username")
	password := r.PostForm.Get("password")
	ip := clientIP(r)
	userKey := "user:" + strings.ToLower(truncate(name, maxUserNameLength))
	ipKey := "ip:" + ip
	now := s.now()
	wait, err := s.throttled(ctx, userKey, ipKey, now)
	if err != nil {
		s.logger.Error("reading sign-in failures failed", zapErr(err))
		return User{}, signInUnavailable, 0
	}
	if wait > 0 {
		s.logger.Warn("sign-in throttled", zap.String("user", truncate(name, 64)), zap.String("remote_ip", ip), zap.Duration("wait", wait))
		return User{}, signInThrottled, wait
	}
	ok := false
	if validUserName(name) == nil && len(password) <= maxPasswordLength {
		var known bool
		user, known = s.lookupUser(r, name)
		// Users without a password (an identity provider's) cost what unknown ones do.
		known = known && user.PasswordHash != "" && !s.DisablePasswordSignIn
		hash := s.dummyHash
		if known {
			hash = []byte(user.PasswordHash)
		}
		ok = bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && known
	}
	if !ok {
		uf, err1 := s.store.AddLoginFailure(ctx, userKey, now, failureWindow)
		ipf, err2 := s.store.AddLoginFailure(ctx, ipKey, now, failureWindow)
		if err := errors.Join(err1, err2); err != nil {
			s.logger.Error("recording sign-in failure failed", zapErr(err))
		}
		s.logger.Info("sign-in failed", zap.String("user", truncate(name, 64)), zap.String("remote_ip", ip),
			zap.Int("user_failures", uf.Count), zap.Int("ip_failures", ipf.Count))
		return User{}, signInFailed, 0
	}
	s.store.ClearLoginFailures(ctx, userKey)
	s.logger.Info("signed in", zap.String("user", user.Name), zap.String("remote_ip", ip))
	return user, signInOK, 0
}

// throttledAnswer sets Retry-After and returns the message of a throttled sign-in.
func throttledAnswer(w http.ResponseWriter, wait time.Duration) string {
	w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
	return "Too many failed sign-ins. Wait a moment and try again."
}

// handleLogin checks the sign-in form of an authorization request.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, req AuthRequest, c Client, sess Session) {
	user, result, wait := s.checkCredentials(r)
	switch result {
	case signInUnavailable:
		renderError(w, http.StatusInternalServerError, "Server error", "Sign-in is unavailable.")
		return
	case signInThrottled:
		data := pageData{Title: "Sign in", Action: s.issuerPath + "/authorize", RequestID: req.ID, CSRF: req.CSRF, ClientName: c.Name, Resource: req.Resource,
			Error: throttledAnswer(w, wait), Providers: s.providerLinks(req.ID, ""), NoPassword: s.DisablePasswordSignIn}
		renderPage(w, http.StatusTooManyRequests, "login", data, "")
		return
	case signInFailed:
		s.proceed(w, r, req, c, Session{}, badCredentials)
		return
	}
	if newSess, ok := s.signInSession(w, r, sess, user.Name); ok {
		s.proceedSignedIn(w, r, req, c, newSess)
	}
}

// signInSession replaces the browser's session old with a new one for the user who
// just signed in (a new id, so one planted before sign-in is worthless). On false the
// error page has been written.
func (s *Server) signInSession(w http.ResponseWriter, r *http.Request, old Session, user string) (Session, bool) {
	s.store.DeleteSession(r.Context(), old.ID)
	sess, err := s.newSession(w, r, user)
	if err != nil {
		s.logger.Error("creating session failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "Your session could not be created.")
		return Session{}, false
	}
	return sess, true
}

// proceedSignedIn moves a pending request to the session its user just signed in to
// (with a fresh CSRF token for its next form) and shows its next step.
func (s *Server) proceedSignedIn(w http.ResponseWriter, r *http.Request, req AuthRequest, c Client, sess Session) {
	req.SessionID = sess.ID
	req.CSRF = rand.Text()
	if err := s.store.PutAuthRequest(r.Context(), req); err != nil {
		s.logger.Error("storing authorization request failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "The request could not be stored.")
		return
	}
	s.proceed(w, r, req, c, sess, "")
}
