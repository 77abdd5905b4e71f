package oauthserver

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
)

// A fresh installation gets its first user once: with a random password logged once,
// or the configured one (logged never); a later start, or a config with users of its
// own, creates nobody.
func TestFirstUser(t *testing.T) {
	st := NewMemoryStore()
	start := func(f *FirstUserConfig, users []UserConfig) *observer.ObservedLogs {
		t.Helper()
		core, logs := observer.New(zap.DebugLevel)
		s := &Server{Issuer: "http://127.0.0.1:1/oauth", FirstUser: f, Users: users}
		sealer, _ := NewAESGCMSealer(make([]byte, 32))
		if err := s.provision(context.Background(), zap.New(core), st, sealer, nil); err != nil {
			t.Fatal(err)
		}
		return logs
	}
	logs := start(&FirstUserConfig{Groups: []string{"admins"}}, nil)
	created := logs.FilterMessageSnippet("created the first user").All()
	if len(created) != 1 {
		t.Fatalf("first start logged %d creations, want 1", len(created))
	}
	password, _ := created[0].ContextMap()["password"].(string)
	u, err := st.GetUser(context.Background(), "admin")
	if err != nil || len(u.Groups) != 1 || u.Groups[0] != "admins" || password == "" {
		t.Fatalf("first user %+v (%v), password %q", u, err, password)
	}
	if !checkPassword(u, password) {
		t.Error("the logged password does not sign the first user in")
	}
	if logs := start(&FirstUserConfig{Groups: []string{"admins"}}, nil); logs.FilterMessageSnippet("created").Len() != 0 {
		t.Error("a second start created the first user again")
	}

	// The configured password is used and never logged.
	st = NewMemoryStore()
	t.Setenv("TEST_FIRST_PASSWORD", "chosen by the operator")
	logs = start(&FirstUserConfig{Name: "root", Password: "{env.TEST_FIRST_PASSWORD}"}, nil)
	u, err = st.GetUser(context.Background(), "root")
	if err != nil || !checkPassword(u, "chosen by the operator") {
		t.Fatalf("root: %+v %v, want the configured password", u, err)
	}
	for _, e := range logs.All() {
		if e.ContextMap()["password"] != nil {
			t.Errorf("configured password logged in %q", e.Message)
		}
	}

	// Users in the config: no first user.
	st = NewMemoryStore()
	start(&FirstUserConfig{}, []UserConfig{{Name: "alice", PasswordHash: testHashes()}})
	if users, _ := st.ListUsers(context.Background()); len(users) != 0 {
		t.Errorf("stored users %v, want none when the config has users", users)
	}
}

func checkPassword(u User, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) == nil
}

// The first user signs in on the sign-in page with the logged password.
func TestFirstUserSignsIn(t *testing.T) {
	var password string
	as := newTestAS(t, func(s *Server) {
		s.Users = nil
		s.FirstUser = &FirstUserConfig{Groups: []string{"admins"}}
	}, nil)
	for _, e := range as.logs.FilterMessageSnippet("created the first user").All() {
		password, _ = e.ContextMap()["password"].(string)
	}
	c := browser(t)
	resp, _ := c.Get(as.SignInURL("/oauth/account"))
	body := readBody(t, resp)
	resp = postForm(t, c, as.Issuer+"/login", url.Values{"csrf": {pageCSRF(t, body)}, "username": {"admin"}, "password": {password}})
	if resp.Body.Close(); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin sign-in with the logged password: %d", resp.StatusCode)
	}
}
