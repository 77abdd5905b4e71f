package embeddings_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/embeddings"
	"github.com/caddymcp/caddymcp/mcpregistry/embeddings/embeddingstest"
)

const secret = "sk-test-never-shown"

func TestClientEmbeds(t *testing.T) {
	srv := embeddingstest.New(64)
	defer srv.Close()
	c := &embeddings.Client{URL: srv.Endpoint(), Model: "bow-64", APIKey: secret}
	texts := []string{"create a refund", "list open issues", "create a refund"}
	vs, err := c.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("%d vectors", len(vs))
	}
	for i, v := range vs {
		if len(v) != 64 {
			t.Fatalf("vector %d: %d dimensions", i, len(v))
		}
		var sum float64
		for _, x := range v {
			sum += float64(x) * float64(x)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("vector %d has length² %v, want 1", i, sum)
		}
	}
	if dot(vs[0], vs[2]) < 0.9999 || dot(vs[0], vs[1]) > 0.9 {
		t.Errorf("same text %v, different texts %v", dot(vs[0], vs[2]), dot(vs[0], vs[1]))
	}
	if got := srv.Auth(); len(got) != 1 || got[0] != "Bearer "+secret {
		t.Errorf("Authorization %q", got)
	}
	// No key, no Authorization header.
	c.APIKey = ""
	if _, err := c.Embed(context.Background(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Auth(); got[1] != "" {
		t.Errorf("Authorization without a key: %q", got[1])
	}
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// TestClientRejectsBadAnswers: every way a provider can answer wrong is an error that
// names the problem and holds no secret.
func TestClientRejectsBadAnswers(t *testing.T) {
	srv := embeddingstest.New(32)
	defer srv.Close()
	srv.Oversize = 2 << 20
	srv.Delay = 5 * time.Second
	for _, tc := range []struct {
		mode embeddingstest.Mode
		want string
	}{
		{embeddingstest.Down, "HTTP 503"},
		{embeddingstest.NotJSON, "not the embeddings JSON"},
		{embeddingstest.WrongDims, "dimensions"},
		{embeddingstest.Oversized, "larger than"},
		{embeddingstest.Miscounted, "2 vectors for 3 texts"},
		{embeddingstest.Slow, "timed out"},
	} {
		srv.SetMode(tc.mode)
		c := &embeddings.Client{URL: srv.Endpoint(), Model: "m", APIKey: secret, MaxResponseBytes: 1 << 20}
		timeout := 10 * time.Second // generous on a loaded machine
		if tc.mode == embeddingstest.Slow {
			timeout = 200 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		vs, err := c.Embed(ctx, []string{"a", "b", "c"})
		cancel()
		var e *embeddings.Error
		if err == nil || vs != nil || !errors.As(err, &e) {
			t.Errorf("mode %d: %v, %v", tc.mode, vs, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("mode %d: error %q, want it to say %q and not the key", tc.mode, err, tc.want)
		}
		if tc.mode == embeddingstest.Slow && time.Since(start) > 2*time.Second {
			t.Errorf("mode %d: took %v", tc.mode, time.Since(start))
		}
	}
	srv.Close()
	c := &embeddings.Client{URL: srv.Endpoint(), Model: "m", APIKey: secret}
	if _, err := c.Embed(context.Background(), []string{"a"}); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("unreachable provider: %v", err)
	}
}
