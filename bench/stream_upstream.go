package bench

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// StreamUpstreamEnv, set in a bench binary's environment to a directory holding
// cert.pem and key.pem, makes the binary serve only the SSE stream endpoint, over
// HTTP/1.1 and over TLS with HTTP/2 (RunStreamUpstreamIfAsked). The HTTP/2 memory
// measurement runs its upstream so, in a process of its own: behind the gateway the
// upstream serves HTTP/1.1, directly HTTP/2, and the two cost different amounts per
// stream, so an upstream in the measured process would bias the difference.
const StreamUpstreamEnv = "CADDYMCP_BENCH_STREAM_UPSTREAM"

// RunStreamUpstreamIfAsked serves the stream upstream and exits, when the environment
// asks for it; otherwise it returns at once. Call it first in main (or TestMain).
func RunStreamUpstreamIfAsked() {
	dir := os.Getenv(StreamUpstreamEnv)
	if dir == "" {
		return
	}
	if err := serveStreamUpstream(dir); err != nil {
		fmt.Fprintln(os.Stderr, "stream upstream:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveStreamUpstream listens on two loopback ports, prints "READY <h1 addr> <h2 addr>"
// and serves until its standard input closes (its parent ended).
func serveStreamUpstream(dir string) error {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", holdStream)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	secure, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	quiet := log.New(io.Discard, "", 0)
	go (&http.Server{Handler: mux, ErrorLog: quiet}).Serve(plain)
	go (&http.Server{Handler: mux, ErrorLog: quiet, TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}}}).ServeTLS(secure, "", "")
	fmt.Printf("READY %s %s\n", plain.Addr(), secure.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// holdStream answers a GET with an SSE priming event and holds the stream open until
// the client goes away.
func holdStream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "id: 0\ndata:\n\n")
	http.NewResponseController(w).Flush()
	<-r.Context().Done()
}

// streamUpstreamProcess is a running stream upstream in a child process.
type streamUpstreamProcess struct {
	cmd       *exec.Cmd
	stdin     io.Closer
	plain     string // host:port of its HTTP/1.1 listener
	secure    string // host:port of its TLS (HTTP/2) listener
	exited    chan struct{}
	waitError error
}

// startStreamUpstream runs this binary again as the stream upstream, with cert.
func startStreamUpstream(dir string, cert *selfSigned) (*streamUpstreamProcess, error) {
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), cert.certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), cert.keyPEM, 0o600); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &streamUpstreamProcess{cmd: exec.Command(self), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), StreamUpstreamEnv+"="+dir)
	p.cmd.Stderr = os.Stderr
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = stdin
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.waitError = p.cmd.Wait(); close(p.exited) }()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "READY" {
			p.close()
			return nil, fmt.Errorf("bench: the stream upstream process said %q", line)
		}
		p.plain, p.secure = f[1], f[2]
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("bench: the stream upstream process exited: %v", p.waitError)
	case <-time.After(30 * time.Second):
		p.close()
		return nil, errors.New("bench: the stream upstream process did not start within 30s")
	}
}

// close ends the child: its standard input closes, and it is killed if it lingers.
func (p *streamUpstreamProcess) close() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
