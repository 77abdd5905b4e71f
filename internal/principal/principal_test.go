package principal

import (
	"context"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("caller in an empty context")
	}
	if _, ok := FromContext(WithCaller(context.Background(), nil)); ok {
		t.Fatal("nil caller reported present")
	}
	c := &Caller{Subject: "alice", ClientID: "cli", Groups: []string{"g"}}
	got, ok := FromContext(WithCaller(context.Background(), c))
	if !ok || got != c {
		t.Fatalf("got %v %v", got, ok)
	}
}
