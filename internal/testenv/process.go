package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a starter waits for a server to accept connections.
	readyTimeout = 20 * time.Second
	// killTimeout bounds how long Kill waits for the process to be reaped.
	killTimeout = 10 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// outputLimit is how many bytes of output are kept per run of a process.
	outputLimit = 256 << 10
	// startAttempts is how many free ports a starter tries when one is taken in the meantime.
	startAttempts = 3
)

// Process is a server started by this package. Its exported fields describe where it
// listens; they stay the same across Restart. Its methods are safe for concurrent use,
// except Restart, which (like any t.Fatal caller) must run on the test's goroutine.
type Process struct {
	Name    string // what was started, e.g. "everything-server (stateful)"
	Port    int    // TCP port on 127.0.0.1
	Addr    string // "127.0.0.1:PORT"
	BaseURL string // "http://127.0.0.1:PORT"
	// URL is the endpoint a client connects to: the streamable HTTP MCP endpoint
	// (BaseURL+"/mcp"), or for the legacy SSE transport the SSE endpoint (BaseURL+"/sse").
	URL string
	// MessageURL is the legacy SSE transport's POST endpoint (BaseURL+"/message"; the
	// server announces it, with ?sessionId=…, in its "endpoint" event). Empty otherwise.
	MessageURL string

	t    testing.TB
	spec procSpec

	mu   sync.Mutex
	runs []*run // every incarnation, the last one current
}

// procSpec says how to start (and restart) a process on a given port.
type procSpec struct {
	name  string
	path  string
	args  func(port int) []string
	env   func(port int) []string // added to os.Environ()
	dir   string
	ready string // if set, a line of output that must appear before the port is dialled
	// inUse are output fragments meaning the port was taken; the starter retries
	// with another port.
	inUse []string
}

// run is one incarnation of a Process.
type run struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // cmd.Wait's result, valid after done

	mu     sync.Mutex
	killed bool // set before this package signals it
}

func (r *run) markKilled() {
	r.mu.Lock()
	r.killed = true
	r.mu.Unlock()
}

// status describes how the run ended, or that it is still running.
func (r *run) status() string {
	select {
	case <-r.done:
	default:
		return "running"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	how := "exited by itself"
	if r.killed {
		how = "stopped by testenv"
	}
	if r.err == nil {
		return how + ", exit status 0"
	}
	return how + ", " + r.err.Error()
}

var errAddrInUse = errors.New("address already in use")

// startProcess starts spec on a free port, retrying on a port race, waits until it
// accepts TCP connections on 127.0.0.1, and registers its cleanup. It fails the test
// if the process cannot be started, and skips it under go test -short.
func startProcess(t testing.TB, spec procSpec) *Process {
	t.Helper()
	SkipIfShort(t)
	p := &Process{Name: spec.name, t: t, spec: spec}
	t.Cleanup(func() {
		status := p.statuses() // before Kill, so an unexpected exit shows as such
		p.Kill()
		if t.Failed() {
			t.Logf("testenv: %s (%s) output:\n%s", p.Name, status, p.Output())
		}
	})
	var err error
	for attempt := 0; attempt < startAttempts; attempt++ {
		p.setPort(FreePort(t))
		if err = p.start(); !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: starting %s: %v\noutput:\n%s", p.Name, err, p.Output())
	}
	return p
}

func (p *Process) setPort(port int) {
	p.Port = port
	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.BaseURL = "http://" + p.Addr
}

// start launches one incarnation on p.Port and waits until it is ready.
func (p *Process) start() error {
	cmd := exec.Command(p.spec.path, p.spec.args(p.Port)...)
	cmd.Dir = p.spec.dir
	cmd.Env = os.Environ()
	if p.spec.env != nil {
		cmd.Env = append(cmd.Env, p.spec.env(p.Port)...)
	}
	r := &run{cmd: cmd, out: &tailBuffer{limit: outputLimit}, done: make(chan struct{})}
	cmd.Stdout = r.out
	cmd.Stderr = r.out
	cmd.Stdin = nil
	cmd.WaitDelay = 2 * time.Second
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	p.runs = append(p.runs, r)
	p.mu.Unlock()
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-r.done:
			out := r.out.String()
			for _, s := range p.spec.inUse {
				if strings.Contains(out, s) {
					return fmt.Errorf("port %d: %w", p.Port, errAddrInUse)
				}
			}
			return fmt.Errorf("exited before accepting connections on %s: %s", p.Addr, r.status())
		default:
		}
		if p.spec.ready == "" || strings.Contains(r.out.String(), p.spec.ready) {
			// The listener must be the child's own, not another process that won a
			// race for the port (where /proc can tell), and must accept connections.
			owned, supported := ownsListener(cmd.Process.Pid, p.Port)
			if owned || !supported {
				c, err := net.DialTimeout("tcp", p.Addr, 250*time.Millisecond)
				if err == nil {
					c.Close()
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			p.kill(r)
			return fmt.Errorf("not accepting connections on %s after %v", p.Addr, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Process) current() *run {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.runs) == 0 {
		return nil
	}
	return p.runs[len(p.runs)-1]
}

// kill sends SIGKILL to r's process group and waits (bounded) until it is reaped.
func (p *Process) kill(r *run) {
	if r == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	r.markKilled()
	killGroup(r.cmd)
	select {
	case <-r.done:
	case <-time.After(killTimeout):
		p.t.Logf("testenv: %s (pid %d) not reaped %v after SIGKILL", p.Name, r.cmd.Process.Pid, killTimeout)
	}
}

// Kill kills the process and everything in its process group at once (SIGKILL) and
// waits until it has exited. It is idempotent; the test's cleanup calls it too.
// Use it to simulate an upstream crash mid-test.
func (p *Process) Kill() { p.kill(p.current()) }

// Stop asks the process to exit (SIGTERM to its process group), and kills it if it
// has not exited within 5 s.
func (p *Process) Stop() {
	r := p.current()
	if r == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	r.markKilled()
	termGroup(r.cmd)
	select {
	case <-r.done:
	case <-time.After(stopGrace):
		p.kill(r)
	}
}

// Restart kills the process if it is still running and starts it again on the same
// port, waiting until it accepts connections. It fails the test if it cannot.
func (p *Process) Restart() {
	p.t.Helper()
	p.Kill()
	var err error
	// The old listener is closed once the process is reaped; a short retry covers
	// a kernel that is slow to release it.
	for attempt := 0; attempt < startAttempts; attempt++ {
		if err = p.start(); !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("testenv: restarting %s: %v\noutput:\n%s", p.Name, err, p.Output())
	}
}

// Running reports whether the current incarnation has not exited.
func (p *Process) Running() bool {
	r := p.current()
	if r == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Done is closed when the current incarnation exits.
func (p *Process) Done() <-chan struct{} {
	if r := p.current(); r != nil {
		return r.done
	}
	c := make(chan struct{})
	close(c)
	return c
}

// Pid is the process id of the current incarnation (also its process-group id).
func (p *Process) Pid() int {
	if r := p.current(); r != nil && r.cmd.Process != nil {
		return r.cmd.Process.Pid
	}
	return 0
}

// statuses describes each incarnation: "pid 123: stopped by testenv, signal: killed; …".
func (p *Process) statuses() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s []string
	for _, r := range p.runs {
		s = append(s, fmt.Sprintf("pid %d: %s", r.cmd.Process.Pid, r.status()))
	}
	return strings.Join(s, "; ")
}

// Output returns the combined stdout and stderr of every incarnation so far (the last
// 256 KiB of each), separated by a marker line per restart.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for i, r := range p.runs {
		if i > 0 {
			fmt.Fprintf(&b, "--- restart %d (pid %d) ---\n", i, r.cmd.Process.Pid)
		}
		b.WriteString(r.out.String())
	}
	return b.String()
}

// tailBuffer is a goroutine-safe writer that keeps the last limit bytes written.
type tailBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	limit   int
	dropped int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.limit; over > 0 {
		b.buf.Next(over)
		b.dropped += int64(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("[… %d bytes dropped …]\n%s", b.dropped, b.buf.String())
	}
	return b.buf.String()
}
