package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// InspectorCLIVersion is the @modelcontextprotocol/inspector-cli release pinned in
// testdata/node/package.json.
const InspectorCLIVersion = "1.0.3"

// DefaultInspectorTimeout bounds one RunInspectorCLI call; a run against a local
// server takes well under a second.
const DefaultInspectorTimeout = time.Minute

// InspectorCLIDir is the installed @modelcontextprotocol/inspector-cli package.
func InspectorCLIDir() string {
	return filepath.Join(NodeDir(), "node_modules", "@modelcontextprotocol", "inspector-cli")
}

// InspectorCLIJS is the entry point of the package's mcp-inspector-cli binary.
func InspectorCLIJS() string { return filepath.Join(InspectorCLIDir(), "build", "cli.js") }

// InspectorResult is what one run of the Inspector CLI printed and how it exited.
type InspectorResult struct {
	Args     []string // the arguments after "cli.js --cli"
	Stdout   string   // the method's result as indented JSON when ExitCode is 0
	Stderr   string   // a deprecation banner, then the error message when ExitCode is 1
	ExitCode int
}

// RunInspectorCLI runs the MCP Inspector CLI in CLI mode under Node 22:
//
//	node …/inspector-cli/build/cli.js --cli URL --transport http \
//	    --header "Authorization: Bearer T" --method tools/list
//	… --method tools/call --tool-name echo --tool-arg message=hi
//
// A non-zero exit is reported in the result, not as a test failure; the test fails
// when the CLI is not installed at InspectorCLIVersion, cannot be started or times
// out. Under go test -short it skips the test.
func RunInspectorCLI(t testing.TB, args ...string) InspectorResult {
	t.Helper()
	RequireTestDeps(t)
	switch got, err := packageVersion(InspectorCLIDir()); {
	case err != nil:
		t.Fatalf("testenv: missing inspector-cli %s (%s)\n%s", InspectorCLIVersion, rel(InspectorCLIDir()), depsHint)
	case got != InspectorCLIVersion:
		t.Fatalf("testenv: %s is inspector-cli %s, want %s\n%s", rel(InspectorCLIDir()), got, InspectorCLIVersion, depsHint)
	}
	timeout := DefaultInspectorTimeout
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := tt.Deadline(); ok {
			if left := time.Until(d) - 10*time.Second; left < timeout {
				timeout = max(left, time.Second)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, NodeBin(), append([]string{InspectorCLIJS(), "--cli"}, args...)...)
	// cli.js starts build/index.js with whatever "node" is on PATH, which must be
	// Node 22 too; index.js reads its client identity from "../package.json" as
	// seen from the working directory, so it runs in build/.
	cmd.Dir = filepath.Dir(InspectorCLIJS())
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(NodeBin())+string(os.PathListSeparator)+os.Getenv("PATH"),
		"NO_COLOR=1", "NODE_NO_WARNINGS=1")
	stdout, stderr := &tailBuffer{limit: 4 << 20}, &tailBuffer{limit: 1 << 20}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	setProcAttr(cmd)
	cmd.Cancel = func() error { killGroup(cmd); return nil }
	cmd.WaitDelay = 5 * time.Second

	runErr := cmd.Run()
	res := InspectorResult{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("testenv: inspector-cli %s timed out after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, res.Stdout, res.Stderr)
	case runErr == nil:
	case errors.As(runErr, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("testenv: running inspector-cli: %v", runErr)
	}
	return res
}

// String describes the run for failure messages, with Authorization header values
// elided.
func (r InspectorResult) String() string {
	args := make([]string, len(r.Args))
	for i, a := range r.Args {
		if k, _, ok := strings.Cut(a, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Authorization") {
			a = k + ": …"
		}
		args[i] = a
	}
	return fmt.Sprintf("inspector-cli %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.ExitCode, r.Stdout, r.Stderr)
}
