package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

func seedStore(t *testing.T, st store.Store) {
	t.Helper()
	err := st.Update(func(tx store.Tx) error {
		for _, s := range []*model.Server{
			{Name: "alpha", Upstream: "http://127.0.0.1:1/mcp", Tags: []string{"db"}, Enabled: true},
			{Name: "beta", Path: "b", Upstream: "http://127.0.0.1:2/sse", Transport: model.TransportSSE},
			{Name: "gone", Upstream: "http://127.0.0.1:3/mcp"},
		} {
			if err := s.Normalize(); err != nil {
				return err
			}
			if err := tx.Put(s); err != nil {
				return err
			}
		}
		if err := tx.Delete("gone"); err != nil {
			return err
		}
		if err := tx.PutStatus(&model.ServerHealth{Server: "alpha", Status: model.HealthHealthy, Tools: []model.ToolInfo{{Name: "query"}}, CheckedAt: time.Now().UTC()}); err != nil {
			return err
		}
		return tx.PutCredential("alpha", []byte("sealed-bytes-not-plaintext"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func exportDoc(t *testing.T, st store.Store) (*store.Backup, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := store.WriteBackup(st, &buf); err != nil {
		t.Fatal(err)
	}
	doc := new(store.Backup)
	if err := json.Unmarshal(buf.Bytes(), doc); err != nil {
		t.Fatal(err)
	}
	return doc, buf.Bytes()
}

func sameExport(t *testing.T, a, b *store.Backup) {
	t.Helper()
	a.ExportedAt, b.ExportedAt = time.Time{}, time.Time{}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("exports differ:\n%s\n%s", ja, jb)
	}
}

func testExportImportRoundTrip(t *testing.T, open Opener) {
	src := open(t)
	seedStore(t, src)
	doc, raw := exportDoc(t, src)
	if len(doc.Servers) != 2 || len(doc.Tombstones) != 1 || len(doc.Status) != 1 || string(doc.Credentials["alpha"]) != "sealed-bytes-not-plaintext" {
		t.Fatalf("export: %s", raw)
	}

	for _, mode := range []store.RestoreMode{store.RestoreReplace, store.RestoreMerge} {
		dst := open(t)
		res, err := store.RestoreBackup(dst, bytes.NewReader(raw), mode, nil)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if res.Servers != 2 || res.Tombstones != 1 || res.Credentials != 1 || res.Status != 1 {
			t.Fatalf("%s: %+v", mode, res)
		}
		again, _ := exportDoc(t, dst)
		sameExport(t, doc, again)
	}

	// Importing the same document into its own store changes nothing.
	if _, err := store.RestoreBackup(src, bytes.NewReader(raw), store.RestoreReplace, nil); err != nil {
		t.Fatal(err)
	}
	again, _ := exportDoc(t, src)
	d2 := new(store.Backup)
	json.Unmarshal(raw, d2)
	d2.ExportedAt = time.Time{}
	// The tombstone of "gone" gets a higher revision when it is imported over itself.
	again.Tombstones, d2.Tombstones = nil, nil
	sameExport(t, d2, again)
}

func testImportReplaceAndMerge(t *testing.T, open Opener) {
	src := open(t)
	seedStore(t, src)
	_, raw := exportDoc(t, src)

	dst := open(t)
	err := dst.Update(func(tx store.Tx) error {
		s := &model.Server{Name: "other", Upstream: "http://127.0.0.1:9/mcp"}
		s.Normalize()
		if err := tx.Put(s); err != nil {
			return err
		}
		a := &model.Server{Name: "alpha", Upstream: "http://127.0.0.1:8/mcp"}
		a.Normalize()
		for i := 0; i < 5; i++ { // alpha at revision 5, above the imported 1
			if err := tx.Put(a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.RestoreBackup(dst, bytes.NewReader(raw), store.RestoreMerge, nil); err != nil {
		t.Fatal(err)
	}
	dst.View(func(tx store.Tx) error {
		if _, err := tx.Get("other"); err != nil {
			t.Errorf("merge removed a record: %v", err)
		}
		a, _ := tx.Get("alpha")
		if a.Upstream != "http://127.0.0.1:1/mcp" || a.Revision != 6 {
			t.Errorf("merged alpha: %+v (revision must stay monotonic)", a)
		}
		return nil
	})
	res, err := store.RestoreBackup(dst, bytes.NewReader(raw), store.RestoreReplace, nil)
	if err != nil || res.Removed != 1 {
		t.Fatalf("replace: %+v %v", res, err)
	}
	dst.View(func(tx store.Tx) error {
		if _, err := tx.Get("other"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("replace kept a record: %v", err)
		}
		return nil
	})
}

func testImportFailsWhole(t *testing.T, open Opener) {
	src := open(t)
	seedStore(t, src)
	doc, _ := exportDoc(t, src)
	doc.Servers[1].Upstream = "ftp://nope"
	bad, _ := json.Marshal(doc)

	dst := open(t)
	_, err := store.RestoreBackup(dst, bytes.NewReader(bad), store.RestoreReplace, nil)
	if err == nil || !strings.Contains(err.Error(), `"beta"`) || !strings.Contains(err.Error(), "upstream") {
		t.Fatalf("err = %v", err)
	}
	dst.View(func(tx store.Tx) error {
		if l, _ := tx.List(); len(l) != 0 {
			t.Errorf("a failed import wrote %d servers", len(l))
		}
		return nil
	})

	// A path conflict with an existing record fails the merge, naming both servers.
	err = dst.Update(func(tx store.Tx) error {
		s := &model.Server{Name: "squatter", Path: "b", Upstream: "http://127.0.0.1:9/mcp"}
		s.Normalize()
		return tx.Put(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, good := exportDoc(t, src)
	if _, err := store.RestoreBackup(dst, bytes.NewReader(good), store.RestoreMerge, nil); err == nil || !strings.Contains(err.Error(), "squatter") {
		t.Fatalf("path conflict: %v", err)
	}
	dst.View(func(tx store.Tx) error {
		if l, _ := tx.List(); len(l) != 1 {
			t.Errorf("a failed merge wrote: %d servers", len(l))
		}
		return nil
	})

	for name, in := range map[string]string{
		"format":  `{"format":"x","version":1,"servers":[]}`,
		"unknown": `{"format":"caddymcp-registry-export","version":1,"servers":[],"bogus":1}`,
		"cred":    `{"format":"caddymcp-registry-export","version":1,"servers":[],"credentials":{"x":"AA=="}}`,
		"dup":     `{"format":"caddymcp-registry-export","version":1,"servers":[{"name":"a","upstream":"http://h/mcp"},{"name":"a","path":"z","upstream":"http://h/mcp"}]}`,
	} {
		if _, err := store.RestoreBackup(dst, strings.NewReader(in), store.RestoreMerge, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := store.RestoreBackup(dst, strings.NewReader("{}"), "upsert", nil); err == nil {
		t.Error("unknown mode accepted")
	}
	huge := strings.NewReader(`{"format":"` + strings.Repeat("x", int(store.MaxBackupBytes)) + `"}`)
	if _, err := store.RestoreBackup(dst, huge, store.RestoreMerge, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge import: %v", err)
	}
}
