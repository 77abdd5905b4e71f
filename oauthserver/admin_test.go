package oauthserver

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"
)

// The users admin API on Caddy's admin endpoint: users are added, changed and removed
// in the registry's store, their passwords only ever stored as bcrypt hashes and never
// returned; bad input is a 4xx naming the problem and writes nothing.
func TestUsersAdminAPI(t *testing.T) {
	admin := startUsersAdmin(t)
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const password = "correct horse battery"
	if code, body := do("POST", "/mcp_oauth/users", `{"name":"alice","password":"`+password+`","groups":["eng"]}`); code != 201 ||
		strings.Contains(body, "password") || strings.Contains(body, "$2") || !strings.Contains(body, `"eng"`) {
		t.Fatalf("add alice: %d %s", code, body)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/mcp_oauth/users", `{"name":"alice","password":"another long one"}`, 409},
		{"POST", "/mcp_oauth/users", `{"name":"bob","password":"short"}`, 400},
		{"POST", "/mcp_oauth/users", `{"name":"bob"}`, 400},
		{"POST", "/mcp_oauth/users", `{"name":"bob\n","password":"long enough pass"}`, 400},
		{"POST", "/mcp_oauth/users", `{"name":"../bob","password":"long enough pass"}`, 400},
		{"POST", "/mcp_oauth/users", `{"name":"bob","password":"long enough pass","admin":true}`, 400},
		{"POST", "/mcp_oauth/users", `{"name":"bob","password":"long enough pass","groups":["a\nb"]}`, 400},
		{"POST", "/mcp_oauth/users", `{"name":"bob","password":"` + strings.Repeat("p", 73) + `"}`, 400},
		{"POST", "/mcp_oauth/users", `{"name":"bob","password":"` + strings.Repeat("p", 20<<10) + `"}`, 413},
		{"PUT", "/mcp_oauth/users/alice", `{"name":"mallory"}`, 400},
		{"PUT", "/mcp_oauth/users/nobody", `{"groups":["x"]}`, 404},
		{"DELETE", "/mcp_oauth/users/nobody", ``, 404},
		{"GET", "/mcp_oauth/users/alice", ``, 405},
		{"PATCH", "/mcp_oauth/users", ``, 405},
	} {
		if code, body := do(tc.method, tc.path, tc.body); code != tc.status {
			t.Errorf("%s %s %.60s: %d %s, want %d", tc.method, tc.path, tc.body, code, body, tc.status)
		}
	}
	if code, body := do("GET", "/mcp_oauth/users", ""); code != 200 || body != `[{"name":"alice","groups":["eng"]}]`+"\n" {
		t.Errorf("list: %d %s", code, body)
	}

	st, err := runningUserStore()
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.GetUser(context.Background(), "alice")
	if err != nil || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		t.Fatalf("stored alice: %+v %v", u, err)
	}
	if code, body := do("PUT", "/mcp_oauth/users/alice", `{"groups":["eng","ops"],"password":"a new long password"}`); code != 200 || !strings.Contains(body, `"ops"`) {
		t.Fatalf("change alice: %d %s", code, body)
	}
	u, _ = st.GetUser(context.Background(), "alice")
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("a new long password")) != nil || len(u.Groups) != 2 {
		t.Fatalf("changed alice: %+v", u)
	}
	// The groups changed: the tokens carrying the old ones are revoked.
	subjectRevoked := func() time.Time {
		list, _ := st.ListRevocations(context.Background())
		for _, r := range list {
			if r.Key == "sub:alice" {
				return r.Before
			}
		}
		return time.Time{}
	}
	changed := subjectRevoked()
	if changed.IsZero() {
		t.Fatal("changing alice's groups revoked none of her tokens")
	}
	if code, _ := do("DELETE", "/mcp_oauth/users/alice", ""); code != 204 {
		t.Fatalf("remove alice: %d", code)
	}
	if _, err := st.GetUser(context.Background(), "alice"); err == nil {
		t.Fatal("alice still stored")
	}
	if removed := subjectRevoked(); !removed.After(changed) {
		t.Errorf("removing alice did not revoke her later tokens (revoked before %v, then %v)", changed, removed)
	}
}

// startUsersAdmin runs a config with an admin endpoint and the mcp_registry app, and
// returns the admin address.
func startUsersAdmin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	cfg, _ := json.Marshal(map[string]any{
		"admin": map[string]any{"listen": admin, "config": map[string]any{"persist": false}},
		"apps": map[string]any{"mcp_registry": map[string]any{
			"storage": map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
			"health":  map[string]any{"disabled": true},
		}},
	})
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		off, _ := json.Marshal(map[string]any{"admin": map[string]any{"disabled": true, "config": map[string]any{"persist": false}}})
		caddy.Load(off, true)
		caddy.Stop()
	})
	return admin
}

// caddy mcp-user against a running admin endpoint: add with a generated password
// (printed once, and the one stored), set, list, remove; errors come back readable.
func TestUserCommand(t *testing.T) {
	admin := startUsersAdmin(t)
	send := func(method, uri string, body io.Reader) (*http.Response, error) {
		req, err := http.NewRequest(method, "http://"+admin+uri, body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		return http.DefaultClient.Do(req)
	}
	var out strings.Builder
	if err := (userOp{action: "add", name: "alice", groups: splitGroups("eng, platform")}).run(send, &out); err != nil {
		t.Fatal(err)
	}
	_, pw, ok := strings.Cut(strings.TrimSpace(out.String()), "password (shown once): ")
	st, err := runningUserStore()
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.GetUser(context.Background(), "alice")
	if !ok || len(pw) < 20 || err != nil || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pw)) != nil {
		t.Fatalf("add printed %q; stored %+v %v", out.String(), u, err)
	}
	if err := (userOp{action: "add", name: "alice"}).run(send, io.Discard); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("adding alice twice: %v", err)
	}
	if err := (userOp{action: "set", name: "alice"}).run(send, io.Discard); err == nil {
		t.Error("set with nothing to change succeeded")
	}
	if err := (userOp{action: "set", name: "alice", groups: splitGroups("ops")}).run(send, io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := (userOp{action: "list"}).run(send, &out); err != nil || out.String() != "alice\tops\n" {
		t.Fatalf("list: %q %v", out.String(), err)
	}
	out.Reset()
	if err := (userOp{action: "token", name: "alice", lifetime: "2h"}).run(send, &out); err != nil || !strings.Contains(out.String(), personalTokenPrefix) {
		t.Fatalf("token: %q %v", out.String(), err)
	}
	tokenID := strings.Fields(out.String())[1]
	out.Reset()
	if err := (userOp{action: "tokens", name: "alice"}).run(send, &out); err != nil || !strings.HasPrefix(out.String(), tokenID+"\talice") || strings.Contains(out.String(), personalTokenPrefix) {
		t.Fatalf("tokens: %q %v", out.String(), err)
	}
	if err := (userOp{action: "revoke", name: tokenID}).run(send, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := (userOp{action: "token", name: "alice", lifetime: "forever"}).run(send, io.Discard); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a token with a bad lifetime: %v", err)
	}
	if err := (userOp{action: "remove", name: "alice"}).run(send, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := (userOp{action: "remove", name: "alice"}).run(send, io.Discard); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("removing alice twice: %v", err)
	}
	if err := (userOp{action: "rename", name: "x"}).run(send, io.Discard); err == nil {
		t.Error("unknown action accepted")
	}
}
