package mcpregistry

import (
	"context"
	"testing"

	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
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

func TestCredentialWithoutEncryptionKey(t *testing.T) {
	a := &App{}
	if cw, err := a.sealCredential(&model.Server{Name: "s"}, &Credential{}); err != nil || cw.sealed != nil {
		t.Errorf("an empty credential needs no key: %v %v", cw, err)
	}
	rec := &model.Server{Name: "s", BackendAuth: model.BackendAuth{Scheme: model.BackendAuthBearer}}
	if _, err := a.sealCredential(rec, &Credential{Value: "x"}); err != errNoEncryptionKey {
		t.Errorf("sealCredential: %v", err)
	}
	if cw, err := a.sealCredential(rec, nil); err != nil || cw.sealed != nil {
		t.Errorf("removing needs no key: %v %v", cw, err)
	}
}
