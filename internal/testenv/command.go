package testenv

import "testing"

// Command describes an arbitrary program to run as a managed Process: on a free
// 127.0.0.1 port, in its own process group, killed when the test ends, its output
// logged if the test fails, restartable on the same port.
type Command struct {
	// Name says what runs, for logs and failures, e.g. "caddy".
	Name string
	// Path is the executable.
	Path string
	// Args returns the arguments for a run on port. It is called again for every
	// attempt (a new port when the previous one was taken) and on Restart (same
	// port), on the test's goroutine, so it may prepare files and call t.Fatal.
	Args func(port int) []string
	// Env returns variables added to os.Environ() for a run on port (a later
	// duplicate wins). Optional.
	Env func(port int) []string
	// Dir is the working directory; default the test binary's.
	Dir string
	// Ready, if set, is a fragment of output that must appear before the port is
	// dialled; otherwise the process is ready once 127.0.0.1:port accepts.
	Ready string
	// InUse are output fragments meaning a port was taken; the starter then retries
	// with another port. Default: "address already in use".
	InUse []string
}

// StartCommand starts c on a free port and returns once it accepts TCP connections
// there (and, if c.Ready is set, has printed it). It fails the test if the command
// cannot be started, and skips it under go test -short. p.URL is p.BaseURL.
func StartCommand(t testing.TB, c Command) *Process {
	t.Helper()
	inUse := c.InUse
	if len(inUse) == 0 {
		inUse = []string{"address already in use"}
	}
	args := c.Args
	if args == nil {
		args = func(int) []string { return nil }
	}
	p := startProcess(t, procSpec{
		name:  c.Name,
		path:  c.Path,
		args:  args,
		env:   c.Env,
		dir:   c.Dir,
		ready: c.Ready,
		inUse: inUse,
	})
	p.URL = p.BaseURL
	return p
}
