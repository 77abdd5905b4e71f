package mcpregistry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// A per-user OAuth server that answers the registry's check with 401 and a Bearer
// challenge is up and needs each user's sign-in (auth_required), never down; its tools
// are not discovered, and no connected user's token is used for the check. A 401
// without a challenge, or a 5xx, is down.
func TestHealthOfPerUserOAuthServer(t *testing.T) {
	as := newFakeAS(t)
	var mu sync.Mutex
	status, challenge := http.StatusUnauthorized, `Bearer resource_metadata="x"`
	var sawAuthorization []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		sawAuthorization = append(sawAuthorization, r.Header.Get("Authorization"))
		if challenge != "" {
			w.Header().Set("WWW-Authenticate", challenge)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(up.Close)
	app, _, _ := loadOAuthConfig(t, up.URL+"/mcp", true, map[string]any{"authorization_server": as.srv.URL})
	defer app.LocalIssuers().SetSignIn(testIssuer, fakeSignIn{})()
	// Alice is connected: her token must not be used by the check.
	f, err := app.TakeConnectFlow("saas", startFlow(t, app, "saas", "alice", "n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := app.FinishConnect(context.Background(), f, "code", as.srv.URL); err != nil {
		t.Fatal(err)
	}
	check := func() model.ServerHealth {
		t.Helper()
		h, err := app.RefreshNow(context.Background(), "saas")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := check()
	if h.Status != model.HealthAuthRequired || h.Tools != nil || h.LastError != "" || h.ConsecutiveFailures != 0 {
		t.Fatalf("401 with a Bearer challenge: %+v; want auth_required, tools unknown", h)
	}
	mu.Lock()
	for _, a := range sawAuthorization {
		if a != "" {
			t.Errorf("the check sent Authorization %q", a)
		}
	}
	status, challenge = http.StatusUnauthorized, ""
	mu.Unlock()
	if h := check(); h.Status != model.HealthUnhealthy {
		t.Fatalf("401 without a challenge: %+v; want unhealthy", h)
	}
	mu.Lock()
	status = http.StatusBadGateway
	mu.Unlock()
	if h := check(); h.Status != model.HealthUnhealthy || h.ConsecutiveFailures != 2 {
		t.Fatalf("502: %+v; want unhealthy", h)
	}
}
