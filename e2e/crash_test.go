package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashRecord is an exported server record as this test checks it: every field a
// stored record always has, decoded strictly (an unknown field fails the decode too).
type crashRecord struct {
	Name        string   `json:"name"`
	Path        string   `json:"path"`
	Upstream    string   `json:"upstream"`
	Transport   string   `json:"transport"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Enabled     *bool    `json:"enabled"`
	BackendAuth *struct {
		Scheme string `json:"scheme,omitempty"`
		Header string `json:"header,omitempty"`
	} `json:"backend_auth"`
	GatewayTokenHeader string          `json:"gateway_token_header,omitempty"`
	ForwardIdentity    json.RawMessage `json:"forward_identity,omitempty"`
	Source             string          `json:"source"`
	Revision           uint64          `json:"revision"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
}

type crashExport struct {
	Format      string            `json:"format"`
	Version     int               `json:"version"`
	ExportedAt  time.Time         `json:"exported_at"`
	Servers     []json.RawMessage `json:"servers"`
	Status      []json.RawMessage `json:"status,omitempty"`
	Tombstones  []json.RawMessage `json:"tombstones,omitempty"`
	Credentials map[string][]byte `json:"credentials,omitempty"`
}

// kill -9 of caddy during a burst of registrations (merge-imports of one new server each
// through the admin API), three times over the same bbolt file: every restart opens the
// file promptly, every acknowledged registration is there and routed (a request to its
// /<path>/mcp reaches the echo upstream), and every record in the store is whole.
func TestRegistryCrashDuringRegistrations(t *testing.T) {
	t.Parallel()
	const (
		cycles     = 3
		workers    = 8
		killAfter  = 50 // acknowledgements per cycle before the kill
		burstLimit = 20 * time.Second
	)
	echo := startEchoUpstream(t)
	base, ci := gatewayFor(t, map[string]string{}, "")
	c := newHTTPClient(t)
	start := time.Now()

	var acked []string // every acknowledged registration, all cycles
	for cycle := 0; cycle < cycles; cycle++ {
		admin := ci.Admin // read on the test goroutine; Restart rewrites it
		var (
			mu       sync.Mutex
			cycleAck []string
			attempts int
			killNow  = make(chan struct{})
			stop     = make(chan struct{})
			once     sync.Once
			wg       sync.WaitGroup
		)
		// One client per cycle, no keep-alive reuse across the kill.
		tr := &http.Transport{MaxIdleConnsPerHost: workers}
		client := &http.Client{Transport: tr, Timeout: requestTimeout}
		for g := 0; g < workers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("crash-c%d-g%d-%d", cycle, g, n)
					doc := fmt.Sprintf(`{"format":"caddymcp-registry-export","version":1,"servers":[`+
						`{"name":%q,"upstream":%q,"enabled":true,"description":"crash test %s","tags":["crash"]}]}`,
						name, echo.MCP, name)
					mu.Lock()
					attempts++
					mu.Unlock()
					resp, err := client.Post(admin+"/mcp_registry/restore?mode=merge", "application/json", strings.NewReader(doc))
					if err != nil {
						return // caddy is gone
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						return
					}
					if resp.StatusCode != http.StatusOK {
						// Not acknowledged; a refusal of a valid document while caddy runs
						// is worth seeing.
						t.Logf("import %s: %d %s", name, resp.StatusCode, body)
						continue
					}
					mu.Lock()
					cycleAck = append(cycleAck, name)
					if len(cycleAck) >= killAfter {
						once.Do(func() { close(killNow) })
					}
					mu.Unlock()
				}
			}()
		}
		select {
		case <-killNow:
		case <-time.After(burstLimit):
			close(stop)
			wg.Wait()
			t.Fatalf("cycle %d: only %d of %d registrations acknowledged within %v", cycle, len(cycleAck), attempts, burstLimit)
		}
		// Kill at a moment not tied to an acknowledgement, so that some kills land
		// in the middle of a commit.
		time.Sleep(time.Duration(cycle) * 7 * time.Millisecond)
		ci.Kill() // SIGKILL to the process group, mid-burst
		close(stop)
		wg.Wait()
		tr.CloseIdleConnections()
		c.CloseIdleConnections()
		mu.Lock()
		acked = append(acked, cycleAck...)
		t.Logf("cycle %d: killed with %d acknowledged of %d attempted registrations", cycle, len(cycleAck), attempts)
		if len(cycleAck) == attempts {
			t.Errorf("cycle %d: no registration was in flight at the kill", cycle)
		}
		mu.Unlock()

		restarted := time.Now()
		ci.Restart() // same Caddyfile, same db, same site port
		took := time.Since(restarted)
		if took > 5*time.Second {
			t.Errorf("cycle %d: restart took %v (a lock wait on the bbolt file?)", cycle, took)
		}
		if out := ci.Output(); strings.Contains(out, "is locked by another process") {
			t.Fatalf("cycle %d: the registry database was reported locked after the kill", cycle)
		}
		checkCrashStore(t, c, ci.Admin, base, echo, acked, cycle)
	}
	t.Logf("%d kill/restart cycles, %d acknowledged registrations, all present: %v",
		cycles, len(acked), time.Since(start).Round(time.Millisecond))
}

// checkCrashStore asserts, on the restarted caddy, that the export decodes and every
// record in it is whole, that each acknowledged server is in it and routed, and that
// the stats agree with the export.
func checkCrashStore(t *testing.T, c *http.Client, admin, base string, echo *echoUpstream, acked []string, cycle int) {
	t.Helper()
	resp, body := send(t, c, "GET", admin+"/mcp_registry/backup", nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cycle %d: export: %d %s", cycle, resp.StatusCode, body)
	}
	var doc crashExport
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("cycle %d: export does not decode: %v\n%.2000s", cycle, err, body)
	}
	if doc.Format != "caddymcp-registry-export" || doc.Version != 1 {
		t.Fatalf("cycle %d: export format %q version %d", cycle, doc.Format, doc.Version)
	}
	stored := map[string]crashRecord{}
	for i, raw := range doc.Servers {
		var r crashRecord
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			t.Errorf("cycle %d: servers[%d] does not decode: %v: %s", cycle, i, err, raw)
			continue
		}
		// Every record has the fields the store always writes; this test's own
		// registrations ("crash-…"; the builtin registry server is there too) have
		// exactly what was registered.
		mine := strings.HasPrefix(r.Name, "crash-")
		var missing []string
		for _, f := range []struct {
			name string
			ok   bool
		}{
			{"name", r.Name != ""},
			{"path", r.Path != "" && (!mine || r.Path == r.Name)},
			{"upstream", r.Upstream != "" && (!mine || r.Upstream == echo.MCP)},
			{"transport", r.Transport == "streamable-http" || r.Transport == "sse"},
			{"enabled", r.Enabled != nil && (!mine || *r.Enabled)},
			{"backend_auth", r.BackendAuth != nil && r.BackendAuth.Scheme != ""},
			{"source", r.Source == "api" || (!mine && r.Source == "config")},
			{"revision", r.Revision >= 1},
			{"created_at", !r.CreatedAt.IsZero()},
			{"updated_at", !r.UpdatedAt.IsZero() && !r.UpdatedAt.Before(r.CreatedAt)},
			{"description", !mine || r.Description == "crash test "+r.Name},
			{"tags", !mine || slices.Equal(r.Tags, []string{"crash"})},
		} {
			if !f.ok {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			t.Errorf("cycle %d: servers[%d] is not whole (bad %s): %s", cycle, i, strings.Join(missing, ", "), raw)
		}
		if _, dup := stored[r.Name]; dup {
			t.Errorf("cycle %d: server %q exported twice", cycle, r.Name)
		}
		stored[r.Name] = r
	}
	var lost []string
	for _, name := range acked {
		if _, ok := stored[name]; !ok {
			lost = append(lost, name)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Fatalf("cycle %d: %d of %d acknowledged registrations lost after kill -9: %v", cycle, len(lost), len(acked), lost)
	}

	resp, body = send(t, c, "GET", admin+"/mcp_registry/stats", nil, "")
	var st struct {
		Servers int `json:"servers"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("cycle %d: stats: %d %s", cycle, resp.StatusCode, body)
	}
	if st.Servers != len(doc.Servers) {
		t.Errorf("cycle %d: stats count %d servers, the export %d", cycle, st.Servers, len(doc.Servers))
	}

	// Every stored registration of this test (acknowledged or not) is routed to the
	// echo upstream.
	before := echo.count()
	var names []string
	for name := range stored {
		if strings.HasPrefix(name, "crash-") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	for _, name := range names {
		req, err := http.NewRequestWithContext(ctx, "POST", base+"/"+stored[name].Path+"/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = mcpHeader("", "2025-11-25")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("cycle %d: POST /%s/mcp: %v", cycle, name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"echo":"ping"`) {
			t.Errorf("cycle %d: POST /%s/mcp: %d %s, want the echo upstream's answer", cycle, name, resp.StatusCode, b)
		}
	}
	if got := echo.count() - before; got != len(names) {
		t.Errorf("cycle %d: the echo upstream got %d requests for %d servers", cycle, got, len(names))
	}
	t.Logf("cycle %d: restarted; %d servers stored, %d of them this test's (%d acknowledged so far), all whole and routed",
		cycle, len(stored), len(names), len(acked))
}
