package storetest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

type client struct {
	ID           string   `json:"id"`
	RedirectURIs []string `json:"redirect_uris"`
}

// Collections hold records apart from servers and from each other, roll back with
// their transaction and survive a server's deletion.
func testCollections(t *testing.T, open Opener) {
	st := open(t)
	err := st.Update(func(tx store.Tx) error {
		if err := tx.Put(normalized(t, &model.Server{Name: "a", Upstream: "http://h/mcp"})); err != nil {
			return err
		}
		clients, err := tx.Collection("oauth_clients")
		if err != nil {
			return err
		}
		if err := store.PutJSON(clients, "c2", client{ID: "c2"}); err != nil {
			return err
		}
		if err := store.PutJSON(clients, "c1", client{ID: "c1", RedirectURIs: []string{"http://127.0.0.1/cb"}}); err != nil {
			return err
		}
		codes, err := tx.Collection("oauth_codes")
		if err != nil {
			return err
		}
		return codes.Put("a", []byte("code-a"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// A failed transaction keeps none of its collection writes.
	boom := errors.New("boom")
	err = st.Update(func(tx store.Tx) error {
		c, err := tx.Collection("oauth_clients")
		if err != nil {
			return err
		}
		if err := c.Delete("c1"); err != nil {
			return err
		}
		if err := c.Put("c3", []byte("{}")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if err := st.Update(func(tx store.Tx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx store.Tx) error {
		names, err := tx.Collections()
		if err != nil {
			return err
		}
		if strings.Join(names, ",") != "oauth_clients,oauth_codes" {
			t.Errorf("Collections() = %v", names)
		}
		clients, err := tx.Collection("oauth_clients")
		if err != nil {
			return err
		}
		var keys []string
		if err := clients.ForEach(func(k string, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
			return err
		}
		if strings.Join(keys, ",") != "c1,c2" {
			t.Errorf("keys %v, want c1,c2 in order (and no c3 from the failed transaction)", keys)
		}
		c1, err := store.GetJSON[client](clients, "c1")
		if err != nil || c1.ID != "c1" || len(c1.RedirectURIs) != 1 {
			t.Errorf("c1 = %+v, %v", c1, err)
		}
		if _, err := clients.Get("missing"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("missing key: %v", err)
		}
		codes, err := tx.Collection("oauth_codes")
		if err != nil {
			return err
		}
		if v, err := codes.Get("a"); err != nil || !bytes.Equal(v, []byte("code-a")) {
			t.Errorf("deleting server a touched the collection key a: %q %v", v, err)
		}
		empty, err := tx.Collection("never_written")
		if err != nil {
			return err
		}
		if _, err := empty.Get("x"); !errors.Is(err, model.ErrNotFound) {
			t.Errorf("get from an unwritten collection: %v", err)
		}
		if err := empty.Put("x", []byte("1")); err == nil {
			t.Error("a read-only transaction wrote to a collection")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "Upper", "a/b", strings.Repeat("x", 65)} {
		err := st.View(func(tx store.Tx) error { _, err := tx.Collection(bad); return err })
		if err == nil {
			t.Errorf("collection name %q accepted", bad)
		}
	}
	err = st.Update(func(tx store.Tx) error {
		c, err := tx.Collection("oauth_clients")
		if err != nil {
			return err
		}
		return c.Put("", []byte("x"))
	})
	if err == nil {
		t.Error("an empty key was stored")
	}
}

// Collection writes through Batch commit like any other write.
func testCollectionsInBatch(t *testing.T, open Opener) {
	st := open(t)
	done := make(chan error)
	for i := range 8 {
		go func() {
			done <- st.Batch(func(tx store.Tx) error {
				c, err := tx.Collection("refresh_families")
				if err != nil {
					return err
				}
				return c.Put(string(rune('a'+i)), []byte{byte(i)})
			})
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	st.View(func(tx store.Tx) error {
		c, _ := tx.Collection("refresh_families")
		return c.ForEach(func(string, []byte) error { n++; return nil })
	})
	if n != 8 {
		t.Fatalf("%d records after 8 batched writes", n)
	}
}

// A backup carries every collection, and restoring it brings them back; replace
// empties the collections the backup does not hold.
func testBackupCarriesCollections(t *testing.T, open Opener) {
	src := open(t)
	seedStore(t, src)
	err := src.Update(func(tx store.Tx) error {
		c, err := tx.Collection("signing_keys")
		if err != nil {
			return err
		}
		return c.Put("k1", []byte{0, 1, 2, 255})
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, raw := exportDoc(t, src)
	if !bytes.Equal(doc.Collections["signing_keys"]["k1"], []byte{0, 1, 2, 255}) {
		t.Fatalf("backup lacks the collection: %s", raw)
	}
	dst := open(t)
	err = dst.Update(func(tx store.Tx) error {
		c, err := tx.Collection("stale")
		if err != nil {
			return err
		}
		return c.Put("x", []byte("old"))
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.RestoreBackup(dst, bytes.NewReader(raw), store.RestoreReplace, nil)
	if err != nil || res.Records != 1 {
		t.Fatalf("restore: %+v %v", res, err)
	}
	dst.View(func(tx store.Tx) error {
		names, _ := tx.Collections()
		if strings.Join(names, ",") != "signing_keys" {
			t.Errorf("collections after replace: %v", names)
		}
		return nil
	})
	bad := bytes.Replace(raw, []byte(`"signing_keys"`), []byte(`"Signing/Keys"`), 1)
	if _, err := store.RestoreBackup(dst, bytes.NewReader(bad), store.RestoreMerge, nil); err == nil {
		t.Error("a backup with an invalid collection name restored")
	}
}
