package bench

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Run with, for example:
//
//	go test -run '^$' -bench . -benchmem ./bench
//	go test -run '^$' -bench . -benchmem ./bench -args -upstream gosdk
//	go test -run '^$' -bench 'ToolsCall' -benchmem ./bench -args -auth-fresh
//
// mcp_gateway_auth sends one bearer token per client goroutine (the validated-token cache
// answers all but its first call); with -auth-fresh, mcp_gateway_auth_fresh sends a token
// per request from a pool larger than the cache (every call validates a signature).
//
// Every benchmark shares one in-process Caddy and upstream (see Start). The clients,
// Caddy and the upstream all run in the test process, so allocs/op counts all three:
// compare targets with each other rather than reading any one number alone.

var (
	upstreamKind = flag.String("upstream", UpstreamStatic, "upstream kind: static or gosdk")
	authFresh    = flag.Bool("auth-fresh", false, "add the mcp_gateway_auth_fresh target (a new token per request)")
)

// concurrency is the number of simultaneous clients of BenchmarkToolsCall.
const concurrency = 16

var (
	envOnce sync.Once
	env     *Env
	envErr  error
)

func getEnv(b testing.TB) *Env {
	b.Helper()
	envOnce.Do(func() {
		var opt Options
		if *authFresh {
			opt.AuthFresh = AuthFreshPool
		}
		env, envErr = StartWith(*upstreamKind, opt)
	})
	if envErr != nil {
		b.Fatal(envErr)
	}
	return env
}

// TestAuthTarget checks that mcp_gateway_auth really authenticates and authorizes: no
// token or a token of another audience is refused, the benchmark call with the client's
// token passes, a tool outside the policy is refused.
func TestAuthTarget(t *testing.T) {
	e := getEnv(t)
	at := e.Target(GatewayAuth)
	c := NewClient(1)
	defer c.CloseIdleConnections()
	var buf []byte
	if err := e.CallAs(c, at, 3, &buf); err != nil {
		t.Fatalf("with a token: %v", err)
	}
	do := func(h http.Header, body string) int {
		req, err := http.NewRequest(http.MethodPost, at.CallURL.String(), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do(callHeader.Clone(), string(ToolsCallBody)); code != http.StatusUnauthorized {
		t.Errorf("no token: HTTP %d, want 401", code)
	}
	other, err := e.issuer.token("https://elsewhere.example/mcp", "x")
	if err != nil {
		t.Fatal(err)
	}
	if code := do(authHeader(other), string(ToolsCallBody)); code != http.StatusUnauthorized {
		t.Errorf("token for another audience: HTTP %d, want 401", code)
	}
	denied := strings.Replace(string(ToolsCallBody), `"name":"echo"`, `"name":"delete"`, 1)
	if code := do(at.Header(3).Clone(), denied); code != http.StatusForbidden {
		t.Errorf("tool outside the policy: HTTP %d, want 403", code)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		env.Close()
	}
	os.Exit(code)
}

// BenchmarkToolsCall: 16 clients calling at once, each waiting for its answer before
// sending the next request. ns/op is wall time per call across all clients (the inverse
// of throughput); req/s is the same as a rate.
func BenchmarkToolsCall(b *testing.B) {
	e := getEnv(b)
	procs := runtime.GOMAXPROCS(0)
	for _, t := range e.Targets {
		b.Run(t.Name, func(b *testing.B) {
			c := NewClient(concurrency)
			defer c.CloseIdleConnections()
			var failed atomic.Int64
			var firstErr atomic.Value
			b.SetParallelism((concurrency + procs - 1) / procs) // goroutines = parallelism × GOMAXPROCS
			b.ReportAllocs()
			var workers atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := int(workers.Add(1) - 1) // this goroutine's token on mcp_gateway_auth
				buf := make([]byte, 0, 4096)
				for pb.Next() {
					if err := e.CallAs(c, t, w, &buf); err != nil {
						if failed.Add(1) == 1 {
							firstErr.Store(err)
						}
					}
				}
			})
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%s: %d of %d calls failed; first: %v", t.Name, n, b.N, firstErr.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkToolsCallSerial: one client, one request at a time; ns/op is the latency.
func BenchmarkToolsCallSerial(b *testing.B) {
	e := getEnv(b)
	for _, t := range e.Targets {
		b.Run(t.Name, func(b *testing.B) {
			c := NewClient(1)
			defer c.CloseIdleConnections()
			buf := make([]byte, 0, 4096)
			if err := e.Call(c, t, &buf); err != nil { // connect outside the timer
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := e.Call(c, t, &buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGatewayOverhead calls Caddy's HTTP server (route, handler, upstream round
// trip) in-process, with no client socket and no client: the request is handed to
// caddyhttp.Server.ServeHTTP and the response written to a recorder. Only the upstream
// leg uses the network. The difference between the two sub-benchmarks is what
// mcp_gateway costs over reverse_proxy, with less noise than the end-to-end numbers.
func BenchmarkGatewayOverhead(b *testing.B) {
	e := getEnv(b)
	for _, name := range []string{ReverseProxy, Gateway, GatewayAuth} {
		b.Run(name, func(b *testing.B) {
			srv, err := e.HTTPServer(name)
			if err != nil {
				b.Fatal(err)
			}
			t := e.Target(name)
			call := func() *httptest.ResponseRecorder {
				r := httptest.NewRequest(http.MethodPost, t.CallURL.String(), bytes.NewReader(ToolsCallBody))
				r.Header = t.Header(0).Clone()
				r.RemoteAddr = "127.0.0.1:40000"
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, r)
				return w
			}
			if w := call(); w.Code != http.StatusOK || w.Body.Len() != e.Response {
				b.Fatalf("%s in-process: HTTP %d, %d bytes: %.300q", name, w.Code, w.Body.Len(), w.Body.Bytes())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if w := call(); w.Code != http.StatusOK {
					b.Fatalf("HTTP %d: %.300q", w.Code, w.Body.Bytes())
				}
			}
		})
	}
}
