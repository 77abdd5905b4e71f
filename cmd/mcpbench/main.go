// Command mcpbench measures a tools/call through mcp_gateway against plain reverse_proxy
// and against the upstream called directly, in the same run, with the same upstream, and
// the memory an open SSE stream costs through the gateway and through reverse_proxy.
//
//	go run ./cmd/mcpbench [-c 16] [-d 10s] [-rounds 5] [-upstream static|gosdk] [-sse 1000] [-phases load,serial,sse] [-auth-fresh]
//
// Everything runs in this one process on loopback: the clients, one Caddy (an
// mcp_gateway listener, the same gateway with an auth block, and a reverse_proxy
// listener), the upstream and the auth target's token issuer (see package bench). On
// mcp_gateway_auth each client sends its own bearer token on every request, as a real
// client does (so the gateway's validated-token cache answers); with -auth-fresh,
// mcp_gateway_auth_fresh sends a token the gateway has not seen recently on every request
// (a pre-signed pool larger than the cache: the uncached cost). Phases:
//
//  1. Load: -c clients, each sending its next request as soon as the previous answer is
//     read, against each target in turn. Each target gets -warmup unmeasured, then -d
//     measured split into -rounds segments; the segments of all the targets are
//     interleaved, the order rotating every round, so drift on the machine affects
//     all alike. Prints requests/s, latency percentiles and throughput relative to
//     reverse_proxy.
//  2. Serial: the same with one client, one request at a time; prints the median latency
//     and its difference to reverse_proxy's.
//  3. SSE memory: opens -sse GET streams (each held open by the upstream after its
//     priming event) directly, through the gateway and through reverse_proxy, and
//     reports the growth of HeapInuse+StackInuse (after GC) per stream. The process also
//     holds the clients and the upstream, so the direct measurement (client + upstream
//     share of a stream) is subtracted from each proxy's: the remainder is what the
//     proxy itself holds per stream.
//
// Phase registry-list (not run by default; registry.go) measures the registry's v0.1 list
// endpoint served by the real caddy binary as a separate process.
//
// It exits 1 if any request or stream fails, 2 if the run exceeds its time bound.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddymcp/caddymcp/bench"
)

func main() {
	bench.RunStreamUpstreamIfAsked()
	concurrency := flag.Int("c", 16, "concurrent clients in the load phase")
	duration := flag.Duration("d", 10*time.Second, "measured time per target in each phase")
	rounds := flag.Int("rounds", 5, "interleaved rounds the measured time is split into")
	warmup := flag.Duration("warmup", time.Second, "unmeasured warm-up per target before each phase")
	kind := flag.String("upstream", bench.UpstreamStatic, "upstream: static (fixed-cost, ~1 KiB result) or gosdk (go-sdk stateless server, echo tool)")
	sseN := flag.Int("sse", 1000, "SSE streams to hold open in the memory phase")
	phaseList := flag.String("phases", "load,serial,sse", "phases to run, comma-separated: load, serial, sse, registry-list (registry.go)")
	fresh := flag.Bool("auth-fresh", false, "add target mcp_gateway_auth_fresh: a new bearer token on every request (signs a pool of tokens at start)")
	flag.Parse()
	phases := map[string]bool{}
	for _, p := range strings.Split(*phaseList, ",") {
		switch p = strings.TrimSpace(p); p {
		case "load", "serial", "sse", "registry-list":
			phases[p] = true
		default:
			fatalf(1, "unknown phase %q (want load, serial, sse or registry-list)", p)
		}
	}
	if *concurrency < 1 || *rounds < 1 || *duration <= 0 || *sseN < 1 {
		fatalf(1, "bad flags: -c, -rounds and -sse must be at least 1, -d positive")
	}

	opt := bench.Options{StreamUpstreamProcess: phases["sse"]}
	targets := 4 // direct, reverse_proxy, mcp_gateway, mcp_gateway_auth
	if *fresh {
		opt.AuthFresh = bench.AuthFreshPool
		targets++
	}

	// Bound the whole run: the phases' own time plus generous slack.
	limit := 2 * time.Minute
	for _, p := range []string{"load", "serial"} {
		if phases[p] {
			limit += time.Duration(targets+1) * (*duration + *warmup)
		}
	}
	if phases["sse"] {
		limit += 4 * time.Minute
	}
	if phases["registry-list"] {
		limit += registryPhaseTime()
	}
	watchdog := time.AfterFunc(limit, func() { fatalf(2, "run exceeded its time bound of %v; aborting", limit) })
	defer watchdog.Stop()

	if phases["registry-list"] {
		// The registry runs in its own caddy process; the gateway phases need none of it.
		if failed := runRegistryList(); len(failed) > 0 {
			fatalf(1, "FAILED:\n  %s", strings.Join(failed, "\n  "))
		}
		delete(phases, "registry-list")
		if len(phases) == 0 {
			return
		}
	}

	start := time.Now()
	env, err := bench.StartWith(*kind, opt)
	if err != nil {
		fatalf(1, "%v", err)
	}
	if *fresh {
		fmt.Printf("(started in %v, including signing %d tokens for mcp_gateway_auth_fresh)\n", time.Since(start).Round(time.Millisecond), opt.AuthFresh)
	}
	failed := run(env, phases, *concurrency, *duration, *rounds, *warmup, *sseN)
	env.Close()
	if len(failed) > 0 {
		fatalf(1, "FAILED:\n  %s", strings.Join(failed, "\n  "))
	}
}

func run(env *bench.Env, phases map[string]bool, concurrency int, d time.Duration, rounds int, warmup time.Duration, sseN int) (failed []string) {
	fmt.Printf("mcpbench: %s, GOMAXPROCS %d, %d CPUs; clients, Caddy and upstream share this process\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("upstream %s; tools/call request body %d B, response body %d B\n", env.Kind, len(bench.ToolsCallBody), env.Response)
	for _, t := range env.Targets {
		stream := "-"
		if t.StreamURL != nil {
			stream = t.StreamURL.String()
		}
		fmt.Printf("  %-22s POST %s   GET %s\n", t.Name, t.CallURL, stream)
	}
	fmt.Println()

	if phases["load"] {
		res := load(env, concurrency, d, rounds, warmup)
		fmt.Printf("tools/call, %d concurrent clients, %v per target in %d interleaved rounds (+%v warm-up)\n", concurrency, d, rounds, warmup)
		printLoad(res)
		failed = append(failed, failures(res)...)
		if r := ratio(res, bench.Gateway); r > 0 {
			fmt.Printf("=> mcp_gateway throughput = %.1f%% of reverse_proxy (target >= 85%%)\n", 100*r)
		}
		if r := ratio(res, bench.GatewayAuth); r > 0 {
			fmt.Printf("=> mcp_gateway_auth throughput = %.1f%% of reverse_proxy (target >= 75%%)\n", 100*r)
		}
		if r := ratio(res, bench.GatewayFresh); r > 0 {
			fmt.Printf("=> mcp_gateway_auth_fresh (uncached tokens) throughput = %.1f%% of reverse_proxy\n", 100*r)
		}
		fmt.Println()
	}

	if phases["serial"] {
		res := load(env, 1, d, rounds, warmup)
		fmt.Printf("tools/call, 1 client (one request at a time), %v per target in %d interleaved rounds (+%v warm-up)\n", d, rounds, warmup)
		printSerial(res)
		failed = append(failed, failures(res)...)
		fmt.Println()
	}

	if phases["sse"] {
		if err := measureSSE(env, sseN); err != nil {
			failed = append(failed, "SSE memory: "+err.Error())
		}
	}
	return failed
}

// result is one target's measurements over a phase.
type result struct {
	name     string
	lat      []time.Duration // successful calls only
	errs     int64
	firstErr error
	elapsed  time.Duration
}

func (r *result) rate() float64 { return float64(len(r.lat)) / r.elapsed.Seconds() }

func (r *result) pct(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(q*float64(len(r.lat)-1)+0.5)]
}

func load(env *bench.Env, concurrency int, d time.Duration, rounds int, warmup time.Duration) []*result {
	n := len(env.Targets)
	res := make([]*result, n)
	clients := make([]*clientSet, n)
	for i, t := range env.Targets {
		res[i] = &result{name: t.Name}
		clients[i] = newClientSet(env, t, concurrency)
		defer clients[i].client.CloseIdleConnections()
	}
	for i := range env.Targets {
		clients[i].segment(warmup, nil)
	}
	seg := d / time.Duration(rounds)
	for r := range rounds {
		for k := range n {
			i := (r + k) % n
			clients[i].segment(seg, res[i])
		}
	}
	for i := range res {
		// Warm-up failures count too.
		res[i].errs += clients[i].warmErrs
		if res[i].firstErr == nil {
			res[i].firstErr = clients[i].warmErr
		}
		slices.Sort(res[i].lat)
	}
	return res
}

// clientSet is the clients of one target: one http.Client, concurrency workers.
type clientSet struct {
	env         *bench.Env
	target      bench.Target
	client      interface{ CloseIdleConnections() }
	call        func(worker int, buf *[]byte) error
	concurrency int
	bufs        [][]byte
	warmErrs    int64
	warmErr     error
}

func newClientSet(env *bench.Env, t bench.Target, concurrency int) *clientSet {
	c := bench.NewClient(concurrency)
	return &clientSet{
		env: env, target: t, client: c, concurrency: concurrency,
		call: func(w int, buf *[]byte) error { return env.CallAs(c, t, w, buf) },
		bufs: make([][]byte, concurrency),
	}
}

// segment runs the workers for d and adds what they measured to into (nil: discard).
func (cs *clientSet) segment(d time.Duration, into *result) {
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     atomic.Int64
		firstErr atomic.Value
	)
	lats := make([][]time.Duration, cs.concurrency)
	start := time.Now()
	for w := range cs.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for !stop.Load() {
				t0 := time.Now()
				err := cs.call(w, &cs.bufs[w])
				el := time.Since(t0)
				if err != nil {
					if errs.Add(1) == 1 {
						firstErr.Store(err)
					}
					continue
				}
				lat = append(lat, el)
			}
			mu.Lock()
			lats[w] = lat
			mu.Unlock()
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)

	var fe error
	if v := firstErr.Load(); v != nil {
		fe = v.(error)
	}
	if into == nil {
		cs.warmErrs += errs.Load()
		if cs.warmErr == nil {
			cs.warmErr = fe
		}
		return
	}
	into.elapsed += elapsed
	into.errs += errs.Load()
	if into.firstErr == nil {
		into.firstErr = fe
	}
	for _, l := range lats {
		into.lat = append(into.lat, l...)
	}
}

func find(res []*result, name string) *result {
	for _, r := range res {
		if r.name == name {
			return r
		}
	}
	return nil
}

func ratio(res []*result, name string) float64 {
	base, r := find(res, bench.ReverseProxy), find(res, name)
	if base == nil || r == nil || base.rate() == 0 {
		return 0
	}
	return r.rate() / base.rate()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }

func printLoad(res []*result) {
	fmt.Printf("  %-22s %9s %10s %9s %9s %9s %16s\n", "target", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "vs reverse_proxy")
	for _, r := range res {
		fmt.Printf("  %-22s %9d %10.0f %9s %9s %9s %15.1f%%\n", r.name, len(r.lat), r.rate(),
			ms(r.pct(0.50)), ms(r.pct(0.90)), ms(r.pct(0.99)), 100*ratio(res, r.name))
	}
}

func printSerial(res []*result) {
	base := find(res, bench.ReverseProxy)
	fmt.Printf("  %-22s %9s %10s %9s %9s %9s %20s\n", "target", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "p50 - rp p50 (ms)")
	for _, r := range res {
		diff := float64(r.pct(0.5)-base.pct(0.5)) / 1e6
		fmt.Printf("  %-22s %9d %10.0f %9s %9s %9s %+20.3f\n", r.name, len(r.lat), r.rate(),
			ms(r.pct(0.50)), ms(r.pct(0.90)), ms(r.pct(0.99)), diff)
	}
	if g := find(res, bench.Gateway); g != nil {
		fmt.Printf("=> mcp_gateway median latency = reverse_proxy's %+.3f ms (target <= +0.150 ms)\n",
			float64(g.pct(0.5)-base.pct(0.5))/1e6)
	}
	for _, name := range []string{bench.GatewayAuth, bench.GatewayFresh} {
		if g := find(res, name); g != nil {
			fmt.Printf("=> %s median latency = reverse_proxy's %+.3f ms (mcp_gateway's %+.3f ms)\n", name,
				float64(g.pct(0.5)-base.pct(0.5))/1e6, float64(g.pct(0.5)-find(res, bench.Gateway).pct(0.5))/1e6)
		}
	}
}

func failures(res []*result) (out []string) {
	for _, r := range res {
		if r.errs > 0 {
			out = append(out, fmt.Sprintf("target %s: %d of %d requests failed; first error: %v",
				r.name, r.errs, r.errs+int64(len(r.lat)), r.firstErr))
		}
	}
	return out
}

func measureSSE(env *bench.Env, n int) error {
	fmt.Printf("SSE memory: %d GET streams held open per target; HeapInuse+StackInuse after 2x GC, (after - before) / %d\n", n, n)
	fmt.Println("  (this process also holds the clients and the HTTP/1.1 upstream: 'direct' is their share of a")
	fmt.Println("   stream, subtracted from each proxy's to give what the proxy itself holds per stream; the")
	fmt.Println("   HTTP/2 targets' upstream runs in a process of its own, so 'direct_h2' is the client's share)")
	const timeout = 60 * time.Second
	order := []string{bench.Direct, bench.Gateway, bench.ReverseProxy, bench.Direct, bench.DirectH2, bench.GatewayH2, bench.CaddyHoldH2, bench.DirectH2}
	var costs []bench.StreamCost
	for _, name := range order {
		c, err := env.MeasureStreams(env.Target(name), n, timeout)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		costs = append(costs, c)
	}
	direct := (costs[0].PerStream() + costs[3].PerStream()) / 2
	directH2 := (costs[4].PerStream() + costs[7].PerStream()) / 2
	fmt.Printf("  %-14s %12s %12s %12s %12s %18s\n", "target", "B/stream", "heap B", "stack B", "goroutines", "minus direct (B)")
	for _, c := range costs {
		extra := "-"
		switch c.Target {
		case bench.Direct, bench.DirectH2:
		case bench.GatewayH2, bench.CaddyHoldH2:
			extra = fmt.Sprintf("%.0f (%.1f KiB)", c.PerStream()-directH2, (c.PerStream()-directH2)/1024)
		default:
			extra = fmt.Sprintf("%.0f (%.1f KiB)", c.PerStream()-direct, (c.PerStream()-direct)/1024)
		}
		fmt.Printf("  %-14s %12.0f %12.0f %12.0f %12.2f %18s\n", c.Target, c.PerStream(), c.HeapPerStream(), c.StackPerStream(), c.GoroutinesPerStream(), extra)
	}
	g := costs[1].PerStream() - direct
	fmt.Printf("=> memory per open SSE stream held by mcp_gateway = %.1f KiB (target <= 32 KiB); reverse_proxy: %.1f KiB\n",
		g/1024, (costs[2].PerStream()-direct)/1024)
	fmt.Printf("=> over HTTP/2 + TLS (minus direct_h2) mcp_gateway holds %.1f KiB per open stream (target <= 16 KiB), of which\n"+
		"   %.1f KiB is Caddy's own floor (caddy_hold_h2: its HTTP/2 server and middleware chain holding a stream with a trivial handler)\n"+
		"   and %.1f KiB the gateway's above it\n",
		(costs[5].PerStream()-directH2)/1024, (costs[6].PerStream()-directH2)/1024, (costs[5].PerStream()-costs[6].PerStream())/1024)
	return nil
}

func fatalf(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mcpbench: "+format+"\n", args...)
	os.Exit(code)
}
