package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// Streams is a set of SSE streams held open by this process.
type Streams struct {
	env    *Env
	cancel context.CancelFunc
	bodies []io.ReadCloser
	client *http.Client
}

// OpenStreams opens n GET SSE streams to t.StreamURL, at most parallel at a time, and
// returns once every one has received the upstream's priming event (so each is open end
// to end: client, proxy, upstream). It fails if any stream cannot be opened within
// timeout.
func (e *Env) OpenStreams(t Target, n, parallel int, timeout time.Duration) (*Streams, error) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: -1, // streams are never reused
	}
	if t.transport != nil {
		tr = t.transport()
	}
	tr.ResponseHeaderTimeout = timeout
	s := &Streams{
		env:    e,
		cancel: cancel,
		bodies: make([]io.ReadCloser, n),
		client: &http.Client{Transport: tr},
	}
	deadline := time.Now().Add(timeout)
	sem := make(chan struct{}, parallel)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			body, err := openStream(ctx, s.client, t, deadline)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("stream %d of %d to %s: %w", i+1, n, t.Name, err)
				}
				mu.Unlock()
				return
			}
			s.bodies[i] = body
		}()
	}
	wg.Wait()
	if firstErr != nil {
		s.Close()
		return nil, firstErr
	}
	return s, nil
}

func openStream(ctx context.Context, c *http.Client, t Target, deadline time.Time) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.StreamURL.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", ProtocolVersion)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("HTTP %d: %q", resp.StatusCode, b)
	}
	if t.transport != nil && resp.ProtoMajor != 2 {
		resp.Body.Close()
		return nil, fmt.Errorf("answered over %s, not HTTP/2", resp.Proto)
	}
	// Read up to the end of the priming event; a stalled stream is cut at the deadline.
	timer := time.AfterFunc(time.Until(deadline), func() { resp.Body.Close() })
	defer timer.Stop()
	var got []byte
	buf := make([]byte, 64)
	for !bytes.Contains(got, []byte("\n\n")) {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("before the priming event: %w (got %q)", err, got)
		}
	}
	return resp.Body, nil
}

// Close cancels every stream and waits (up to 30s) until the upstream has seen them all
// end.
func (s *Streams) Close() error {
	s.cancel()
	for _, b := range s.bodies {
		if b != nil {
			b.Close()
		}
	}
	s.client.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); s.env.OpenUpstreamStreams() > 0; {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d upstream streams still open 30s after closing", s.env.OpenUpstreamStreams())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// MemSample is the process's live memory: what the heap and goroutine stacks occupy
// after a full collection.
type MemSample struct {
	HeapInuse, StackInuse uint64
	Goroutines            int
}

// Total is HeapInuse + StackInuse.
func (m MemSample) Total() uint64 { return m.HeapInuse + m.StackInuse }

// SampleMemory collects garbage twice (the second also empties sync.Pools' victim caches)
// and reads runtime.MemStats.
func SampleMemory() MemSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return MemSample{HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()}
}

// StreamCost is the memory that n open streams to one target added to this process.
type StreamCost struct {
	Target        string
	N             int
	Before, After MemSample
}

// PerStream is the growth of HeapInuse+StackInuse per stream, in bytes.
func (c StreamCost) PerStream() float64 {
	return (float64(c.After.Total()) - float64(c.Before.Total())) / float64(c.N)
}

// HeapPerStream and StackPerStream split PerStream.
func (c StreamCost) HeapPerStream() float64 {
	return (float64(c.After.HeapInuse) - float64(c.Before.HeapInuse)) / float64(c.N)
}

// StackPerStream is the growth of StackInuse per stream.
func (c StreamCost) StackPerStream() float64 {
	return (float64(c.After.StackInuse) - float64(c.Before.StackInuse)) / float64(c.N)
}

// GoroutinesPerStream is the growth of the goroutine count per stream.
func (c StreamCost) GoroutinesPerStream() float64 {
	return float64(c.After.Goroutines-c.Before.Goroutines) / float64(c.N)
}

// MeasureStreams opens n streams to t, samples memory before and after, and closes them.
// The process holds the clients and the upstream as well as Caddy, so the result
// includes their share; subtract a Direct measurement to get what the proxy alone adds.
func (e *Env) MeasureStreams(t Target, n int, timeout time.Duration) (StreamCost, error) {
	// Warm up: the first streams through a handler pay one-time costs (pools, lazily
	// built state) that do not belong to any stream.
	warm, err := e.OpenStreams(t, min(n, 32), 32, timeout)
	if err != nil {
		return StreamCost{}, err
	}
	if err := warm.Close(); err != nil {
		return StreamCost{}, err
	}
	if err := settle(); err != nil {
		return StreamCost{}, err
	}
	c := StreamCost{Target: t.Name, N: n, Before: SampleMemory()}
	s, err := e.OpenStreams(t, n, 64, timeout)
	if err != nil {
		return c, err
	}
	time.Sleep(200 * time.Millisecond) // let every handler reach its blocking read
	c.After = SampleMemory()
	if err := s.Close(); err != nil {
		return c, err
	}
	return c, settle()
}

// settle waits for the goroutines of closed connections to finish, so the next
// baseline does not include them.
func settle() error {
	prev, stable := runtime.NumGoroutine(), 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == prev {
			stable++
			if stable == 4 {
				return nil
			}
		} else {
			prev, stable = n, 0
		}
	}
	return errors.New("goroutine count did not settle within 30s after closing streams")
}
