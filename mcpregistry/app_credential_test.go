package mcpregistry

import (
	"context"
	"testing"

	"github.com/caddymcp/caddymcp/internal/principal"
)

func TestActor(t *testing.T) {
	if f := actor(context.Background()); f.Key != "by" || f.String != "anonymous" {
		t.Errorf("no caller: %+v", f)
	}
	ctx := principal.WithCaller(context.Background(), &principal.Caller{Subject: "alice"})
	if f := actor(ctx); f.String != "alice" {
		t.Errorf("caller alice: %+v", f)
	}
}
