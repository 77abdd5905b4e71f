package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Registry scale benchmarks (issue 4, item 10). Run them alone (each replaces the
// running Caddy config, so they stop the shared gateway environment first):
//
//	go test -run '^$' -bench Registry -benchtime 20000x ./bench
//	go test -run '^$' -bench Registry -benchtime 20000x ./bench -args -registry-servers 20000 -registry-tools 20
//
// Each reports p50/p99 latencies (list, search) or a rate (registrations) as custom
// metrics; ns/op is wall time per operation across all clients.

var (
	registryServers = flag.Int("registry-servers", RegistryServers, "servers in the registry benchmarks' store")
	registryTools   = flag.Int("registry-tools", RegistryTools, "tools per server in the registry benchmarks' store")
)

// registryClients is the number of concurrent clients of the list and search benchmarks.
const registryClients = 100

var (
	regMu  sync.Mutex
	regEnv *RegistryEnv
)

// releaseSharedEnv stops the gateway environment of the other benchmarks (caddy.Load
// replaces the one running config); getEnv starts a new one when needed.
func releaseSharedEnv() {
	if env != nil {
		env.Close()
	}
	env, envErr, envOnce = nil, nil, sync.Once{}
}

func getRegistry(b testing.TB, servers, tools int) *RegistryEnv {
	b.Helper()
	regMu.Lock()
	defer regMu.Unlock()
	if regEnv != nil && regEnv.Servers == servers && regEnv.Tools == tools {
		if _, err := regEnv.App(); err == nil {
			return regEnv
		}
	}
	if regEnv != nil {
		regEnv.Close()
		regEnv = nil
	}
	releaseSharedEnv()
	e, err := StartRegistry(servers, tools)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("registry: %d servers × %d tools generated and imported in %v", servers, tools, e.Generate.Round(time.Millisecond))
	regEnv = e
	return e
}

func closeRegistry() {
	regMu.Lock()
	defer regMu.Unlock()
	if regEnv != nil {
		regEnv.Close()
		regEnv = nil
	}
}

// runConcurrent runs b.N calls of op over clients goroutines and records each latency.
func runConcurrent(b *testing.B, clients int, op func(worker int, rng *rand.Rand) error) *Latencies {
	var lat Latencies
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(w, rng); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat.Add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	b.ReportMetric(float64(lat.Percentile(50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat.Percentile(99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	return &lat
}

// listPage fetches one v0.1 list page of limit 30 starting at a random cursor.
func listPage(c *http.Client, e *RegistryEnv, rng *rand.Rand) error {
	u := e.URL + "/v0.1/servers?limit=30"
	if i := rng.IntN(e.Servers + 1); i > 0 {
		u += "&cursor=" + ListCursor(i-1)
	}
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
	return nil
}

// BenchmarkRegistryListPage: 100 clients each GETting v0.1 list pages (limit 30, a
// random cursor) through Caddy over loopback HTTP (and one client alone, for the
// latency without queueing). Target p99 < 5 ms.
func BenchmarkRegistryListPage(b *testing.B) {
	e := getRegistry(b, *registryServers, *registryTools)
	c := NewRegistryClient(registryClients)
	defer c.CloseIdleConnections()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2 * registryClients { // warm the connections
		if err := listPage(c, e, rng); err != nil {
			b.Fatal(err)
		}
	}
	for _, clients := range []int{1, registryClients} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			runConcurrent(b, clients, func(_ int, rng *rand.Rand) error { return listPage(c, e, rng) })
		})
	}
}

// BenchmarkRegistrySearch: 100 goroutines calling App.Search (limit 10) with
// RegistryQueries at random. The index is built before the clock starts; its build
// time is reported as index-build-ms. Target p99 < 20 ms.
func BenchmarkRegistrySearch(b *testing.B) {
	e := getRegistry(b, *registryServers, *registryTools)
	app, err := e.App()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if hits := app.Search("warm up the index", 10); hits == nil {
		b.Fatal("nil hits")
	}
	if d := time.Since(t0); d > searchIndexBuild {
		searchIndexBuild = d // the first run of the benchmark builds the index
	}
	runConcurrent(b, registryClients, func(_ int, rng *rand.Rand) error {
		q := RegistryQueries[rng.IntN(len(RegistryQueries))]
		if len(app.Search(q, 10)) == 0 {
			return fmt.Errorf("no hits for %q", q)
		}
		return nil
	})
	b.ReportMetric(float64(searchIndexBuild.Milliseconds()), "index-build-ms") // after runConcurrent's ResetTimer
}

// searchIndexBuild is how long the first search of the registry took (building the index).
var searchIndexBuild time.Duration

// benchPut registers b.N new servers through App.Put from clients goroutines.
func benchPut(b *testing.B, clients int) {
	e := getRegistry(b, *registryServers, *registryTools)
	app, err := e.App()
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	base := time.Now().UnixNano()
	runConcurrent(b, clients, func(int, *rand.Rand) error {
		n := seq.Add(1)
		_, err := app.Put(context.Background(), &model.Server{
			Name:        fmt.Sprintf("put-%x-%d", base, n),
			Upstream:    fmt.Sprintf("http://127.0.0.1:9/put/%d/mcp", n),
			Description: "registered by BenchmarkRegistryPut",
			Tags:        []string{"bench"},
			Enabled:     true,
		}, 0)
		return err
	})
}

// BenchmarkRegistryPut: registrations through App.Put, one client at a time (serial)
// and 16 or 32 at once, as registrations arriving through an API would; req/s is
// registrations per second. Target ≥ 500/s. A lone Put is one bbolt read-write
// transaction committed with an fsync; concurrent Puts that queue behind a commit
// share the next one (Store.Batch).
func BenchmarkRegistryPut(b *testing.B) {
	b.Run("serial", func(b *testing.B) { benchPut(b, 1) })
	b.Run("clients=16", func(b *testing.B) { benchPut(b, 16) })
	b.Run("clients=32", func(b *testing.B) { benchPut(b, 32) })
}

// BenchmarkRegistryStartup: caddy.Load of a config whose store already holds the
// registry (Provision and Start of every app, the HTTP listener included), after
// stopping the running config. Target < 1 s.
func BenchmarkRegistryStartup(b *testing.B) {
	e := getRegistry(b, *registryServers, *registryTools)
	var lat Latencies
	for b.Loop() {
		d, err := e.Load()
		if err != nil {
			b.Fatal(err)
		}
		lat.Add(d)
		// Start returns before the search index is built (in the background, on both
		// cores); let that finish so it does not eat into the next start's measurement.
		if app, err := e.App(); err == nil {
			app.Search("warm", 1)
		}
	}
	app, err := e.App()
	if err != nil {
		b.Fatal(err)
	}
	if n := len(app.ListServers()); n < e.Servers {
		b.Fatalf("after the reload: %d servers, want at least %d", n, e.Servers)
	}
	b.ReportMetric(float64(lat.Percentile(50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat.Percentile(99).Microseconds())/1000, "max-ms")
}

// TestRegistryBench runs every registry measurement once on a small registry, so the
// benchmarks' code paths stay working under go test.
func TestRegistryBench(t *testing.T) {
	defer closeRegistry()
	e := getRegistry(t, 300, 5)
	c := NewRegistryClient(4)
	defer c.CloseIdleConnections()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		if err := listPage(c, e, rng); err != nil {
			t.Fatal(err)
		}
	}
	// A page from a cursor starts right after it.
	resp, err := c.Get(e.URL + "/v0.1/servers?limit=30&cursor=" + ListCursor(99))
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Servers []struct {
			Server struct{ Name string } `json:"server"`
		} `json:"servers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Servers) != 30 {
		t.Fatalf("page of %d servers, want 30", len(page.Servers))
	}
	app, err := e.App()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range RegistryQueries {
		if len(app.Search(q, 10)) == 0 {
			t.Errorf("no hits for %q", q)
		}
	}
	if _, err := app.Put(context.Background(), &model.Server{Name: "put-test", Upstream: "http://127.0.0.1:9/mcp", Enabled: true}, 0); err != nil {
		t.Fatal(err)
	}
	d, err := e.Load()
	if err != nil {
		t.Fatal(err)
	}
	if app, err = e.App(); err != nil {
		t.Fatal(err)
	}
	if n := len(app.ListServers()); n != 301 {
		t.Fatalf("after reload (%v): %d servers, want 301", d, n)
	}
	if len(app.Search("create a github issue", 10)) == 0 {
		t.Error("no hits after reload")
	}
}

func TestLatencies(t *testing.T) {
	var l Latencies
	if l.Percentile(99) != 0 {
		t.Fatal("empty recorder")
	}
	for i := 100; i >= 1; i-- {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	if p := l.Percentile(50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := l.Percentile(99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if p := l.Percentile(100); p != 100*time.Millisecond {
		t.Errorf("p100 = %v", p)
	}
}
