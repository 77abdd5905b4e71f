package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultConformanceTimeout bounds one RunConformance call. Either full suite takes
// 1–3 s against the everything-server directly; a scenario that hangs is cut by the
// CLI itself after 30 s (0.2.0-alpha.12 --timeout default).
const DefaultConformanceTimeout = 3 * time.Minute

// ConformanceOptions configures RunConformanceWith.
type ConformanceOptions struct {
	Version string // ConformanceStable or ConformanceNext
	URL     string // the MCP endpoint under test
	// Args are appended after "server --url URL -o DIR", e.g.
	// {"--scenario", "tools-list"}, {"--requirements", "2026-07-28"} (Next only,
	// not combinable with --scenario/--spec-version/--suite), {"--spec-version",
	// "2026-07-28", "--scenario", "tools-list"}, {"--suite", "all"}.
	Args []string
	// Timeout bounds the run (DefaultConformanceTimeout if zero; never past the
	// test's deadline). On timeout the CLI's process group is killed and the test fails.
	Timeout time.Duration
}

// ConformanceCheck is one entry of a scenario's checks.json.
type ConformanceCheck struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	Status       string          `json:"status"` // SUCCESS, FAILURE, WARNING, INFO, SKIPPED
	ErrorMessage string          `json:"errorMessage,omitempty"`
	Details      json.RawMessage `json:"details,omitempty"`
}

// ConformanceScenario is the outcome of one scenario.
type ConformanceScenario struct {
	Name     string
	Passed   int // checks with status SUCCESS
	Failed   int // checks with status FAILURE
	Warnings int // checks with status WARNING
	// Scored is false for scenarios a --requirements run reports but does not score
	// (extension, pending, added-after-release); their failures do not change the
	// exit code.
	Scored bool
	// NotScoredReason is the CLI's reason when !Scored, e.g. "extension".
	NotScoredReason string
	Checks          []ConformanceCheck // from checks.json; empty if the scenario crashed
}

// ConformanceResult is what RunConformance found.
type ConformanceResult struct {
	Version  string
	URL      string
	Args     []string // CLI arguments after the script path
	ExitCode int      // the CLI's exit status: 0 when every scored check passed
	Duration time.Duration

	// Passed and Failed count checks (SUCCESS / FAILURE) over every scenario run,
	// scored or not: the CLI's "Total: N passed, M failed".
	Passed, Failed, Warnings int
	// Skipped is set when the CLI ran nothing because the single --scenario does not
	// apply at the requested --spec-version (it says "SKIPPED: …" and exits 0).
	Skipped bool

	Scenarios []ConformanceScenario // in the order run
	// FailedScenarios names every scenario with a failed check (scored or not).
	FailedScenarios []string
	// FailedChecks has one "scenario/check-id: error message" per failed check.
	FailedChecks []string

	Output string // the CLI's stdout and stderr, ANSI colour escapes removed
}

// Scenario returns the named scenario's result, or nil if it did not run.
func (r *ConformanceResult) Scenario(name string) *ConformanceScenario {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// ScoredFailedScenarios names the failed scenarios that count toward conformance
// (all failed scenarios when not run with --requirements).
func (r *ConformanceResult) ScoredFailedScenarios() []string {
	var out []string
	for _, s := range r.Scenarios {
		if s.Failed > 0 && s.Scored {
			out = append(out, s.Name)
		}
	}
	return out
}

// Summary is a one-line description for logs.
func (r *ConformanceResult) Summary() string {
	s := fmt.Sprintf("conformance %s %s: %d scenarios, %d checks passed, %d failed, %d warnings, exit %d, %v",
		r.Version, strings.Join(r.Args, " "), len(r.Scenarios), r.Passed, r.Failed, r.Warnings, r.ExitCode,
		r.Duration.Round(time.Millisecond))
	if r.Skipped {
		s += " (skipped: scenario not applicable at that spec version)"
	}
	return s
}

// RunConformance runs `conformance server --url url extraArgs...` with the pinned CLI
// version (ConformanceStable or ConformanceNext) under Node 22 and parses the outcome.
// A non-zero exit is reported in the result, not as a test failure; the test fails
// only when the CLI cannot be run, times out, or reports nothing. It logs a summary
// and the failed checks; log r.Output for the full report.
//
//	r := testenv.RunConformance(t, testenv.ConformanceStable, url)
//	r := testenv.RunConformance(t, testenv.ConformanceNext, url, "--requirements", "2026-07-28")
//	r := testenv.RunConformance(t, testenv.ConformanceStable, url, "--scenario", "dns-rebinding-protection")
//
// The dns-rebinding-protection scenario fails both its checks unless url's host is
// localhost, 127.0.0.1 or [::1].
func RunConformance(t testing.TB, version, url string, extraArgs ...string) ConformanceResult {
	t.Helper()
	return RunConformanceWith(t, ConformanceOptions{Version: version, URL: url, Args: extraArgs})
}

// RunConformanceWith is RunConformance with options.
func RunConformanceWith(t testing.TB, o ConformanceOptions) ConformanceResult {
	t.Helper()
	RequireTestDeps(t)
	script, err := ConformanceCLI(o.Version)
	if err != nil {
		t.Fatal(err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultConformanceTimeout
	}
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := tt.Deadline(); ok {
			if left := time.Until(d) - 10*time.Second; left < timeout {
				timeout = max(left, time.Second)
			}
		}
	}

	work := t.TempDir() // the CLI's working directory; results go to work/results
	outDir := filepath.Join(work, "results")
	args := append([]string{"server", "--url", o.URL, "-o", outDir}, o.Args...)
	res := ConformanceResult{Version: o.Version, URL: o.URL, Args: args}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, NodeBin(), append([]string{script}, args...)...)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0", "NODE_NO_WARNINGS=1")
	out := &tailBuffer{limit: 4 << 20}
	cmd.Stdout, cmd.Stderr = out, out
	setProcAttr(cmd)
	cmd.Cancel = func() error { killGroup(cmd); return nil }
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	runErr := cmd.Run()
	res.Duration = time.Since(start)
	res.Output = ansiEscape.ReplaceAllString(out.String(), "")
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("testenv: conformance %s %v timed out after %v; output:\n%s", o.Version, args, timeout, res.Output)
	case runErr == nil:
	case errors.As(runErr, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("testenv: running conformance %s: %v", o.Version, runErr)
	}

	if err := parseConformance(&res, outDir); err != nil {
		t.Fatalf("testenv: conformance %s %v: %v (exit %d); output:\n%s", o.Version, args, err, res.ExitCode, res.Output)
	}
	t.Log("testenv: " + res.Summary())
	var notScored []string
	for _, s := range res.Scenarios {
		if s.Failed == 0 {
			continue
		}
		if !s.Scored {
			notScored = append(notScored, fmt.Sprintf("%s (%s, %d failed)", s.Name, s.NotScoredReason, s.Failed))
			continue
		}
		for _, f := range res.FailedChecks {
			if strings.HasPrefix(f, s.Name+"/") {
				t.Log("testenv:   failed " + f)
			}
		}
	}
	if len(notScored) > 0 {
		t.Log("testenv:   failing but not scored: " + strings.Join(notScored, ", "))
	}
	return res
}

var (
	// The CLI colours single-scenario output with fixed escapes (NO_COLOR is ignored).
	ansiEscape    = regexp.MustCompile("\x1b\\[[0-9;]*m")
	summaryLine   = regexp.MustCompile(`^[✓✗] (\S+): (\d+) passed, (\d+) failed$`)
	totalLine     = regexp.MustCompile(`^Total: (\d+) passed, (\d+) failed$`)
	notScoredLine = regexp.MustCompile(`^\s+[✓✗] (\S+) \(([^)]+)\)$`)
	// Results directories are named server-<scenario>-<ISO time with ':' and '.' as '-'>.
	resultDir = regexp.MustCompile(`^server-(.+)-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)$`)
)

// parseConformance fills res from the CLI's stdout (the SUMMARY section, which is what
// decides the exit code) and the per-scenario checks.json files under outDir.
func parseConformance(res *ConformanceResult, outDir string) error {
	checks := map[string][]ConformanceCheck{}
	var dirOrder []string
	entries, _ := os.ReadDir(outDir)
	sort.Slice(entries, func(i, j int) bool { // by timestamp suffix = run order
		return dirTime(entries[i].Name()) < dirTime(entries[j].Name())
	})
	for _, e := range entries {
		m := resultDir.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(outDir, e.Name(), "checks.json"))
		if err != nil {
			continue
		}
		var cs []ConformanceCheck
		if err := json.Unmarshal(b, &cs); err != nil {
			return fmt.Errorf("%s/checks.json: %v", e.Name(), err)
		}
		if _, seen := checks[m[1]]; !seen {
			dirOrder = append(dirOrder, m[1])
		}
		checks[m[1]] = cs
	}

	var (
		names     []string
		inSummary bool
		haveTotal bool
		notScored = map[string]string{}
	)
	sc := bufio.NewScanner(strings.NewReader(res.Output))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == "=== SUMMARY ===":
			inSummary = true
		case strings.HasPrefix(line, "SKIPPED: scenario "):
			res.Skipped = true
		case inSummary && summaryLine.MatchString(line):
			names = append(names, summaryLine.FindStringSubmatch(line)[1])
		case inSummary && totalLine.MatchString(line):
			m := totalLine.FindStringSubmatch(line)
			res.Passed, _ = strconv.Atoi(m[1])
			res.Failed, _ = strconv.Atoi(m[2])
			haveTotal = true
		case haveTotal && notScoredLine.MatchString(line):
			m := notScoredLine.FindStringSubmatch(line)
			notScored[m[1]] = m[2]
		}
	}
	if !inSummary {
		// Single-scenario mode prints no summary: the scenarios are the results dirs.
		names = dirOrder
	}
	if len(names) == 0 && !res.Skipped {
		return errors.New("no scenario results (no SUMMARY in the output and no checks.json)")
	}

	passed, failed := 0, 0
	for _, name := range names {
		s := ConformanceScenario{Name: name, Scored: true, Checks: checks[name]}
		if reason, ok := notScored[name]; ok {
			s.Scored, s.NotScoredReason = false, reason
		}
		if len(s.Checks) == 0 && inSummary {
			// A scenario that threw has no checks.json; the CLI counts it as one failure.
			s.Checks = []ConformanceCheck{{ID: name, Name: name, Status: "FAILURE",
				ErrorMessage: "scenario crashed (see output: \"Failed to run scenario " + name + "\")"}}
		}
		for _, c := range s.Checks {
			switch c.Status {
			case "SUCCESS":
				s.Passed++
			case "FAILURE":
				s.Failed++
				msg := c.ErrorMessage
				if msg == "" {
					msg = c.Description
				}
				res.FailedChecks = append(res.FailedChecks, fmt.Sprintf("%s/%s: %s", name, c.ID, oneLine(msg, 300)))
			case "WARNING":
				s.Warnings++
			}
		}
		if s.Failed > 0 {
			res.FailedScenarios = append(res.FailedScenarios, name)
		}
		passed += s.Passed
		failed += s.Failed
		res.Warnings += s.Warnings
		res.Scenarios = append(res.Scenarios, s)
	}
	if !haveTotal {
		res.Passed, res.Failed = passed, failed
	} else if passed != res.Passed || failed != res.Failed {
		return fmt.Errorf("checks.json files count %d passed / %d failed, the CLI's summary says %d / %d",
			passed, failed, res.Passed, res.Failed)
	}
	return nil
}

// dirTime is the timestamp suffix of a results directory name, which sorts in run order.
func dirTime(name string) string {
	if m := resultDir.FindStringSubmatch(name); m != nil {
		return m[2]
	}
	return name
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
