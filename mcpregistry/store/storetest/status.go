package storetest

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// TestStatusBucket: health lives apart from the server record, round-trips, and goes
// with the server when it is deleted.
func testStatusBucket(t *testing.T, open Opener) {
	st := open(t)
	s := &model.Server{Name: "a", Upstream: "http://127.0.0.1:1/mcp"}
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	h := &model.ServerHealth{Server: "a", Status: model.HealthHealthy, ProtocolVersion: "2025-11-25",
		Tools: []model.ToolInfo{{Name: "t", InputSchema: json.RawMessage(`{"type":"object"}`)}}}
	err := st.Update(func(tx store.Tx) error {
		if err := tx.Put(s); err != nil {
			return err
		}
		return tx.PutStatus(h)
	})
	if err != nil {
		t.Fatal(err)
	}
	st.View(func(tx store.Tx) error {
		got, err := tx.GetStatus("a")
		if err != nil || got.Status != model.HealthHealthy || string(got.Tools[0].InputSchema) != `{"type":"object"}` {
			t.Errorf("GetStatus: %+v %v", got, err)
		}
		srv, _ := tx.Get("a")
		if srv.Revision != 1 {
			t.Errorf("PutStatus touched the record: revision %d", srv.Revision)
		}
		if list, _ := tx.ListStatus(); len(list) != 1 {
			t.Errorf("ListStatus: %v", list)
		}
		if _, err := tx.GetStatus("b"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("GetStatus of a missing name: %v", err)
		}
		return nil
	})
	st.Update(func(tx store.Tx) error { return tx.Delete("a") })
	st.View(func(tx store.Tx) error {
		if _, err := tx.GetStatus("a"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("status survived the server's deletion: %v", err)
		}
		return nil
	})
	if err := st.Update(func(tx store.Tx) error { return tx.PutStatus(&model.ServerHealth{}) }); err == nil {
		t.Error("PutStatus without a name accepted")
	}
}
