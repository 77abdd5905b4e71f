package oauthserver

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

const (
	maxRegistrationBody = 16 << 10
	maxRedirectURIs     = 10
	maxNameLength       = 200
	maxScopeLength      = 1000
)

// registrationRequest is RFC 7591 client metadata as this server accepts it. Fields it
// cannot honour (jwks, software statements) are refused rather than ignored.
type registrationRequest struct {
	RedirectURIs      []string `json:"redirect_uris"`
	AuthMethod        string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes        []string `json:"grant_types,omitempty"`
	ResponseTypes     []string `json:"response_types,omitempty"`
	ClientName        string   `json:"client_name,omitempty"`
	ClientURI         string   `json:"client_uri,omitempty"`
	LogoURI           string   `json:"logo_uri,omitempty"`
	TOSURI            string   `json:"tos_uri,omitempty"`
	PolicyURI         string   `json:"policy_uri,omitempty"`
	Scope             string   `json:"scope,omitempty"`
	Contacts          []string `json:"contacts,omitempty"`
	SoftwareID        string   `json:"software_id,omitempty"`
	SoftwareVersion   string   `json:"software_version,omitempty"`
	ApplicationType   string   `json:"application_type,omitempty"`
	JWKS              any      `json:"jwks,omitempty"`
	JWKSURI           string   `json:"jwks_uri,omitempty"`
	SoftwareStatement string   `json:"software_statement,omitempty"`
}

// registrationResponse is the RFC 7591 §3.2.1 answer.
type registrationResponse struct {
	ClientID              string `json:"client_id"`
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
	registrationRequest
}

// toClient validates the metadata and builds the client it describes (without ID).
func (m *registrationRequest) toClient() (Client, error) {
	if m.JWKS != nil || m.JWKSURI != "" {
		return Client{}, errors.New("jwks and jwks_uri are not supported")
	}
	if m.SoftwareStatement != "" {
		return Client{}, errors.New("software_statement is not supported")
	}
	if len(m.RedirectURIs) == 0 {
		return Client{}, redirectURIError{errors.New("redirect_uris is required")}
	}
	if len(m.RedirectURIs) > maxRedirectURIs {
		return Client{}, redirectURIError{fmt.Errorf("at most %d redirect_uris", maxRedirectURIs)}
	}
	switch m.ApplicationType {
	case "":
		m.ApplicationType = inferApplicationType(m.RedirectURIs)
	case "native", "web":
	default:
		return Client{}, fmt.Errorf("application_type %q: want native or web", truncate(m.ApplicationType, 40))
	}
	for _, ru := range m.RedirectURIs {
		if err := validRedirectURI(ru, m.ApplicationType); err != nil {
			return Client{}, redirectURIError{err}
		}
	}
	switch m.AuthMethod {
	case "":
		m.AuthMethod = authBasic // RFC 7591 §2 default
	case authNone, authBasic, authPost:
	default:
		return Client{}, fmt.Errorf("token_endpoint_auth_method %q is not supported", truncate(m.AuthMethod, 40))
	}
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{"authorization_code"}
	}
	for _, g := range m.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return Client{}, fmt.Errorf("grant_type %q is not supported for registered clients", truncate(g, 60))
		}
	}
	if !slices.Contains(m.GrantTypes, "authorization_code") {
		return Client{}, errors.New("grant_types must include authorization_code")
	}
	if len(m.ResponseTypes) == 0 {
		m.ResponseTypes = []string{"code"}
	}
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			return Client{}, fmt.Errorf("response_type %q is not supported", truncate(rt, 40))
		}
	}
	if err := validText("client_name", m.ClientName); err != nil {
		return Client{}, err
	}
	for name, v := range map[string]string{"client_uri": m.ClientURI, "logo_uri": m.LogoURI, "tos_uri": m.TOSURI, "policy_uri": m.PolicyURI} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || len(v) > maxURILength {
			return Client{}, fmt.Errorf("%s must be an https URL", name)
		}
	}
	if len(m.Scope) > maxScopeLength || !validScope(m.Scope) {
		return Client{}, errors.New("scope is malformed")
	}
	if len(m.Contacts) > 10 {
		return Client{}, errors.New("at most 10 contacts")
	}
	for _, c := range m.Contacts {
		if err := validText("contacts", c); err != nil {
			return Client{}, err
		}
	}
	if err := validText("software_id", m.SoftwareID); err != nil {
		return Client{}, err
	}
	if err := validText("software_version", m.SoftwareVersion); err != nil {
		return Client{}, err
	}
	return Client{
		Name:            m.ClientName,
		AuthMethod:      m.AuthMethod,
		RedirectURIs:    slices.Clone(m.RedirectURIs),
		GrantTypes:      slices.Clone(m.GrantTypes),
		ApplicationType: m.ApplicationType,
		Scope:           m.Scope,
		ClientURI:       m.ClientURI,
	}, nil
}

// redirectURIError marks metadata refused for its redirect URIs (invalid_redirect_uri).
type redirectURIError struct{ error }

// inferApplicationType names the type the redirect URIs imply when the client did not
// say: native for loopback ones, web for https ones; mixed URIs are left to the
// per-URI check, which then refuses the ones that do not fit "web".
func inferApplicationType(uris []string) string {
	for _, ru := range uris {
		u, err := url.Parse(ru)
		if err != nil || u.Scheme != "http" || !isLoopbackRedirectHost(u.Hostname()) {
			return "web"
		}
	}
	return "native"
}

func validText(field, v string) error {
	if len(v) > maxNameLength || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%s must be at most %d printable characters", field, maxNameLength)
	}
	return nil
}

// validScope checks RFC 6749 §3.3 scope syntax.
func validScope(scope string) bool {
	for _, r := range scope {
		if r != ' ' && (r < 0x21 || r == 0x22 || r == 0x5c || r > 0x7e) {
			return false
		}
	}
	return true
}

func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if !allowCORS(w, r, "POST, OPTIONS") {
		return
	}
	if s.DisableRegistration {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeOAuthError(w, &oauthError{Code: "invalid_request", Description: "use POST", status: http.StatusMethodNotAllowed})
		return
	}
	ip := clientIP(r)
	if !s.dcrRate.allow(ip, s.now()) {
		s.logger.Warn("client registration rate limited", zap.String("remote_ip", ip))
		w.Header().Set("Retry-After", "60")
		writeOAuthError(w, &oauthError{Code: "invalid_request", Description: "too many registrations from this address; retry later", status: http.StatusTooManyRequests})
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeOAuthError(w, newOAuthError("invalid_client_metadata", "Content-Type must be application/json"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistrationBody+1))
	if err != nil {
		writeOAuthError(w, errInvalidRequest("reading the body failed"))
		return
	}
	if len(body) > maxRegistrationBody {
		writeOAuthError(w, &oauthError{Code: "invalid_client_metadata", Description: fmt.Sprintf("metadata larger than %d bytes", maxRegistrationBody), status: http.StatusRequestEntityTooLarge})
		return
	}
	var req registrationRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&req); err != nil || dec.More() {
		writeOAuthError(w, newOAuthError("invalid_client_metadata", "body is not a JSON object of client metadata"))
		return
	}
	c, err := req.toClient()
	if err != nil {
		code := "invalid_client_metadata"
		if errors.As(err, new(redirectURIError)) {
			code = "invalid_redirect_uri"
		}
		writeOAuthError(w, newOAuthError(code, err.Error()))
		return
	}
	now := s.now()
	c.ID = "dcr_" + rand.Text()
	c.Created = now
	var secret string
	if c.AuthMethod != authNone {
		secret = rand.Text() + rand.Text()
		c.SecretHash = hashSecret(secret)
	}
	if err := s.store.CreateClient(r.Context(), c); err != nil {
		s.logger.Error("storing registered client failed", zapErr(err))
		writeOAuthError(w, errServer("registration could not be stored"))
		return
	}
	s.logger.Info("client registered", zapClient(c.ID), zap.String("client_name", c.Name), zap.String("remote_ip", ip))
	resp := registrationResponse{ClientID: c.ID, ClientSecret: secret, ClientIDIssuedAt: now.Unix(), registrationRequest: req}
	if secret != "" {
		never := int64(0)
		resp.ClientSecretExpiresAt = &never
	}
	noStore(w)
	writeJSON(w, http.StatusCreated, resp)
}

// rateLimiter allows n events per key per period (fixed windows), holding a bounded
// number of keys.
type rateLimiter struct {
	n      int
	period time.Duration
	mu     sync.Mutex
	counts map[string]rateWindow
}

type rateWindow struct {
	start time.Time
	count int
}

const rateLimiterKeys = 10000

func newRateLimiter(n int, period time.Duration) *rateLimiter {
	return &rateLimiter{n: n, period: period, counts: map[string]rateWindow{}}
}

func (l *rateLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.counts) >= rateLimiterKeys {
		for k, v := range l.counts {
			if now.Sub(v.start) >= l.period {
				delete(l.counts, k)
			}
		}
		if len(l.counts) >= rateLimiterKeys {
			return false // under a flood of addresses, refuse rather than forget limits
		}
	}
	w := l.counts[key]
	if now.Sub(w.start) >= l.period {
		w = rateWindow{start: now}
	}
	if w.count >= l.n {
		return false
	}
	w.count++
	l.counts[key] = w
	return true
}
