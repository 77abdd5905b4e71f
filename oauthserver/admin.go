package oauthserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddymcp/caddymcp/mcpregistry"
)

func init() {
	caddy.RegisterModule(UsersAdmin{})
}

// UsersAdmin is the admin.api.mcp_oauth module: the local users of the built-in
// authorization server, managed on Caddy's admin endpoint (as protected as that
// endpoint is). Users live in the mcp_registry store, so every instance sharing it
// and every sign-in sees a change at once; users declared in the Caddyfile take
// precedence over stored ones of the same name and are not listed here.
//
//	GET    /mcp_oauth/users          the stored users: names and groups (never hashes)
//	POST   /mcp_oauth/users          add {"name", "password", "groups"}
//	PUT    /mcp_oauth/users/{name}   change {"password"?, "groups"?}
//	DELETE /mcp_oauth/users/{name}   remove, with the user's personal tokens
//	GET    /mcp_oauth/tokens[?user=] personal gateway tokens (never the secret)
//	POST   /mcp_oauth/tokens         mint {"user", "name", "lifetime"}: the token, shown once
//	DELETE /mcp_oauth/tokens/{id}    revoke
type UsersAdmin struct{}

// CaddyModule returns the Caddy module information.
func (UsersAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mcp_oauth",
		New: func() caddy.Module { return new(UsersAdmin) },
	}
}

// Routes returns the admin routes.
func (UsersAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/mcp_oauth/users", Handler: caddy.AdminHandlerFunc(handleUsers)},
		{Pattern: "/mcp_oauth/users/", Handler: caddy.AdminHandlerFunc(handleUsers)},
		{Pattern: "/mcp_oauth/tokens", Handler: caddy.AdminHandlerFunc(handlePersonalTokens)},
		{Pattern: "/mcp_oauth/tokens/", Handler: caddy.AdminHandlerFunc(handlePersonalTokens)},
	}
}

// Bounds of what the users admin API accepts.
const (
	maxUserBody      = 16 << 10
	minPasswordBytes = 12
	maxPasswordBytes = 72 // bcrypt reads no further
	maxUserGroups    = 64
	maxGroupBytes    = 128
)

var userNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// userInput is the body of POST and PUT.
type userInput struct {
	Name     string    `json:"name"`
	Password *string   `json:"password"`
	Groups   *[]string `json:"groups"`
}

// userView is a user as the API shows it.
type userView struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	// Provider and SignedIn describe a user of an identity provider.
	Provider string    `json:"provider,omitempty"`
	SignedIn time.Time `json:"signed_in,omitzero"`
}

func handleUsers(w http.ResponseWriter, r *http.Request) error {
	st, err := runningUserStore()
	if err != nil {
		return err
	}
	name, hasName := strings.CutPrefix(r.URL.Path, "/mcp_oauth/users/")
	ctx := r.Context()
	switch {
	case !hasName && r.Method == http.MethodGet:
		users, err := st.ListUsers(ctx)
		if err != nil {
			return err
		}
		out := make([]userView, 0, len(users))
		for _, u := range users {
			out = append(out, view(u))
		}
		return writeAdminJSON(w, http.StatusOK, out)
	case !hasName && r.Method == http.MethodPost:
		in, err := readUserInput(w, r)
		if err != nil {
			return err
		}
		if in.Password == nil {
			return badUser("password is required")
		}
		u := User{Name: in.Name}
		if err := applyUserInput(&u, in); err != nil {
			return err
		}
		if err := st.CreateUser(ctx, u); errors.Is(err, ErrExists) {
			return caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("user %q already exists", u.Name)}
		} else if err != nil {
			return err
		}
		return writeAdminJSON(w, http.StatusCreated, view(u))
	case hasName && (r.Method == http.MethodPut || r.Method == http.MethodDelete):
		if !userNamePattern.MatchString(name) {
			return badUser(fmt.Sprintf("%q is not a user name", name))
		}
		if r.Method == http.MethodDelete {
			if err := st.DeleteUser(ctx, name); errors.Is(err, ErrNotFound) {
				return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no stored user %q", name)}
			} else if err != nil {
				return err
			}
			tokens, err := st.ListPersonalTokens(ctx, name)
			if err != nil {
				return err
			}
			for _, t := range tokens {
				if err := st.DeletePersonalToken(ctx, t.ID); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
			}
			// The user's access tokens stop too, not only when they expire.
			if err := st.PutRevocation(ctx, revokeSubject(name, time.Now())); err != nil {
				return err
			}
			// The user's own access at upstream services goes with them.
			if reg, err := mcpregistry.Running(); err == nil {
				if _, err := reg.RemoveLocalUserConnections(name); err != nil {
					return err
				}
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		in, err := readUserInput(w, r)
		if err != nil {
			return err
		}
		if in.Name != "" && in.Name != name {
			return badUser("a user cannot be renamed; add the new name and remove the old one")
		}
		u, err := st.GetUser(ctx, name)
		if errors.Is(err, ErrNotFound) {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no stored user %q", name)}
		} else if err != nil {
			return err
		}
		oldGroups := slices.Clone(u.Groups)
		if err := applyUserInput(&u, in); err != nil {
			return err
		}
		if err := st.UpdateUser(ctx, u); err != nil {
			return err
		}
		// Tokens carrying the old groups stop; clients refresh into the new ones.
		if !slices.Equal(oldGroups, u.Groups) {
			if err := st.PutRevocation(ctx, revokeSubject(name, time.Now())); err != nil {
				return err
			}
		}
		return writeAdminJSON(w, http.StatusOK, view(u))
	}
	allow := "GET, POST"
	if hasName {
		allow = "PUT, DELETE"
	}
	w.Header().Set("Allow", allow)
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s is not allowed here (%s)", r.Method, allow)}
}

// tokenInput is the body of POST /mcp_oauth/tokens.
type tokenInput struct {
	User     string `json:"user"`
	Name     string `json:"name"`
	Lifetime string `json:"lifetime"` // a duration such as 720h or 30d; default 30d
}

// tokenView is a personal token as the API lists it: never the secret.
type tokenView struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Token is the bearer token itself, in the answer that mints it only.
	Token string `json:"token,omitempty"`
}

func handlePersonalTokens(w http.ResponseWriter, r *http.Request) error {
	st, err := runningUserStore()
	if err != nil {
		return err
	}
	id, hasID := strings.CutPrefix(r.URL.Path, "/mcp_oauth/tokens/")
	ctx := r.Context()
	switch {
	case !hasID && r.Method == http.MethodGet:
		user := r.URL.Query().Get("user")
		if user != "" && !userNamePattern.MatchString(user) {
			return badUser(fmt.Sprintf("%q is not a user name", user))
		}
		tokens, err := st.ListPersonalTokens(ctx, user)
		if err != nil {
			return err
		}
		out := make([]tokenView, 0, len(tokens))
		for _, t := range tokens {
			out = append(out, tokenView{ID: t.ID, User: t.User, Name: t.Name, Created: t.Created, Expires: t.Expires})
		}
		return writeAdminJSON(w, http.StatusOK, out)
	case !hasID && r.Method == http.MethodPost:
		var in tokenInput
		if err := readAdminJSON(w, r, &in); err != nil {
			return err
		}
		if !userNamePattern.MatchString(in.User) {
			return badUser(fmt.Sprintf("user %q is not a user name", in.User))
		}
		if len(in.Name) > 128 || strings.ContainsAny(in.Name, "\x00\r\n") {
			return badUser("name must be at most 128 bytes on one line")
		}
		lifetime := 30 * 24 * time.Hour
		if in.Lifetime != "" {
			d, err := caddy.ParseDuration(in.Lifetime)
			if err != nil || d <= 0 || d > maxPersonalTokenLifetime {
				return badUser(fmt.Sprintf("lifetime %q must be a positive duration of at most %s (the server honours at most its personal_token_max_lifetime)", in.Lifetime, maxPersonalTokenLifetime))
			}
			lifetime = d
		}
		token, t := newPersonalToken(in.User, in.Name, lifetime, time.Now().UTC())
		if err := st.CreatePersonalToken(ctx, t); err != nil {
			return err
		}
		return writeAdminJSON(w, http.StatusCreated, tokenView{ID: t.ID, User: t.User, Name: t.Name, Created: t.Created, Expires: t.Expires, Token: token})
	case hasID && r.Method == http.MethodDelete:
		if err := st.DeletePersonalToken(ctx, id); errors.Is(err, ErrNotFound) {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no personal token %q", id)}
		} else if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	allow := "GET, POST"
	if hasID {
		allow = "DELETE"
	}
	w.Header().Set("Allow", allow)
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s is not allowed here (%s)", r.Method, allow)}
}

// runningUserStore is the running config's user store: the mcp_registry store.
func runningUserStore() (Store, error) {
	reg, err := mcpregistry.Running()
	if err != nil {
		return nil, err
	}
	db, err := reg.CollectionStore()
	if err != nil {
		return nil, err
	}
	return newRegistryStore(db), nil
}

func readUserInput(w http.ResponseWriter, r *http.Request) (*userInput, error) {
	var in userInput
	return &in, readAdminJSON(w, r, &in)
}

// readAdminJSON decodes one bounded JSON object with no unknown members into v.
func readAdminJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxUserBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("body larger than %d bytes", maxUserBody)}
		}
		return badUser("body: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return badUser("body: one JSON object expected")
	}
	return nil
}

// applyUserInput checks in and sets what it carries on u (hashing the password).
func applyUserInput(u *User, in *userInput) error {
	if !userNamePattern.MatchString(u.Name) {
		return badUser(fmt.Sprintf("name %q must be 1-64 of letters, digits, '.', '_', '@', '-', starting with a letter or digit", u.Name))
	}
	if in.Groups != nil {
		groups := *in.Groups
		if len(groups) > maxUserGroups {
			return badUser(fmt.Sprintf("at most %d groups", maxUserGroups))
		}
		for _, g := range groups {
			if g == "" || len(g) > maxGroupBytes || strings.ContainsAny(g, "\x00\r\n") {
				return badUser(fmt.Sprintf("group %q must be 1-%d bytes on one line", g, maxGroupBytes))
			}
		}
		u.Groups = groups
	}
	if in.Password != nil {
		p := *in.Password
		if len(p) < minPasswordBytes || len(p) > maxPasswordBytes {
			return badUser(fmt.Sprintf("password must be %d-%d bytes", minPasswordBytes, maxPasswordBytes))
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.DefaultCost)
		if err != nil {
			return err
		}
		u.PasswordHash = string(hash)
	}
	return nil
}

func view(u User) userView {
	g := u.Groups
	if g == nil {
		g = []string{}
	}
	return userView{Name: u.Name, Groups: g, Provider: u.Provider, SignedIn: u.SignedIn}
}

func badUser(msg string) error {
	return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New(msg)}
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guard
var _ caddy.AdminRouter = UsersAdmin{}
