package store_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/store"
	"github.com/caddymcp/caddymcp/mcpregistry/store/storetest"
)

func TestBolt(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := store.OpenBolt(filepath.Join(t.TempDir(), "registry.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}
