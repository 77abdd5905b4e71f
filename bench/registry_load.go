package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// Out-of-process registry load: the real caddy binary (./cmd/caddy) runs as its own
// process serving a generated registry through mcp_registry_api, and this process
// drives it over loopback HTTP, so the measurement does not share a Go runtime (its
// scheduler, GC and GOMAXPROCS) with the load generator. They still share the
// machine's CPUs.

// BuildCaddy builds ./cmd/caddy of this module into dir and returns the binary's path.
func BuildCaddy(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("bench: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("bench: not inside the caddymcp module (run from its checkout)")
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: go build ./cmd/caddy: %w\n%s", err, b)
	}
	return bin, nil
}

// RegistryProcess is a caddy process serving a generated registry.
type RegistryProcess struct {
	Servers, Tools int
	// URL is the v0.1 API's base (GET URL+"/v0.1/servers"); AdminURL Caddy's admin API.
	URL, AdminURL string
	// Import is how long the admin import of the generated store took.
	Import time.Duration
	// ExportBytes is the size of the imported export document.
	ExportBytes int
	// Settle is how long caddy stayed busy after the import (background work).
	Settle time.Duration

	cmd     *exec.Cmd
	dir     string
	exited  chan struct{}
	cursors []string // cursors[i] starts the page after server i
}

// registryProcessConfig is the JSON config of a RegistryProcess: admin on adminAddr
// (for the import and /debug/pprof), the registry's store in dir, health checks off,
// the v0.1 API on addr.
func registryProcessConfig(dir, addr, adminAddr string) []byte {
	cfg := map[string]any{
		"admin":   map[string]any{"listen": adminAddr, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "caddy")},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage":                map[string]any{"path": filepath.Join(dir, "registry.db")},
				"health":                 map[string]any{"disabled": true},
				"disable_builtin_server": true,
			},
			"http": map[string]any{"servers": map[string]any{"registry": map[string]any{
				"listen": []string{addr},
				"routes": []any{map[string]any{"handle": []any{map[string]any{
					"handler": "mcp_registry_api", "namespace": RegistryNamespace,
					"public_url": "http://" + addr,
				}}}},
				"automatic_https": map[string]any{"disable": true},
			}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// StartRegistryProcess starts bin (a caddy binary with this module) on a fresh store,
// imports a generated registry of servers × tools through the admin API
// (POST /mcp_registry/restore?mode=replace) and checks that it is listed. env is added
// to the process's environment (e.g. GOMAXPROCS=1). Close stops it.
func StartRegistryProcess(bin string, servers, tools int, env ...string) (*RegistryProcess, error) {
	dir, err := os.MkdirTemp("", "caddymcp-registry-load-")
	if err != nil {
		return nil, err
	}
	addr, adminAddr := freeAddr(), freeAddr()
	if addr == "" || adminAddr == "" {
		return nil, errors.New("bench: no free loopback port")
	}
	p := &RegistryProcess{Servers: servers, Tools: tools, URL: "http://" + addr, AdminURL: "http://" + adminAddr, dir: dir, exited: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	cfgPath := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(cfgPath, registryProcessConfig(dir, addr, adminAddr), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "run", "--config", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	dieWithParent(p.cmd)
	p.cmd.Env = append(append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir), env...)
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.exited) }()

	c := NewRegistryClient(4)
	defer c.CloseIdleConnections()
	if err := p.waitReady(c, 30*time.Second); err != nil {
		return nil, err
	}

	var raw bytes.Buffer
	if err := json.NewEncoder(&raw).Encode(RegistryExport(servers, tools)); err != nil {
		return nil, err
	}
	p.ExportBytes = raw.Len()
	if int64(raw.Len()) > store.MaxBackupBytes {
		return nil, fmt.Errorf("bench: registry export is %d bytes, above the import limit %d", raw.Len(), store.MaxBackupBytes)
	}
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, p.AdminURL+"/mcp_registry/restore?mode=replace", &raw)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: admin import: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: admin import: HTTP %d: %.500s", resp.StatusCode, body)
	}
	p.Import = time.Since(start)
	// Work the import started in the background (e.g. building the search index) would
	// otherwise run during the measurement.
	if p.Settle, err = p.waitIdle(2 * time.Minute); err != nil {
		return nil, err
	}

	p.cursors = make([]string, servers)
	for i := range servers {
		p.cursors[i] = ListCursor(i)
	}
	// The last page must hold the last generated servers: the whole registry is listed.
	if servers > 0 {
		var page struct {
			Servers []json.RawMessage `json:"servers"`
		}
		u := p.URL + "/v0.1/servers?limit=1"
		if servers > 1 {
			u += "&cursor=" + p.cursors[servers-2]
		}
		if err := getJSON(c, u, &page); err != nil {
			return nil, err
		}
		if len(page.Servers) != 1 {
			return nil, fmt.Errorf("bench: after the import, the page after server %d holds %d servers, want 1", servers-2, len(page.Servers))
		}
	}
	ok = true
	return p, nil
}

// waitReady waits until the admin API and the v0.1 API answer.
func (p *RegistryProcess) waitReady(c *http.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			log, _ := os.ReadFile(filepath.Join(p.dir, "caddy.log"))
			return fmt.Errorf("bench: caddy exited during start-up:\n%s", log)
		default:
		}
		resp, err := c.Get(p.URL + "/v0.1/servers?limit=1")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: caddy did not answer within %v (last error: %v)", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitIdle waits until caddy uses less than 5% of a CPU over half a second.
func (p *RegistryProcess) waitIdle(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	prev, err := p.CPUTime()
	if err != nil {
		return 0, err
	}
	for time.Since(start) < timeout {
		time.Sleep(500 * time.Millisecond)
		cur, err := p.CPUTime()
		if err != nil {
			return 0, err
		}
		if cur-prev < 25*time.Millisecond {
			return time.Since(start), nil
		}
		prev = cur
	}
	return 0, fmt.Errorf("bench: caddy still busy %v after the import", timeout)
}

func getJSON(c *http.Client, u string, v any) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %.300s", u, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// PID is the caddy process's id.
func (p *RegistryProcess) PID() int { return p.cmd.Process.Pid }

// CPUTime is the CPU time (user + system) the caddy process has used so far.
func (p *RegistryProcess) CPUTime() (time.Duration, error) {
	return procCPUTime(p.PID())
}

// procCPUTime reads utime+stime of pid from /proc (Linux).
func procCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which is in parentheses and may hold spaces).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: parsing /proc/%d/stat", pid)
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// machineCPUTime is the busy time of all CPUs (Linux /proc/stat: user, nice, system,
// irq, softirq, steal), 0 when unknown.
func machineCPUTime() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0
		}
		busy += v
	}
	const clkTck = 100
	return time.Duration(busy) * time.Second / clkTck
}

// selfCPUTime is the CPU time this process has used so far.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Close stops caddy and removes its store.
func (p *RegistryProcess) Close() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	_ = os.RemoveAll(p.dir)
}

// ListLoadResult is what a ListLoad measured.
type ListLoadResult struct {
	Clients  int
	Limit    int
	Offered  float64         // requests a second offered (0: closed loop)
	Lat      []time.Duration // successful requests, sorted
	Bytes    int64           // response bodies of the successful requests
	Errors   int64
	FirstErr error
	Elapsed  time.Duration
	// ServerCPU and ClientCPU are the CPU time the caddy process and this process used
	// during the measurement (zero when unknown); MachineCPU all the machine's CPUs
	// (from /proc/stat), so MachineCPU - ServerCPU - ClientCPU is other processes'.
	ServerCPU, ClientCPU, MachineCPU time.Duration
}

// Rate is successful requests per second.
func (r *ListLoadResult) Rate() float64 { return float64(len(r.Lat)) / r.Elapsed.Seconds() }

// Pct is the q-quantile (0..1) of the latencies, 0 without samples.
func (r *ListLoadResult) Pct(q float64) time.Duration {
	if len(r.Lat) == 0 {
		return 0
	}
	return r.Lat[int(q*float64(len(r.Lat)-1)+0.5)]
}

// Max is the largest latency.
func (r *ListLoadResult) Max() time.Duration { return r.Pct(1) }

// CPUPerRequest is (server, client) CPU time per successful request.
func (r *ListLoadResult) CPUPerRequest() (server, client time.Duration) {
	n := time.Duration(max(1, len(r.Lat)))
	return r.ServerCPU / n, r.ClientCPU / n
}

// ListLoad runs clients closed-loop clients (each sends its next request as soon as
// the previous answer is read; keep-alive connections) for warmup unmeasured and then
// d measured, each GETting /v0.1/servers pages starting at a random cursor (one in
// servers+1 the first page) of limit (0: the API's default, no limit parameter).
// With raw, each client is a minimal HTTP/1.1 client on its own connection (a few µs
// of CPU a request) instead of net/http's (a few tens), so that the load generator
// takes less of the CPUs it shares with caddy.
//
// With rate > 0 the clients are paced instead (open loop): together they send rate
// requests a second, each client on its own schedule (every clients/rate, with a
// random phase), and a request's latency is measured from the time it was due, so a
// request delayed by the previous one's answer counts that delay (no coordinated
// omission).
func (p *RegistryProcess) ListLoad(clients int, warmup, d time.Duration, limit int, raw bool, rate float64) *ListLoadResult {
	c := NewRegistryClient(clients)
	c.Transport.(*http.Transport).DisableCompression = true
	defer c.CloseIdleConnections()
	host := strings.TrimPrefix(p.URL, "http://")
	base := "/v0.1/servers"
	if limit > 0 {
		base += "?limit=" + strconv.Itoa(limit)
	}
	sep := "?"
	if limit > 0 {
		sep = "&"
	}
	urls := make([]string, len(p.cursors)+1)
	urls[0] = base
	for i, cur := range p.cursors {
		urls[i+1] = base + sep + "cursor=" + cur
	}

	res := &ListLoadResult{Clients: clients, Limit: limit, Offered: rate}
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(clients) / rate * float64(time.Second))
	}
	var (
		measuring, stop atomic.Bool
		errs            atomic.Int64
		nbytes          atomic.Int64
		firstErr        atomic.Pointer[error]
		wg              sync.WaitGroup
		mu              sync.Mutex
	)
	lats := make([][]time.Duration, clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			buf := bytes.NewBuffer(make([]byte, 0, 64<<10))
			lat := make([]time.Duration, 0, 1<<14)
			rc := &rawClient{addr: host}
			defer rc.close()
			var due time.Time
			if interval > 0 {
				due = time.Now().Add(time.Duration(rng.Int64N(int64(interval))))
			}
			for !stop.Load() {
				u := urls[rng.IntN(len(urls))]
				t0 := time.Now()
				if interval > 0 {
					if wait := due.Sub(t0); wait > 0 {
						time.Sleep(wait)
					}
					t0 = due
					due = due.Add(interval)
				}
				var n int
				var err error
				if raw {
					n, err = rc.get(u, buf)
				} else {
					n, err = fetchPage(c, p.URL+u, buf)
				}
				el := time.Since(t0)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					if errs.Add(1) == 1 {
						firstErr.Store(&err)
					}
					continue
				}
				nbytes.Add(int64(n))
				lat = append(lat, el)
			}
			mu.Lock()
			lats[w] = lat
			mu.Unlock()
		}()
	}
	time.Sleep(warmup)
	srv0, _ := p.CPUTime()
	cli0 := selfCPUTime()
	all0 := machineCPUTime()
	start := time.Now()
	measuring.Store(true)
	time.Sleep(d)
	measuring.Store(false)
	res.Elapsed = time.Since(start)
	srv1, err := p.CPUTime()
	if err == nil {
		res.ServerCPU = srv1 - srv0
	}
	res.ClientCPU = selfCPUTime() - cli0
	if all0 > 0 {
		res.MachineCPU = machineCPUTime() - all0
	}
	stop.Store(true)
	wg.Wait()
	for _, l := range lats {
		res.Lat = append(res.Lat, l...)
	}
	slices.Sort(res.Lat)
	res.Errors, res.Bytes = errs.Load(), nbytes.Load()
	if e := firstErr.Load(); e != nil {
		res.FirstErr = *e
	}
	return res
}

// rawClient is a minimal HTTP/1.1 keep-alive client of one connection: GET only,
// bodies framed by Content-Length or chunked.
type rawClient struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// get GETs path and reads the body into buf (reset), returning its length.
func (c *rawClient) get(path string, buf *bytes.Buffer) (int, error) {
	n, err := c.do(path, buf)
	if err != nil {
		c.close()
	}
	return n, err
}

func (c *rawClient) do(path string, buf *bytes.Buffer) (int, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 64<<10)
		} else {
			c.br.Reset(conn)
		}
	}
	c.req = append(append(append(append(c.req[:0], "GET "...), path...), " HTTP/1.1\r\nHost: "...), c.addr...)
	c.req = append(c.req, "\r\nUser-Agent: mcpbench\r\n\r\n"...)
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	status := 0
	if len(line) >= 12 && bytes.HasPrefix(line, []byte("HTTP/1.")) {
		status, _ = strconv.Atoi(string(line[9:12]))
	}
	length, chunked, closing := -1, false, false
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		k, v, _ := bytes.Cut(line, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			closing = bytes.EqualFold(v, []byte("close"))
		}
	}
	buf.Reset()
	switch {
	case chunked:
		for {
			line, err = c.br.ReadSlice('\n')
			if err != nil {
				return 0, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("bad chunk size %q", line)
			}
			if size == 0 {
				if _, err = c.br.ReadSlice('\n'); err != nil { // no trailers
					return 0, err
				}
				break
			}
			if _, err := io.CopyN(buf, c.br, size); err != nil {
				return 0, err
			}
			if _, err := c.br.Discard(2); err != nil {
				return 0, err
			}
		}
	case length >= 0:
		if _, err := io.CopyN(buf, c.br, int64(length)); err != nil {
			return 0, err
		}
	default:
		return 0, errors.New("response without Content-Length or chunked body")
	}
	if closing {
		c.close()
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET %s: HTTP %d: %.300s", path, status, buf.Bytes())
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte(`{"servers":[`)) {
		return 0, fmt.Errorf("GET %s: not a server list: %.300s", path, buf.Bytes())
	}
	return buf.Len(), nil
}

// fetchPage GETs u and reads the body into buf (reset), returning its length.
func fetchPage(c *http.Client, u string, buf *bytes.Buffer) (int, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: HTTP %d: %.300s", u, resp.StatusCode, buf.Bytes())
	}
	if buf.Len() < 2 || !bytes.HasPrefix(buf.Bytes(), []byte(`{"servers":[`)) {
		return 0, fmt.Errorf("GET %s: not a server list: %.300s", u, buf.Bytes())
	}
	return buf.Len(), nil
}
