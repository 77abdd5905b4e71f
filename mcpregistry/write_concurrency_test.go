package mcpregistry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// Two App.Put calls race for one path under different names: exactly one wins, and
// the index routes the winner.
func TestAppPutConcurrentPathConflict(t *testing.T) {
	app := loadWritableRegistry(t)
	ctx := context.Background()
	for round := range 10 {
		path := fmt.Sprintf("contested-%d", round)
		var wins, conflicts atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("r%d-w%d", round, w)
				_, err := app.Put(ctx, &model.Server{Name: name, Path: path, Upstream: "http://h/mcp"}, 0)
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(name)
				case errors.Is(err, model.ErrPathConflict):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 1 {
			t.Fatalf("round %d: %d wins, %d conflicts", round, wins.Load(), conflicts.Load())
		}
		if got := app.Lookup(path); got == nil || got.Name != winner.Load() {
			t.Fatalf("round %d: %s routes %+v, want %v", round, path, got, winner.Load())
		}
	}
}

// Many writers update, delete and re-create one name concurrently: no reader ever
// sees the index go back to an older revision, every write is visible (or superseded)
// when it returns, and the index ends equal to the store.
func TestAppIndexNeverRegresses(t *testing.T) {
	app := loadWritableRegistry(t)
	ctx := context.Background()
	const name = "hot"
	if _, err := app.Put(ctx, &model.Server{Name: name, Upstream: "http://h/mcp"}, 0); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := app.Server(name)
				if s == nil {
					continue
				}
				if s.Revision < last {
					t.Errorf("index went back from revision %d to %d", last, s.Revision)
					return
				}
				last = s.Revision
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 12 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 25 {
				if w%4 == 3 && i%5 == 4 {
					if err := app.Delete(ctx, name, model.AnyRevision); err != nil && !errors.Is(err, model.ErrNotFound) {
						t.Error(err)
					}
					continue
				}
				path := name
				if i%2 == 1 {
					path = name + "-alt"
				}
				got, err := app.Put(ctx, &model.Server{Name: name, Path: path, Upstream: "http://h/mcp", Description: fmt.Sprint(w, i)}, model.AnyRevision)
				if err != nil {
					t.Error(err)
					return
				}
				// The contract: once Put returns, the index holds this write or a newer one.
				if cur := app.Server(name); cur != nil && cur.Revision < got.Revision {
					t.Errorf("after Put returned revision %d the index has %d", got.Revision, cur.Revision)
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()

	var stored *model.Server
	err := app.store.View(func(tx store.Tx) error {
		s, err := tx.Get(name)
		if errors.Is(err, model.ErrNotFound) {
			return nil
		}
		stored = s
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cur := app.Server(name)
	switch {
	case stored == nil && cur != nil:
		t.Fatalf("deleted in the store, indexed as %+v", cur)
	case stored != nil && (cur == nil || cur.Revision != stored.Revision || cur.Path != stored.Path):
		t.Fatalf("store has %+v, index %+v", stored, cur)
	}
	for _, p := range []string{name, name + "-alt"} {
		r := app.Lookup(p)
		if stored == nil || stored.Path != p {
			if r != nil && r.Name == name {
				t.Errorf("stale route at %s: %+v", p, r)
			}
		} else if r == nil || r.Revision != stored.Revision {
			t.Errorf("route at %s: %+v, want revision %d", p, r, stored.Revision)
		}
	}
}

func TestIndexSetSortedMany(t *testing.T) {
	mk := func(names ...string) []*model.Server {
		var out []*model.Server
		for _, n := range names {
			out = append(out, &model.Server{Name: n, Path: n})
		}
		return out
	}
	names := func(l []*model.Server) string {
		s := ""
		for _, x := range l {
			s += x.Name + ","
		}
		return s
	}
	for _, tc := range []struct {
		start   []string
		changed map[string]*model.Server
		want    string
	}{
		{nil, map[string]*model.Server{"b": {Name: "b"}, "a": {Name: "a"}}, "a,b,"},
		{[]string{"b", "d"}, map[string]*model.Server{"a": {Name: "a"}, "c": {Name: "c"}, "e": {Name: "e"}}, "a,b,c,d,e,"},
		{[]string{"a", "b", "c"}, map[string]*model.Server{"a": nil, "c": nil, "x": nil}, "b,"},
		{[]string{"a", "b", "c"}, map[string]*model.Server{"b": {Name: "b", Description: "new"}, "bb": {Name: "bb"}, "a": nil}, "b,bb,c,"},
	} {
		ix := newIndex(mk(tc.start...))
		ix.setSortedMany(tc.changed)
		got := ix.list()
		if names(got) != tc.want {
			t.Errorf("%v + %v: %s, want %s", tc.start, tc.changed, names(got), tc.want)
		}
		for _, s := range got {
			if c, ok := tc.changed[s.Name]; ok && c != s {
				t.Errorf("%s: not the changed record", s.Name)
			}
		}
	}
}
