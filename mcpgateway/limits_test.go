package mcpgateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

// rpcError decodes a gateway JSON-RPC error body, failing on anything else.
func rpcErrorCode(t *testing.T, body string) int {
	t.Helper()
	var e struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == 0 {
		t.Fatalf("not a JSON-RPC error body: %q", body)
	}
	return e.Error.Code
}

func getStatus(t *testing.T, url string, h http.Header) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header = h.Clone()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// One caller opening stream after stream hits its cap (429), and the gateway's total
// cap holds for everyone (503); closing a stream frees its place.
func TestLimitsStreamCaps(t *testing.T) {
	up := startSSEUpstream(t)
	for _, tc := range []struct {
		name   string
		limits map[string]any
		status int
	}{
		{"per principal", map[string]any{"max_streams_per_principal": 2, "max_streams": 100}, http.StatusTooManyRequests},
		{"total", map[string]any{"max_streams_per_principal": -1, "max_streams": 2}, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &testCaddy{
				Servers: []any{map[string]any{"name": "s", "upstream": up.URL + "/mcp"}},
				Gateway: map[string]any{"limits": tc.limits, "auth": map[string]any{
					"api_keys": []any{
						map[string]any{"sha256": keyHashHex(testAPIKey), "groups": []string{"g"}},
						map[string]any{"sha256": keyHashHex("other-key"), "groups": []string{"g"}},
					},
					"policy": map[string]any{
						"group_mappings": map[string]any{"g": []string{"all"}},
						"scopes":         map[string]any{"all": []any{map[string]any{"server": "*", "methods": []string{"*"}}}},
					},
				}},
			}
			base := c.start(t)
			key := http.Header{"X-Api-Key": {testAPIKey}}
			_, cancel1 := openGet(t, base+"/s/mcp", key)
			openGet(t, base+"/s/mcp", key)
			status, h, body := getStatus(t, base+"/s/mcp", key)
			if status != tc.status || h.Get("Retry-After") == "" || rpcErrorCode(t, body) != codeTooManyStreams {
				t.Fatalf("third stream: %d Retry-After %q %s", status, h.Get("Retry-After"), body)
			}
			if tc.status == http.StatusTooManyRequests {
				// Another caller is not held to this one's cap.
				other, _ := openGet(t, base+"/s/mcp", http.Header{"X-Api-Key": {"other-key"}})
				if other.StatusCode != http.StatusOK {
					t.Fatalf("another caller: %d", other.StatusCode)
				}
			}
			cancel1()
			waitFor(t, "a place to free up", func() bool {
				req, _ := http.NewRequest(http.MethodGet, base+"/s/mcp", nil)
				req.Header = key.Clone()
				resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
		})
	}
}

// A body that trickles in is cut at body_read_timeout with 408, not held for minutes.
func TestLimitsBodyReadTimeout(t *testing.T) {
	up := startRecordingUpstream(t)
	c := &testCaddy{
		Servers: []any{map[string]any{"name": "s", "upstream": up.srv.URL + "/json/mcp"}},
		Gateway: map[string]any{"limits": map[string]any{"body_read_timeout": int64(300 * time.Millisecond)}},
	}
	base := c.start(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /s/mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":", strings.TrimPrefix(base, "http://"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body trickles: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || rpcErrorCode(t, string(b)) != codeBodyTimeout {
		t.Fatalf("slow body: %d %s", resp.StatusCode, b)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("answered after %v", d)
	}
	if up.count() != 0 {
		t.Fatal("the partial body reached the upstream")
	}
	// An ordinary request on a new connection still works.
	if r := post(t, base+"/s/mcp", nil, call(1, "ping", "")); r.status != http.StatusOK {
		t.Fatalf("after the timeout: %d %s", r.status, r.body)
	}
}

// Streams end when their server is disabled or removed.
func TestLimitsStreamClosedWhenServerGoes(t *testing.T) {
	up := startSSEUpstream(t)
	c := &testCaddy{
		Servers: []any{map[string]any{"name": "s", "upstream": up.URL + "/mcp"}},
		Gateway: map[string]any{"limits": map[string]any{"stream_check_interval": int64(50 * time.Millisecond)}},
	}
	base := c.start(t)
	app, err := caddy.ActiveContext().AppIfConfigured("mcp_registry")
	if err != nil {
		t.Fatal(err)
	}
	reg := app.(*mcpregistry.App)
	ctx := context.Background()

	resp, _ := openGet(t, base+"/s/mcp", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	up.send(t, "data: one\n\n")
	readEvent(t, br)
	s, err := reg.SetEnabled(ctx, "s", false, reg.Server("s").Revision)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readEnd(t, br); err == nil {
		t.Log("stream ended cleanly") // either way it ended
	}
	if _, err := reg.SetEnabled(ctx, "s", true, s.Revision); err != nil {
		t.Fatal(err)
	}
	resp, _ = openGet(t, base+"/s/mcp", nil)
	br = bufio.NewReader(resp.Body)
	up.send(t, "data: two\n\n")
	readEvent(t, br)
	srv := reg.Server("s")
	if err := reg.Delete(ctx, "s", srv.Revision); err != nil {
		t.Fatal(err)
	}
	readEnd(t, br) // fails the test on timeout
}

// A stream outlives no token: it ends at the token's exp.
func TestLimitsStreamClosedAtTokenExpiry(t *testing.T) {
	up := startSSEUpstream(t)
	is := startIssuer(t, false)
	c := &testCaddy{
		Servers: []any{map[string]any{"name": "s", "upstream": up.URL + "/mcp"}},
		Gateway: map[string]any{"auth": map[string]any{
			"issuers":  []any{map[string]any{"issuer": is.url, "jwks_url": is.url + "/jwks"}},
			"resource": testResource,
			"policy": map[string]any{
				"group_mappings": map[string]any{"g": []string{"all"}},
				"scopes":         map[string]any{"all": []any{map[string]any{"server": "*", "methods": []string{"*"}, "tools": []string{"*"}}}},
			},
		}},
	}
	base := c.start(t)
	exp := time.Now().Add(2 * time.Second)
	tok := signClaims(t, is.key, is.kid, map[string]any{
		"iss": is.url, "sub": "bob", "aud": testResource, "exp": exp.Unix(), "iat": time.Now().Unix(), "groups": []string{"g"},
	})
	resp, _ := openGet(t, base+"/s/mcp", bearer(tok))
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET: %d %s", resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	up.send(t, "data: one\n\n")
	readEvent(t, br)
	readEnd(t, br)
	if d := time.Until(time.Unix(exp.Unix(), 0)); d > 100*time.Millisecond {
		t.Fatalf("stream ended %v before the token's exp", d)
	}
}

// Under the byte budget, concurrent list responses wait for room or get 503 with
// Retry-After; never more than the budget is held.
func TestLimitsListBufferBudget(t *testing.T) {
	b := newByteBudget(100, 50*time.Millisecond)
	ctx := context.Background()
	if !b.acquire(ctx, 60) || b.acquire(ctx, 60) {
		t.Fatal("second acquire over the limit succeeded")
	}
	if b.acquire(ctx, 101) {
		t.Fatal("acquire over the whole budget succeeded")
	}
	done := make(chan bool)
	b.wait = 2 * time.Second
	go func() { done <- b.acquire(ctx, 60) }()
	time.Sleep(20 * time.Millisecond)
	b.release(60)
	if !<-done || b.inUse() != 60 {
		t.Fatalf("waiter not woken: in use %d", b.inUse())
	}

	// Two writers growing their shares: each holds half the budget and wants more. The
	// older one gets it at once (within the limit for itself); the younger waits and,
	// with no room in time, gives up — they never both time out.
	g := newByteBudget(100, 50*time.Millisecond)
	older, younger := g.enter(), g.enter()
	if !g.acquireFor(ctx, 50, older, 0) || !g.acquireFor(ctx, 50, younger, 0) {
		t.Fatal("the first halves were refused")
	}
	if g.acquireFor(ctx, 30, younger, 50) {
		t.Error("the younger writer took room the budget does not have")
	}
	if !g.acquireFor(ctx, 30, older, 50) {
		t.Error("the oldest writer was refused room it needs to finish")
	}
	if g.acquireFor(ctx, 30, older, 80) {
		t.Error("the oldest writer took more than the whole limit for itself")
	}
	g.release(80)
	g.leave(older)
	if !g.acquireFor(ctx, 30, younger, 50) {
		t.Error("the next oldest was refused once the oldest left")
	}
}

// bigList is a tools/list answer of about n bytes.
func bigList(n int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"jsonrpc":"2.0","id":1,"result":{"tools":[`)
	desc := strings.Repeat("x", 1000)
	for i := 0; sb.Len() < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"name":"t%d","description":"%s","inputSchema":{"type":"object"}}`, i, desc)
	}
	sb.WriteString(`]}}`)
	return []byte(sb.String())
}

// 40 concurrent 7 MB tools/list answers through the filter: the heap stays bounded by
// the list budget, every caller gets either the filtered list or a 503 with
// Retry-After. TestLimitsListMemory -v prints the peak heap with and without the bound.
func TestLimitsListMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 280 MB")
	}
	list := bigList(7 << 20)
	up := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(list)
	})
	peak := func(limits map[string]any) (uint64, int, int) {
		c := &testCaddy{
			Servers: []any{map[string]any{"name": "s", "upstream": up + "/mcp"}},
			Gateway: map[string]any{"limits": limits, "auth": map[string]any{
				"api_keys": []any{map[string]any{"sha256": keyHashHex(testAPIKey), "groups": []string{"g"}}},
				"policy": map[string]any{
					"group_mappings": map[string]any{"g": []string{"all"}},
					"scopes":         map[string]any{"all": []any{map[string]any{"server": "*", "methods": []string{"*"}, "tools": []string{"t1", "t2"}}}},
				},
			}},
		}
		base := c.start(t)
		runtime.GC()
		var stop atomic.Bool
		var max uint64
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				metrics.Read(sample)
				max = maxU(max, sample[0].Value.Uint64())
				time.Sleep(2 * time.Millisecond)
			}
		}()
		metrics.Read(sample)
		base0 := sample[0].Value.Uint64()
		var ok, busy atomic.Int32
		var cw sync.WaitGroup
		for range 40 {
			cw.Add(1)
			go func() {
				defer cw.Done()
				r := post(t, base+"/s/mcp", http.Header{"X-Api-Key": {testAPIKey}}, call(1, "tools/list", ""))
				switch {
				case r.status == http.StatusOK && strings.Contains(r.body, `"t1"`) && !strings.Contains(r.body, `"t3"`):
					ok.Add(1)
				case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") != "":
					busy.Add(1)
				default:
					t.Errorf("list: %d %.200s", r.status, r.body)
				}
			}()
		}
		cw.Wait()
		stop.Store(true)
		wg.Wait()
		return max - min(max, base0), int(ok.Load()), int(busy.Load())
	}
	unbounded, _, _ := peak(map[string]any{"max_list_buffer_size": 1 << 40})
	bounded, ok, busy := peak(nil)
	t.Logf("40 × 7 MB tools/list: peak heap growth %d MiB unbounded, %d MiB with the default budget (%d filtered, %d refused)",
		unbounded>>20, bounded>>20, ok, busy)
	if ok == 0 {
		t.Error("no list got through")
	}
	// The budget (64 MiB) plus what is in flight outside it (copy buffers, the
	// upstream test server's own writes, the client's reads) stays well under the
	// unbounded figure.
	if bounded > 160<<20 {
		t.Errorf("peak heap growth %d MiB with the default budget", bounded>>20)
	}
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func keyHashHex(k string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(k)))
}

func TestLimitsCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`mcp_gateway {
		limits {
			max_streams_per_principal 8
			max_streams off
			body_read_timeout 5s
			max_list_buffer_size 32MiB
			list_buffer_wait 1s
			stream_check_interval 2s
		}
	}`)
	var g Gateway
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := LimitsConfig{MaxStreamsPerPrincipal: 8, MaxStreams: -1, BodyReadTimeout: caddy.Duration(5 * time.Second),
		MaxListBufferSize: 32 << 20, ListBufferWait: caddy.Duration(time.Second), StreamCheckInterval: caddy.Duration(2 * time.Second)}
	if g.Limits == nil || *g.Limits != want {
		t.Fatalf("got %+v", g.Limits)
	}
	for _, bad := range []string{"max_streams 0", "body_read_timeout -1s", "max_list_buffer_size lots", "nonsense 1"} {
		if err := (&Gateway{}).UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_gateway {\nlimits {\n" + bad + "\n}\n}")); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A list answered as an event stream is held event by event by the filter: those
// bytes count against the same budget, so a huge event cannot be buffered past it.
func TestLimitsListBufferBudgetSSE(t *testing.T) {
	budget := newByteBudget(1<<20, 20*time.Millisecond)
	rec := httptest.NewRecorder()
	lw := newListWriter(rec, policyAllowAll(t), "s", "1", zap.NewNop())
	lw.budget, lw.ctx = budget, context.Background()
	lw.Header().Set("Content-Type", "text/event-stream")
	lw.WriteHeader(http.StatusOK)
	// An event that never ends: 3 MiB of data, over a 1 MiB budget (2 × held).
	if _, err := lw.Write([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[")); err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat(`{"name":"x"},`, 1000))
	var err error
	for i := 0; i < 3<<20/len(chunk) && err == nil; i++ {
		_, err = lw.Write(chunk)
	}
	if err == nil {
		t.Fatal("the filter held 3 MiB of one event under a 1 MiB budget")
	}
	if used := budget.inUse(); used > 1<<20 {
		t.Fatalf("budget over its limit: %d", used)
	}
	lw.finish()
	if used := budget.inUse(); used != 0 {
		t.Fatalf("budget not returned after the response: %d", used)
	}
}

func policyAllowAll(t *testing.T) policy.Grant {
	t.Helper()
	p, _, err := policy.Compile(&policy.Config{
		GroupMappings: map[string][]string{"g": {"all"}},
		Scopes:        map[string][]policy.RuleConfig{"all": {{Server: "*", Methods: []string{"*"}, Tools: []string{"*"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p.Resolve([]string{"g"})
}
