package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/caddymcp/caddymcp/bench"
)

// Phase registry-list: the official v0.1 list endpoint (GET /v0.1/servers) of
// mcp_registry_api on a generated registry, served by the real caddy binary
// (go build ./cmd/caddy) as a separate process; this process only generates the store,
// imports it through Caddy's admin API and drives the load.
//
//	go run ./cmd/mcpbench -phases registry-list [-reg-servers 20000] [-reg-tools 20] [-reg-clients 100,16] [-reg-d 10s]
var (
	regServers   = flag.Int("reg-servers", bench.RegistryServers, "registry-list: servers in the generated registry")
	regTools     = flag.Int("reg-tools", bench.RegistryTools, "registry-list: tools per server")
	regClients   = flag.String("reg-clients", "100,16", "registry-list: concurrent clients of each run, comma-separated")
	regDuration  = flag.Duration("reg-d", 10*time.Second, "registry-list: measured time of each run")
	regWarmup    = flag.Duration("reg-warmup", 2*time.Second, "registry-list: unmeasured warm-up of each run")
	regLimit     = flag.Int("reg-limit", 0, "registry-list: page size (limit parameter); 0 sends none (the API's default, 30)")
	regCaddy     = flag.String("reg-caddy", "", "registry-list: caddy binary to run (default: go build ./cmd/caddy into a temporary directory)")
	regServerEnv = flag.String("reg-server-env", "", "registry-list: extra environment of the caddy process, comma-separated (e.g. GOMAXPROCS=1)")
	regRaw       = flag.Bool("reg-raw-client", false, "registry-list: drive the load with a minimal HTTP/1.1 client (less CPU than net/http's, so more of the shared CPUs go to caddy)")
	regRates     = flag.String("reg-rates", "", "registry-list: after the closed-loop runs, paced runs of -reg-clients' first count of clients offering these rates (requests/s, comma-separated; open loop, latency from each request's due time)")
	regProfile   = flag.String("reg-cpuprofile", "", "registry-list: write a CPU profile of the caddy process (admin /debug/pprof/profile) taken during the first run to this file")
)

// registryPhaseTime is the time bound of the registry-list phase.
func registryPhaseTime() time.Duration {
	runs := len(strings.Split(*regClients, ",")) + len(strings.Split(*regRates, ","))
	return 5*time.Minute + time.Duration(runs)*(*regDuration+*regWarmup)
}

// runRegistryList runs the registry-list phase and returns its failures.
func runRegistryList() (failed []string) {
	var clients []int
	for _, f := range strings.Split(*regClients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return []string{fmt.Sprintf("registry-list: bad -reg-clients %q", *regClients)}
		}
		clients = append(clients, n)
	}
	bin := *regCaddy
	if bin == "" {
		dir, err := os.MkdirTemp("", "caddymcp-mcpbench-")
		if err != nil {
			return []string{"registry-list: " + err.Error()}
		}
		defer os.RemoveAll(dir)
		t0 := time.Now()
		if bin, err = bench.BuildCaddy(dir); err != nil {
			return []string{"registry-list: " + err.Error()}
		}
		fmt.Printf("registry-list: built ./cmd/caddy in %v\n", time.Since(t0).Round(time.Millisecond))
	}
	var env []string
	if *regServerEnv != "" {
		env = strings.Split(*regServerEnv, ",")
	}
	p, err := bench.StartRegistryProcess(bin, *regServers, *regTools, env...)
	if err != nil {
		return []string{"registry-list: " + err.Error()}
	}
	defer p.Close()
	fmt.Printf("registry-list: %s; load generator GOMAXPROCS %d, %d CPUs; caddy pid %d (env %q) serves %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), p.PID(), env, p.URL)
	fmt.Printf("  store: %d servers × %d tools, export %.1f MiB imported via POST /mcp_registry/restore in %v (then busy %v)\n",
		p.Servers, p.Tools, float64(p.ExportBytes)/(1<<20), p.Import.Round(time.Millisecond), p.Settle.Round(100*time.Millisecond))
	limit := "default (30)"
	if *regLimit > 0 {
		limit = strconv.Itoa(*regLimit)
	}
	client := "net/http client"
	if *regRaw {
		client = "minimal HTTP/1.1 client"
	}
	fmt.Printf("  GET /v0.1/servers, limit %s, random cursor; closed loop, keep-alive, %s; %v measured after %v warm-up per run\n", limit, client, *regDuration, *regWarmup)

	var profile chan error
	if *regProfile != "" {
		profile = make(chan error, 1)
		secs := max(1, int(*regDuration/time.Second))
		go func() {
			time.Sleep(*regWarmup)
			profile <- fetchProfile(p.AdminURL+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), *regProfile)
		}()
	}
	fmt.Printf("  %8s %9s %9s %8s %8s %8s %8s %8s %11s %11s %9s %7s\n", "clients", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "KiB/page", "srv CPU/req", "cli CPU/req", "other CPU", "errors")
	for _, n := range clients {
		r := p.ListLoad(n, *regWarmup, *regDuration, *regLimit, *regRaw, 0)
		srv, cli := r.CPUPerRequest()
		other := "?"
		if r.MachineCPU > 0 {
			// CPUs' worth of time other processes on the machine used meanwhile.
			other = fmt.Sprintf("%.2f", max(0, (r.MachineCPU-r.ServerCPU-r.ClientCPU).Seconds()/r.Elapsed.Seconds()))
		}
		fmt.Printf("  %8d %9d %9.0f %8s %8s %8s %8s %8.1f %9.0fµs %9.0fµs %9s %7d\n", n, len(r.Lat), r.Rate(),
			ms(r.Pct(0.5)), ms(r.Pct(0.9)), ms(r.Pct(0.99)), ms(r.Max()),
			float64(r.Bytes)/float64(max(1, len(r.Lat)))/1024, float64(srv)/1e3, float64(cli)/1e3, other, r.Errors)
		if r.Errors > 0 {
			failed = append(failed, fmt.Sprintf("registry-list, %d clients: %d requests failed; first error: %v", n, r.Errors, r.FirstErr))
		}
		if n == 100 || len(clients) == 1 {
			// Little's law: n clients in a closed loop with no think time keep n requests
			// in the system; when the CPUs are saturated, throughput is CPUs / CPU per
			// request and the mean latency n / throughput.
			perReq := srv + cli
			if perReq > 0 {
				cpus := float64(runtime.NumCPU())
				fmt.Printf("  => %d clients: CPU per request %.0fµs (caddy %.0fµs + load generator %.0fµs); on %d CPUs at most %.0f req/s, mean latency at least %.2f ms\n",
					n, float64(perReq)/1e3, float64(srv)/1e3, float64(cli)/1e3, runtime.NumCPU(),
					cpus/perReq.Seconds(), float64(n)*perReq.Seconds()/cpus*1e3)
			}
		}
	}
	if *regRates != "" {
		fmt.Printf("  paced (open loop), %d clients:\n", clients[0])
		fmt.Printf("  %8s %9s %9s %8s %8s %8s %8s %11s %9s %7s\n", "offered", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "srv CPU/req", "other CPU", "errors")
		for _, f := range strings.Split(*regRates, ",") {
			rate, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || rate <= 0 {
				failed = append(failed, fmt.Sprintf("registry-list: bad -reg-rates %q", *regRates))
				break
			}
			r := p.ListLoad(clients[0], *regWarmup, *regDuration, *regLimit, *regRaw, rate)
			srv, _ := r.CPUPerRequest()
			other := "?"
			if r.MachineCPU > 0 {
				other = fmt.Sprintf("%.2f", max(0, (r.MachineCPU-r.ServerCPU-r.ClientCPU).Seconds()/r.Elapsed.Seconds()))
			}
			fmt.Printf("  %8.0f %9d %9.0f %8s %8s %8s %8s %9.0fµs %9s %7d\n", rate, len(r.Lat), r.Rate(),
				ms(r.Pct(0.5)), ms(r.Pct(0.9)), ms(r.Pct(0.99)), ms(r.Max()), float64(srv)/1e3, other, r.Errors)
			if r.Errors > 0 {
				failed = append(failed, fmt.Sprintf("registry-list, %.0f req/s: %d requests failed; first error: %v", rate, r.Errors, r.FirstErr))
			}
		}
	}
	if profile != nil {
		if err := <-profile; err != nil {
			failed = append(failed, "registry-list: CPU profile: "+err.Error())
		} else {
			fmt.Printf("  CPU profile of caddy during the first run: %s (go tool pprof %s %s)\n", *regProfile, bin, *regProfile)
		}
	}
	fmt.Println()
	return failed
}

func fetchProfile(u, path string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: HTTP %d: %.300s", u, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
