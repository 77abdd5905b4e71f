// Package embeddings turns texts into vectors through an embeddings provider: the
// Embedder interface and a client of the OpenAI-compatible /v1/embeddings endpoint
// that Ollama, vLLM, LiteLLM, llama.cpp's server and the cloud providers serve.
package embeddings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"time"
)

// Embedder turns texts into vectors of one fixed dimension, in the order of the texts.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Bounds of what a provider may send back.
const (
	// MaxDimensions bounds a vector's length (the largest models in use have 4,096).
	MaxDimensions = 8192
	// DefaultMaxResponseBytes bounds one response: a batch of 64 vectors of 3,072
	// numbers written out in JSON at ~20 bytes each is ~4 MB.
	DefaultMaxResponseBytes = 16 << 20
)

// Client is an Embedder over an OpenAI-compatible embeddings endpoint: it POSTs
// {"model": Model, "input": [texts…]} to URL with the API key as a bearer token and
// reads {"data": [{"index": i, "embedding": [numbers…]}, …]}.
type Client struct {
	URL    string
	Model  string
	APIKey string // may be empty (a local Ollama or vLLM)
	// HTTP sends the requests; its Timeout bounds each one. Default: a client with a
	// 10 s timeout.
	HTTP *http.Client
	// MaxResponseBytes bounds a response body; default DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// Error is a failed embeddings request. It never holds the API key nor the texts.
type Error struct {
	Status int // the HTTP status, or 0 when the request did not get one
	Reason string
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("embeddings provider: HTTP %d: %s", e.Status, e.Reason)
	}
	return "embeddings provider: " + e.Reason
}

type request struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type response struct {
	Data []struct {
		Index     *int      `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
}

// Embed returns one vector per text, each scaled to unit length (so that a dot
// product is the cosine similarity). Every vector has the same dimension.
func (c *Client) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	body, err := json.Marshal(request{Model: c.Model, Input: texts})
	if err != nil {
		return nil, &Error{Reason: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Reason: "bad request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &Error{Reason: requestFailure(err)}
	}
	defer resp.Body.Close()
	limit := c.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &Error{Status: resp.StatusCode, Reason: "reading the response: " + requestFailure(err)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Status: resp.StatusCode, Reason: "the provider refused the request"}
	}
	if int64(len(raw)) > limit {
		return nil, &Error{Status: resp.StatusCode, Reason: fmt.Sprintf("response larger than %d bytes", limit)}
	}
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, &Error{Status: resp.StatusCode, Reason: "the response is not the embeddings JSON: " + err.Error()}
	}
	return vectors(r, len(texts))
}

// vectors checks a decoded response against the request and returns its vectors in
// input order, normalised.
func vectors(r response, n int) ([][]float32, error) {
	if len(r.Data) != n {
		return nil, &Error{Status: http.StatusOK, Reason: fmt.Sprintf("%d vectors for %d texts", len(r.Data), n)}
	}
	out := make([][]float32, n)
	dims := 0
	for i, d := range r.Data {
		idx := i // providers that omit index answer in order
		if d.Index != nil {
			idx = *d.Index
		}
		if idx < 0 || idx >= n || out[idx] != nil {
			return nil, &Error{Status: http.StatusOK, Reason: fmt.Sprintf("bad or repeated index %d", idx)}
		}
		if i == 0 {
			dims = len(d.Embedding)
		}
		if len(d.Embedding) == 0 || len(d.Embedding) > MaxDimensions || len(d.Embedding) != dims {
			return nil, &Error{Status: http.StatusOK, Reason: fmt.Sprintf("vector %d has %d dimensions (first: %d, at most %d)",
				idx, len(d.Embedding), dims, MaxDimensions)}
		}
		v, err := unit(d.Embedding)
		if err != nil {
			return nil, &Error{Status: http.StatusOK, Reason: fmt.Sprintf("vector %d: %v", idx, err)}
		}
		out[idx] = v
	}
	return out, nil
}

// unit returns v scaled to length 1.
func unit(v []float64) ([]float32, error) {
	var sum float64
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("not a finite number")
		}
		sum += x * x
	}
	if sum == 0 || math.IsInf(sum, 0) {
		return nil, errors.New("zero or unbounded length")
	}
	norm := 1 / math.Sqrt(sum)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x * norm)
	}
	return out, nil
}

// requestFailure describes a transport error without the URL's query (which could
// carry a key for some providers).
func requestFailure(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

var defaultHTTP = &http.Client{Timeout: 10 * time.Second}
