package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// StartOIDCProvider runs testdata/oidc/provider.mjs (npm oidc-provider v9, a certified
// OpenID provider) with Node 22 on a free port and returns its issuer,
// http://127.0.0.1:PORT. env adds the script's settings (PROFILE, REDIRECT_URIS,
// LOGIN_REDIRECT_URIS, SERVICE_GROUPS); the script's header documents its clients,
// users and profiles.
func StartOIDCProvider(t testing.TB, env ...string) string {
	t.Helper()
	RequireTestDeps(t)
	pkg := filepath.Join(NodeDir(), "node_modules", "oidc-provider", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		t.Fatalf("missing test dependency oidc-provider (%v); run scripts/test-deps.sh", err)
	}
	script := filepath.Join(RepoRoot(), "testdata", "oidc", "provider.mjs")
	p := StartCommand(t, Command{
		Name:  "oidc-provider",
		Path:  NodeBin(),
		Dir:   NodeDir(),
		Args:  func(port int) []string { return []string{script, strconv.Itoa(port)} },
		Env:   func(int) []string { return env },
		Ready: "READY http://127.0.0.1:",
		InUse: []string{"EADDRINUSE"},
	})
	return p.BaseURL
}
