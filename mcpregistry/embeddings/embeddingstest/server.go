// Package embeddingstest serves deterministic embeddings over the OpenAI-compatible
// /v1/embeddings wire format, for tests that need a real provider on the loopback.
package embeddingstest

import (
	"encoding/json"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Mode is how the server answers.
type Mode int

const (
	OK         Mode = iota
	Down            // 503
	NotJSON         // 200 with an HTML page
	WrongDims       // one vector of each response one number short
	Oversized       // a valid response padded past any reasonable bound
	Slow            // answers after Delay
	Miscounted      // one vector fewer than texts
)

// Server is a bag-of-words embeddings provider: a text's vector counts its words, each
// hashed to one of Dims dimensions; words given the same Concept share a dimension,
// which is how a test makes two words mean the same.
type Server struct {
	*httptest.Server
	Dims    int
	Concept map[string]string // word → the word whose dimension it shares
	Delay   time.Duration

	mode     atomic.Int32
	Requests atomic.Int64
	Texts    atomic.Int64 // texts embedded (inputs of successful requests)

	mu       sync.Mutex
	auth     []string
	models   []string
	inputs   []string
	Oversize int // bytes of padding in Oversized mode
}

// New starts a server; Close it when done.
func New(dims int) *Server {
	s := &Server{Dims: dims, Concept: map[string]string{}, Oversize: 32 << 20}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL returns the endpoint's URL.
func (s *Server) Endpoint() string { return s.Server.URL + "/v1/embeddings" }

// SetMode changes how the server answers from now on.
func (s *Server) SetMode(m Mode) { s.mode.Store(int32(m)) }

// Auth returns the Authorization headers received.
func (s *Server) Auth() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}

// Inputs returns every text received.
func (s *Server) Inputs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.inputs...)
}

// Vector is the (unnormalised) embedding of text.
func (s *Server) Vector(text string) []float64 {
	v := make([]float64, s.Dims)
	v[0] = 0.01 // never the zero vector
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if c, ok := s.Concept[w]; ok {
			w = c
		}
		h := fnv.New32a()
		h.Write([]byte(w))
		v[1+int(h.Sum32()%uint32(s.Dims-1))]++
	}
	return v
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&req); err != nil || len(req.Input) == 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.models = append(s.models, req.Model)
	s.mu.Unlock()
	mode := Mode(s.mode.Load())
	switch mode {
	case Down:
		http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
		return
	case NotJSON:
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
		return
	case Slow:
		select {
		case <-time.After(s.Delay):
		case <-r.Context().Done():
			return
		}
	}
	type datum struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	var data []datum
	for i, in := range req.Input {
		v := s.Vector(in)
		if mode == WrongDims && i == len(req.Input)-1 {
			v = v[:len(v)-1]
		}
		data = append(data, datum{Object: "embedding", Index: i, Embedding: v})
	}
	if mode == Miscounted {
		data = data[:len(data)-1]
	}
	resp := map[string]any{"object": "list", "model": req.Model, "data": data}
	if mode == Oversized {
		resp["padding"] = strings.Repeat("x", s.Oversize)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
	if mode == OK || mode == Slow {
		s.mu.Lock()
		s.inputs = append(s.inputs, req.Input...)
		s.mu.Unlock()
		s.Texts.Add(int64(len(req.Input)))
	}
}
