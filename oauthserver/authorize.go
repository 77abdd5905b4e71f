package oauthserver

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"
)

const (
	maxQueryLength  = 8 << 10
	maxFormBody     = 16 << 10
	maxStateLength  = 1024
	sessionCookie   = "mcp_oauth_session"
	secureCookiePfx = "__Host-"
)

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.startAuthorization(w, r)
	case http.MethodPost:
		s.continueAuthorization(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		renderError(w, http.StatusMethodNotAllowed, "Method not allowed", "The authorization endpoint takes GET (and POST from its own pages).")
	}
}

// startAuthorization validates an authorization request. Until the client and its
// redirect URI are known to match, errors are shown as a page and never redirected.
func (s *Server) startAuthorization(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > maxQueryLength {
		renderError(w, http.StatusRequestURITooLong, "Request too long", "The authorization request is too long.")
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		renderError(w, http.StatusBadRequest, "Bad request", "The authorization request is malformed.")
		return
	}
	for _, p := range []string{"client_id", "redirect_uri", "response_type", "state", "code_challenge", "code_challenge_method", "scope", "prompt"} {
		if len(q[p]) > 1 {
			renderError(w, http.StatusBadRequest, "Bad request", "The parameter "+p+" appears more than once.")
			return
		}
	}
	ctx := r.Context()
	c, err := s.client(ctx, q.Get("client_id"))
	if err != nil {
		if errors.Is(err, errUnknownClient) {
			s.logger.Info("authorization for unknown client", zapClient(q.Get("client_id")), zap.String("reason", err.Error()))
			renderError(w, http.StatusBadRequest, "Unknown application", "The application that sent you here is not known to this server ("+err.Error()+").")
			return
		}
		s.logger.Error("looking up client failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "The application could not be looked up.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		renderError(w, http.StatusBadRequest, "Bad request", "The request names no redirect_uri.")
		return
	}
	if !redirectAllowed(c, redirectURI) {
		s.logger.Info("authorization with unregistered redirect_uri", zapClient(c.ID), zap.String("redirect_uri", truncate(redirectURI, 200)))
		renderError(w, http.StatusBadRequest, "Redirect not allowed", "The redirect URI of this request is not registered for the application, so you are not sent back to it.")
		return
	}
	state := q.Get("state")
	if len(state) > maxStateLength {
		renderError(w, http.StatusBadRequest, "Bad request", "The state parameter is too long.")
		return
	}
	fail := func(code, desc string) {
		s.redirectResult(w, r, redirectURI, state, url.Values{"error": {code}, "error_description": {desc}})
	}

	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	}
	if !hasGrant(c, "authorization_code") {
		fail("unauthorized_client", "the client may not use the authorization code grant")
		return
	}
	switch method := q.Get("code_challenge_method"); method {
	case "S256":
	case "":
		fail("invalid_request", "PKCE is required: code_challenge_method=S256")
		return
	default:
		fail("invalid_request", "code_challenge_method must be S256")
		return
	}
	challenge := q.Get("code_challenge")
	if !validChallenge(challenge) {
		fail("invalid_request", "code_challenge must be 43 base64url characters (S256)")
		return
	}
	resource := s.Resource
	switch rs := q["resource"]; len(rs) {
	case 0:
	case 1:
		resource = rs[0]
		if !s.allowedResource(resource) {
			fail("invalid_target", "resource is not served by this gateway")
			return
		}
	default:
		fail("invalid_target", "only one resource per request is supported")
		return
	}
	scope, oerr := s.checkScope(q.Get("scope"))
	if oerr != nil {
		fail(oerr.Code, oerr.Description)
		return
	}

	sess, err := s.browserSession(w, r)
	if err != nil {
		s.logger.Error("creating session failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "Your session could not be created.")
		return
	}
	req := AuthRequest{
		ID:            rand.Text(),
		ClientID:      c.ID,
		RedirectURI:   redirectURI,
		State:         state,
		Scope:         scope,
		Resource:      resource,
		CodeChallenge: challenge,
		SessionID:     sess.ID,
		CSRF:          rand.Text(),
		Expires:       s.now().Add(authRequestLifetime),
	}
	if q.Get("prompt") == "none" {
		if sess.User == "" {
			fail("login_required", "the user is not signed in")
			return
		}
		if ok, _ := s.store.HasConsent(ctx, sess.User, c.ID, resource); !ok {
			fail("consent_required", "the user has not approved this client")
			return
		}
	}
	if err := s.store.PutAuthRequest(ctx, req); err != nil {
		s.logger.Error("storing authorization request failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "The request could not be stored.")
		return
	}
	s.proceed(w, r, req, c, sess, "")
}

// validChallenge: an S256 challenge is the base64url SHA-256 of the verifier.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if !isUnreserved(c[i]) || c[i] == '.' || c[i] == '~' {
			return false
		}
	}
	return true
}

func isUnreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.' || b == '~'
}

// checkScope validates a requested scope; with scopes_supported configured every
// scope must be among them.
func (s *Server) checkScope(scope string) (string, *oauthError) {
	if len(scope) > maxScopeLength || !validScope(scope) {
		return "", newOAuthError("invalid_scope", "scope is malformed")
	}
	fields := strings.Fields(scope)
	if len(s.ScopesSupported) > 0 {
		for _, f := range fields {
			if !slices.Contains(s.ScopesSupported, f) {
				return "", newOAuthError("invalid_scope", "scope "+truncate(f, 60)+" is not supported")
			}
		}
	}
	return strings.Join(fields, " "), nil
}

// proceed shows the next step of a pending request: sign-in, consent, or the redirect
// with a code.
func (s *Server) proceed(w http.ResponseWriter, r *http.Request, req AuthRequest, c Client, sess Session, loginError string) {
	ctx := r.Context()
	redirect, _ := url.Parse(req.RedirectURI)
	target := cspSource(redirect.Scheme, redirect.Host)
	data := pageData{
		Action:     s.issuerPath + "/authorize",
		RequestID:  req.ID,
		CSRF:       req.CSRF,
		ClientName: c.Name,
		Resource:   req.Resource,
		Scope:      req.Scope,
	}
	var user User
	var known bool
	if sess.User != "" {
		user, known = s.lookupUser(r, sess.User)
	}
	if to, ok := s.onlyProvider(req.ID, ""); !known && ok && loginError == "" {
		noStore(w)
		w.Header().Set("Location", to)
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	if !known {
		data.Title = "Sign in"
		data.Error = loginError
		data.Providers = s.providerLinks(req.ID, "")
		data.NoPassword = s.DisablePasswordSignIn
		status := http.StatusOK
		if loginError != "" {
			status = http.StatusUnauthorized
		}
		renderPage(w, status, "login", data, target)
		return
	}
	consented, err := s.store.HasConsent(ctx, user.Name, c.ID, req.Resource)
	if err != nil {
		s.logger.Error("reading consent failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "Your approvals could not be read.")
		return
	}
	if !consented {
		data.Title = "Allow access?"
		data.User = user.Name
		data.RedirectHost = redirect.Host
		if isLoopbackRedirectHost(redirect.Hostname()) {
			data.RedirectHost = redirect.Host + " (an application on this computer)"
		}
		data.ClientKind = clientKind(c)
		renderPage(w, http.StatusOK, "consent", data, target)
		return
	}
	s.issueCode(w, r, req, user)
}

func clientKind(c Client) string {
	switch {
	case strings.HasPrefix(c.ID, "https://"):
		u, _ := url.Parse(c.ID)
		return "described by " + u.Host
	case strings.HasPrefix(c.ID, "dcr_"):
		return "self-registered, name not verified"
	default:
		return "registered by the administrator"
	}
}

// issueCode ends a request with an authorization code.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, req AuthRequest, user User) {
	code := rand.Text() + rand.Text()
	err := s.store.PutCode(r.Context(), Code{
		Hash:          hashToken(code),
		ClientID:      req.ClientID,
		RedirectURI:   req.RedirectURI,
		CodeChallenge: req.CodeChallenge,
		Resource:      req.Resource,
		Scope:         req.Scope,
		Subject:       user.Name,
		Groups:        user.Groups,
		Expires:       s.now().Add(codeLifetime),
	})
	if err != nil {
		s.logger.Error("storing authorization code failed", zapErr(err))
		renderError(w, http.StatusInternalServerError, "Server error", "The authorization could not be stored.")
		return
	}
	s.store.DeleteAuthRequest(r.Context(), req.ID)
	s.logger.Info("authorization code issued", zap.String("user", user.Name), zapClient(req.ClientID), zap.String("resource", req.Resource))
	s.redirectResult(w, r, req.RedirectURI, req.State, url.Values{"code": {code}})
}

// redirectResult sends the browser back to the client's (already validated) redirect
// URI with the result, state and iss (RFC 9207).
func (s *Server) redirectResult(w http.ResponseWriter, r *http.Request, redirectURI, state string, params url.Values) {
	u, _ := url.Parse(redirectURI)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.Issuer)
	u.RawQuery = q.Encode()
	noStore(w)
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// continueAuthorization handles the login and consent forms.
func (s *Server) continueAuthorization(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		renderError(w, http.StatusBadRequest, "Bad request", "The form is malformed or too large.")
		return
	}
	ctx := r.Context()
	if !s.sameSiteForm(r) {
		renderError(w, http.StatusForbidden, "Forbidden", "The form was submitted from another site.")
		return
	}
	req, err := s.store.GetAuthRequest(ctx, r.PostForm.Get("request"))
	if err != nil {
		renderError(w, http.StatusBadRequest, "Request expired", "This sign-in request is unknown or has expired.")
		return
	}
	sess, ok := s.currentSession(r)
	if !ok || subtle.ConstantTimeCompare([]byte(sess.ID), []byte(req.SessionID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(req.CSRF)) != 1 {
		s.logger.Warn("authorization form with a bad CSRF token or session", zap.String("remote_ip", clientIP(r)))
		renderError(w, http.StatusForbidden, "Forbidden", "This form does not belong to your session. Start again from your application.")
		return
	}
	c, err := s.client(ctx, req.ClientID)
	if err != nil {
		renderError(w, http.StatusBadRequest, "Unknown application", "The application is no longer known to this server.")
		return
	}
	switch r.PostForm.Get("action") {
	case "login":
		s.handleLogin(w, r, req, c, sess)
	case "approve":
		user, known := s.lookupUser(r, sess.User)
		if sess.User == "" || !known {
			s.proceed(w, r, req, c, Session{}, "")
			return
		}
		if err := s.store.PutConsent(ctx, Consent{User: user.Name, ClientID: c.ID, Resource: req.Resource, Granted: s.now()}); err != nil {
			s.logger.Error("storing consent failed", zapErr(err))
			renderError(w, http.StatusInternalServerError, "Server error", "Your approval could not be stored.")
			return
		}
		s.logger.Info("client approved", zap.String("user", user.Name), zapClient(c.ID), zap.String("resource", req.Resource))
		s.issueCode(w, r, req, user)
	case "deny":
		s.store.DeleteAuthRequest(ctx, req.ID)
		s.redirectResult(w, r, req.RedirectURI, req.State, url.Values{"error": {"access_denied"}, "error_description": {"the user denied access"}})
	default:
		renderError(w, http.StatusBadRequest, "Bad request", "Unknown form action.")
	}
}

// sameSiteForm reports whether a form post came from the server's own pages, as far as
// the browser says (Sec-Fetch-Site, Origin); the CSRF token is checked besides.
func (s *Server) sameSiteForm(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	return o == "" || o == "null" || o == s.issuerURL.Scheme+"://"+s.issuerURL.Host
}
