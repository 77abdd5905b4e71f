package e2e

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// An SSE response reaches the client piece by piece: the status and headers before the
// upstream wrote any event, each event before the upstream wrote the next. The upstream
// (an httptest server, so the test decides when it writes) waits for the test between
// steps, so nothing here depends on timing. The same holds behind `encode zstd gzip`
// (the production example's setup) for a client that accepts gzip.
func TestStreamsAreNotBuffered(t *testing.T) {
	t.Parallel()
	steps := make(chan chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for _, ev := range []string{"id: 1\ndata: {\"n\":1}\n\n", "id: 2\ndata: {\"n\":2}\n\n"} {
			next := make(chan struct{})
			select {
			case steps <- next: // the test got this step
			case <-r.Context().Done():
				return
			}
			select {
			case <-next: // the test says: write
			case <-r.Context().Done():
				return
			}
			_, _ = w.Write([]byte(ev))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(up.Close)

	for _, site := range []struct{ name, directives string }{
		{"plain", ""},
		{"behind encode", "\tencode zstd gzip\n"},
	} {
		t.Run(site.name, func(t *testing.T) {
			base, _ := startCaddy(t, "{\n\tadmin {{ADMIN}}\n\tmcp_registry {\n\t\tstorage bbolt {{DB}}\n\t\tserver up {$UP}\n\t}\n}\n\n"+
				":{{PORT}} {\n\tbind 127.0.0.1\n"+site.directives+"\tmcp_gateway\n}\n", map[string]string{"UP": up.URL + "/mcp"})
			c := newHTTPClient(t)
			h := hdr("Accept", "text/event-stream", "Accept-Encoding", "gzip")
			// openStream returns once the headers are in: the upstream is now blocked
			// before its first event.
			resp, _ := openResponse(t, c, "GET", base+"/up/mcp", h, "")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
				resp.Header.Get("X-Accel-Buffering") != "no" {
				t.Fatalf("headers %d %v", resp.StatusCode, resp.Header)
			}
			body := resp.Body
			if ce := resp.Header.Get("Content-Encoding"); ce != "" {
				t.Errorf("the event stream is compressed (Content-Encoding %q): DESIGN §5 wants text/event-stream excluded from encode", ce)
				if ce != "gzip" {
					t.FailNow()
				}
				// Read on through the compression: events must still arrive one by one.
				body = &gunzip{rc: resp.Body}
			}
			s := readSSE(body)
			t.Cleanup(s.Close)
			for n := 1; n <= 2; n++ {
				var step chan struct{}
				select {
				case step = <-steps:
				case <-time.After(eventTimeout):
					t.Fatalf("the upstream did not reach step %d", n)
				}
				close(step)
				ev, ok := s.next(t)
				if !ok || ev.ID != string(rune('0'+n)) || ev.Data != `{"n":`+string(rune('0'+n))+`}` {
					t.Fatalf("event %d: %+v (ended %v: %v)", n, ev, !ok, s.Err())
				}
			}
			if _, ok := s.next(t); ok {
				t.Errorf("more events than the upstream sent")
			}
		})
	}
}

// gunzip decompresses a body lazily: gzip.NewReader reads the gzip header, which a
// compressing server sends only with the first event.
type gunzip struct {
	rc io.ReadCloser
	zr *gzip.Reader
}

func (g *gunzip) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(g.rc)
		if err != nil {
			return 0, err
		}
		g.zr = zr
	}
	return g.zr.Read(p)
}

func (g *gunzip) Close() error { return g.rc.Close() }
