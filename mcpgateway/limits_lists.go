package mcpgateway

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// The memory budget of list responses buffered for filtering.

// byteBudget is a counting semaphore on bytes, with a bounded wait.
type byteBudget struct {
	limit int64
	wait  time.Duration

	mu      sync.Mutex
	used    int64
	waiters int           // acquires waiting for room
	room    chan struct{} // closed (and replaced) when bytes are released to waiters
}

func newByteBudget(limit int64, wait time.Duration) *byteBudget {
	return &byteBudget{limit: limit, wait: wait, room: make(chan struct{})}
}

// acquire takes n bytes, waiting up to the budget's wait (or ctx's end) for room. A
// request larger than the whole budget is refused at once.
func (b *byteBudget) acquire(ctx context.Context, n int64) bool {
	if n > b.limit {
		return false
	}
	var deadline <-chan time.Time
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return true
		}
		room := b.room
		b.waiters++
		b.mu.Unlock()
		if deadline == nil {
			timer := time.NewTimer(b.wait)
			defer timer.Stop()
			deadline = timer.C
		}
		ok := true
		select {
		case <-room:
		case <-deadline:
			ok = false
		case <-ctx.Done():
			ok = false
		}
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
		if !ok {
			return false
		}
	}
}

func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.waiters > 0 {
		close(b.room)
		b.room = make(chan struct{})
	}
	b.mu.Unlock()
}

func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func writeBusy(w http.ResponseWriter, id string) {
	w.Header().Set("Retry-After", "2")
	writeRPCError(w, http.StatusServiceUnavailable, id, codeBusy,
		"the gateway is filtering too many large list responses at once; retry shortly")
}
