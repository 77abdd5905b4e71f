package testenv

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"testenv","version":"1"}}}`

func postInitialize(t *testing.T, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(initializeBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST initialize %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func assertGone(t *testing.T, pid int) {
	t.Helper()
	if processExists(pid) {
		t.Errorf("pid %d still exists after Kill", pid)
	}
}

func TestRepoRoot(t *testing.T) {
	root := RepoRoot()
	if !isModuleRoot(root) {
		t.Fatalf("RepoRoot() = %q has no %s go.mod", root, Module)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "test-deps.sh")); err != nil {
		t.Fatal(err)
	}
	RequireTestDeps(t)
}

// The stateful everything-server passes the whole 2025-11-25 suite of conformance
// 0.1.16; Kill and Restart work and leave nothing behind.
func TestEverythingServerStateful(t *testing.T) {
	t.Parallel()
	p := StartEverythingServer(t, true)
	if p.URL != p.BaseURL+"/mcp" || !strings.HasPrefix(p.BaseURL, "http://127.0.0.1:") {
		t.Fatalf("unexpected URLs %q %q", p.BaseURL, p.URL)
	}
	if resp := postInitialize(t, p.URL); resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: status %d, Mcp-Session-Id %q", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"))
	}

	r := RunConformance(t, ConformanceStable, p.URL)
	if r.ExitCode != 0 || r.Failed != 0 || r.Passed != 40 || len(r.Scenarios) != 30 {
		t.Errorf("want 30 scenarios, 40 passed, 0 failed, exit 0; got %s\n%s", r.Summary(), r.Output)
	}
	if s := r.Scenario("dns-rebinding-protection"); s == nil || s.Passed != 2 || len(s.Checks) != 2 {
		t.Errorf("dns-rebinding-protection: %+v", s)
	}

	pid := p.Pid()
	p.Kill()
	if p.Running() {
		t.Fatal("Running() after Kill")
	}
	assertGone(t, pid)
	if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Kill", p.Addr)
	}
	p.Restart()
	if p.Pid() == pid || !p.Running() {
		t.Fatalf("Restart: pid %d (was %d), running %v", p.Pid(), pid, p.Running())
	}
	r = RunConformance(t, ConformanceStable, p.URL, "--scenario", "server-initialize")
	if r.ExitCode != 0 || r.Passed != 1 || r.Failed != 0 || len(r.Scenarios) != 1 || r.Scenarios[0].Name != "server-initialize" {
		t.Errorf("after Restart: %s\n%s", r.Summary(), r.Output)
	}
}

// The stateless everything-server meets every scored 2026-07-28 requirement of
// conformance 0.2.0-alpha.12; only the not-scored tasks-* extension scenarios fail.
func TestEverythingServerStateless(t *testing.T) {
	t.Parallel()
	p := StartEverythingServer(t, false)
	r := RunConformance(t, ConformanceNext, p.URL, "--requirements", "2026-07-28")
	if r.ExitCode != 0 || len(r.ScoredFailedScenarios()) != 0 {
		t.Errorf("scored failures %v; %s", r.ScoredFailedScenarios(), r.Summary())
	}
	for _, name := range r.FailedScenarios {
		if s := r.Scenario(name); !strings.HasPrefix(name, "tasks-") || s.Scored || s.NotScoredReason != "extension" {
			t.Errorf("unexpected failing scenario %+v", s)
		}
	}
	if len(r.Scenarios) != 50 || r.Scenario("server-stateless") == nil || r.Scenario("server-stateless").Failed != 0 {
		t.Errorf("want 50 scenarios incl. a passing server-stateless; %s", r.Summary())
	}

	// A single scenario at a spec version.
	r = RunConformance(t, ConformanceNext, p.URL, "--spec-version", "2026-07-28", "--scenario", "tools-list")
	if r.ExitCode != 0 || r.Failed != 0 || r.Passed == 0 || !strings.Contains(r.Output, "SUCCESS") ||
		strings.Contains(r.Output, "\x1b[") {
		t.Errorf("tools-list: %s\n%q", r.Summary(), r.Output)
	}
	// A scenario that does not apply at that version is skipped, not failed.
	r = RunConformance(t, ConformanceNext, p.URL, "--spec-version", "2026-07-28", "--scenario", "server-initialize")
	if !r.Skipped || r.ExitCode != 0 || len(r.Scenarios) != 0 {
		t.Errorf("server-initialize at 2026-07-28: %s\n%s", r.Summary(), r.Output)
	}
}

// A URL that does not name a loopback host fails dns-rebinding-protection, and a
// failing run is reported, not fatal.
func TestConformanceFailureIsReported(t *testing.T) {
	t.Parallel()
	p := StartEverythingServer(t, true)
	url := strings.Replace(p.URL, "127.0.0.1", "127.0.0.2", 1) // loopback, but not a name the scenario accepts
	r := RunConformance(t, ConformanceStable, url, "--scenario", "dns-rebinding-protection")
	if r.ExitCode != 1 || r.Failed != 2 || !slices.Equal(r.FailedScenarios, []string{"dns-rebinding-protection"}) ||
		len(r.FailedChecks) != 2 || !strings.Contains(r.FailedChecks[0], "require a localhost server URL") {
		t.Errorf("got %s, failed checks %q", r.Summary(), r.FailedChecks)
	}
}

// A server whose port was taken by someone else is not mistaken for ready just
// because the port accepts connections.
func TestStartDetectsPortTaken(t *testing.T) {
	t.Parallel()
	RequireTestDeps(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := &Process{Name: "everything-server (port taken)", t: t, spec: procSpec{
		path:  EverythingServerBin(),
		args:  func(port int) []string { return []string{"-http=127.0.0.1:" + strconv.Itoa(port)} },
		dir:   t.TempDir(),
		inUse: []string{"address already in use"},
	}}
	p.setPort(l.Addr().(*net.TCPAddr).Port)
	defer p.Kill()
	if err := p.start(); !errors.Is(err, errAddrInUse) {
		t.Fatalf("start on a taken port: %v, want errAddrInUse; output:\n%s", err, p.Output())
	}
}

func TestServerEverythingNPMStreamableHTTP(t *testing.T) {
	t.Parallel()
	p := StartServerEverythingNPM(t, NPMStreamableHTTP)
	if p.URL != p.BaseURL+"/mcp" || p.MessageURL != "" {
		t.Fatalf("URLs %q %q", p.URL, p.MessageURL)
	}
	resp := postInitialize(t, p.URL)
	if resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: status %d, Mcp-Session-Id %q", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"))
	}
	pid := p.Pid()
	p.Stop()
	assertGone(t, pid)
}

// The Inspector CLI against the npm server-everything: a result is indented JSON on
// stdout with exit 0; a failure is a message on stderr with exit 1.
func TestInspectorCLI(t *testing.T) {
	t.Parallel()
	p := StartServerEverythingNPM(t, NPMStreamableHTTP)
	r := RunInspectorCLI(t, p.URL, "--transport", "http", "--header", "Authorization: Bearer not-checked",
		"--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=20", "b=22")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, `"text": "The sum of 20 and 22 is 42."`) {
		t.Errorf("tools/call get-sum: %s", r)
	}
	if strings.Contains(r.String(), "not-checked") {
		t.Errorf("String() shows the Authorization value: %s", r)
	}
	r = RunInspectorCLI(t, p.BaseURL+"/nowhere/mcp", "--method", "tools/list")
	if r.ExitCode != 1 || !strings.Contains(r.Stderr, "Failed to connect to MCP server") {
		t.Errorf("tools/list at a path with no server: %s", r)
	}
}

func TestServerEverythingNPMSSE(t *testing.T) {
	t.Parallel()
	p := StartServerEverythingNPM(t, NPMSSE)
	if p.URL != p.BaseURL+"/sse" || p.MessageURL != p.BaseURL+"/message" {
		t.Fatalf("URLs %q %q", p.URL, p.MessageURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /sse: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var event, data string
	for sc.Scan() && data == "" {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
		}
	}
	if event != "endpoint" || !strings.HasPrefix(data, "/message?sessionId=") {
		t.Fatalf("first SSE event %q data %q", event, data)
	}
}

func TestParseConformanceNotScored(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "checks.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("server-json-schema-2020-12-2026-11-28T17-20-42-380Z", `[{"id":"a","status":"SUCCESS"},{"id":"w","status":"WARNING"}]`)
	write("server-tasks-lifecycle-2026-11-28T17-20-42-713Z", `[{"id":"b","status":"SUCCESS"},{"id":"c","status":"FAILURE","errorMessage":"unknown tool \"greet\""}]`)
	res := ConformanceResult{Output: strings.Join([]string{
		"Running requirements 2026-07-28 (3 scenarios) against http://127.0.0.1:1/mcp",
		"Failed to run scenario caching: Error: boom",
		"", "", "=== SUMMARY ===",
		"✓ json-schema-2020-12: 1 passed, 0 failed",
		"✗ tasks-lifecycle: 1 passed, 1 failed",
		"✗ caching: 0 passed, 1 failed",
		"", "Total: 2 passed, 2 failed", "",
		"Not scored for 2026-07-28: 1 scenario(s) run, 1 failing. These do not affect conformance.",
		"  ✗ tasks-lifecycle (extension)",
	}, "\n")}
	if err := parseConformance(&res, dir); err != nil {
		t.Fatal(err)
	}
	if res.Passed != 2 || res.Failed != 2 || res.Warnings != 1 || len(res.Scenarios) != 3 {
		t.Fatalf("%+v", res)
	}
	if got := res.ScoredFailedScenarios(); !slices.Equal(got, []string{"caching"}) {
		t.Errorf("ScoredFailedScenarios = %q", got)
	}
	if s := res.Scenario("tasks-lifecycle"); s.Scored || s.NotScoredReason != "extension" {
		t.Errorf("tasks-lifecycle %+v", s)
	}
	want := []string{`tasks-lifecycle/c: unknown tool "greet"`, `caching/caching: scenario crashed (see output: "Failed to run scenario caching")`}
	if !slices.Equal(res.FailedChecks, want) {
		t.Errorf("FailedChecks = %q", res.FailedChecks)
	}
}

// Under go test -short every starter skips its test instead of starting (or failing
// to start) a process; without -short the same call fails the test, which the other
// tests of this package show.
func TestShortSkipsStarters(t *testing.T) {
	if !testing.Short() {
		t.Skip("checks the -short inner loop; run with go test -short")
	}
	missing := filepath.Join(t.TempDir(), "no-such-binary")
	for name, start := range map[string]func(t *testing.T){
		"StartCommand":    func(t *testing.T) { StartCommand(t, Command{Name: "missing", Path: missing}) },
		"RequireTestDeps": func(t *testing.T) { RequireTestDeps(t) },
		"RunConformance":  func(t *testing.T) { RunConformance(t, ConformanceStable, "http://127.0.0.1:9/mcp") },
		"RunInspectorCLI": func(t *testing.T) { RunInspectorCLI(t, "http://127.0.0.1:9/mcp", "--method", "tools/list") },
	} {
		var skipped bool
		t.Run(name, func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			start(t)
			t.Errorf("%s returned under -short; want the test skipped", name)
		})
		if !skipped {
			t.Errorf("%s did not skip under -short", name)
		}
	}
}
