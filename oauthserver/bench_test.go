package oauthserver

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// benchServer provisions the server on st without an HTTP listener: the benchmarks
// measure the token endpoint handler and its store.
func benchServer(b *testing.B, st Store) *Server {
	s := &Server{Issuer: "https://mcp.example.com/oauth", Clients: []ClientConfig{{ID: nativeClient}}}
	if err := s.provision(context.Background(), nopLogger(), st, testRegistrySealer(b), nil); err != nil {
		b.Fatal(err)
	}
	return s
}

var notFound = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })

func postToken(b *testing.B, s *Server, form url.Values) string {
	req := httptest.NewRequest(http.MethodPost, "https://mcp.example.com/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req, notFound)
	if w.Code != http.StatusOK {
		b.Fatalf("token endpoint: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

// The token endpoint's code and refresh grants, on each store, with concurrent clients
// as a real server sees them (the bbolt store commits concurrent writes together).
// Requests per second = 1e9 / (ns/op).
func BenchmarkTokenCodeGrant(b *testing.B) {
	for _, impl := range storeImpls {
		b.Run(impl.name, func(b *testing.B) {
			s := benchServer(b, impl.open(b))
			redirect := "http://127.0.0.1:1234/cb"
			codes := make([]string, b.N)
			for i := range codes {
				codes[i] = rand.Text()
				s.store.PutCode(context.Background(), Code{Hash: hashToken(codes[i]), ClientID: nativeClient, RedirectURI: redirect,
					CodeChallenge: challengeOf(testVerifier), Resource: s.Resource, Subject: "alice", Groups: []string{"eng"}, Expires: time.Now().Add(time.Hour)})
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					postToken(b, s, codeForm(nativeClient, codes[next.Add(1)-1], redirect, testVerifier))
				}
			})
		})
	}
}

func BenchmarkTokenRefreshGrant(b *testing.B) {
	for _, impl := range storeImpls {
		b.Run(impl.name, func(b *testing.B) {
			s := benchServer(b, impl.open(b))
			s.Users = nil
			s.users["alice"] = User{Name: "alice", Groups: []string{"eng"}}
			refresh := make([]string, b.N)
			for i := range refresh {
				fam := rand.Text()
				refresh[i] = fam + "." + rand.Text()
				s.store.CreateFamily(context.Background(), RefreshFamily{ID: fam, ClientID: nativeClient, Subject: "alice", Resource: s.Resource,
					CurrentHash: hashToken(refresh[i]), Expires: time.Now().Add(time.Hour)})
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					postToken(b, s, url.Values{"grant_type": {"refresh_token"}, "client_id": {nativeClient}, "refresh_token": {refresh[next.Add(1)-1]}})
				}
			})
		})
	}
}
