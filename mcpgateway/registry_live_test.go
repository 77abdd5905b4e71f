package mcpgateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// A server registered, disabled and removed at runtime through the registry's App is
// routed accordingly by the very next request through a real Caddy: no reload.
func TestRegistryLiveRouting(t *testing.T) {
	var hits atomic.Int32
	up := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	})
	base := (&testCaddy{}).start(t)
	app, err := caddy.ActiveContext().AppIfConfigured("mcp_registry")
	if err != nil {
		t.Fatal(err)
	}
	reg := app.(*mcpregistry.App)

	client := &http.Client{Timeout: 5 * time.Second}
	post := func(seg string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/"+seg+"/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	if code := post("live"); code != http.StatusNotFound {
		t.Fatalf("before registration: %d", code)
	}
	ctx := context.Background()
	s, err := reg.Put(ctx, &model.Server{Name: "live", Upstream: up + "/mcp", Enabled: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if code := post("live"); code != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("after registration: %d, upstream hits %d", code, hits.Load())
	}
	s, err = reg.SetEnabled(ctx, "live", false, s.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if code := post("live"); code != http.StatusServiceUnavailable || hits.Load() != 1 {
		t.Fatalf("after disabling: %d, upstream hits %d", code, hits.Load())
	}
	if err := reg.Delete(ctx, "live", s.Revision); err != nil {
		t.Fatal(err)
	}
	if code := post("live"); code != http.StatusNotFound {
		t.Fatalf("after removal: %d", code)
	}
}
