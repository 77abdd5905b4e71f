// Package e2e runs the real caddy binary, built from ./cmd/caddy with the caddymcp
// plugin, in front of real MCP servers (go-sdk's conformance everything-server, the
// npm server-everything in its streamable HTTP and legacy SSE modes) and drives it
// with real clients: the go-sdk client, raw HTTP, and the MCP conformance suite.
//
// The components come from scripts/test-deps.sh (see internal/testenv); a missing
// component fails the tests rather than skipping them. Under go test -short nothing is
// built or started and every test skips.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// caddyBin is the caddy binary under test, built once by TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() {
		// The inner loop builds no caddy; every test skips in startCaddy or testenv.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "caddymcp-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	caddyBin = filepath.Join(dir, "caddy")

	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go tool is needed to build caddy:", err)
		return 1
	}
	args := []string{"build", "-o", caddyBin}
	if raceEnabled {
		// The race detector in the caddy process reports races in the gateway;
		// startCaddy fails the test that saw one.
		args = append(args, "-race")
	}
	args = append(args, "./cmd/caddy")
	cmd := exec.Command(goTool, args...)
	cmd.Dir = testenv.RepoRoot()
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %v: %v\n%s", args, err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("e2e: built %s (race=%v) in %v\n", caddyBin, raceEnabled, time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}
