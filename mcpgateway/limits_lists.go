package mcpgateway

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The memory budget of list responses buffered for filtering.

// byteBudget is a counting semaphore on bytes, with a bounded wait. List writers grow
// their share as a body arrives, so under load each may hold part of the budget while
// waiting for more: they would all time out together and every list be refused. The
// writer that entered first (the oldest ticket still held) therefore gets what it asks
// for as long as its own share stays within the limit, even when the others' shares
// fill the budget: the total stays under twice the limit, and that writer finishes and
// makes room for the next oldest.
type byteBudget struct {
	limit int64
	wait  time.Duration

	mu      sync.Mutex
	used    int64
	waiters int           // acquires waiting for room
	room    chan struct{} // closed (and replaced) when bytes are released to waiters
	tickets []uint64      // writers holding a share, oldest first
	next    uint64
}

func newByteBudget(limit int64, wait time.Duration) *byteBudget {
	return &byteBudget{limit: limit, wait: wait, room: make(chan struct{})}
}

// enter gives a writer its ticket; leave returns it (after releasing its bytes).
func (b *byteBudget) enter() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	b.tickets = append(b.tickets, b.next)
	return b.next
}

func (b *byteBudget) leave(ticket uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := slices.Index(b.tickets, ticket); i >= 0 {
		b.tickets = slices.Delete(b.tickets, i, i+1)
	}
	b.wake()
}

// acquire takes n bytes, waiting up to the budget's wait (or ctx's end) for room. A
// request larger than the whole budget is refused at once.
func (b *byteBudget) acquire(ctx context.Context, n int64) bool { return b.acquireFor(ctx, n, 0, 0) }

// acquireFor is acquire for the writer holding ticket (0: none) and held bytes, which
// takes n at once when it holds the oldest ticket and held+n is within the limit.
func (b *byteBudget) acquireFor(ctx context.Context, n int64, ticket uint64, held int64) bool {
	if held+n > b.limit {
		return false
	}
	var deadline <-chan time.Time
	for {
		b.mu.Lock()
		if b.used+n <= b.limit || (ticket != 0 && b.tickets[0] == ticket) { // held+n <= limit: checked above
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
	b.wake()
	b.mu.Unlock()
}

// wake lets the waiting acquires look again. Callers hold mu.
func (b *byteBudget) wake() {
	if b.waiters > 0 {
		close(b.room)
		b.room = make(chan struct{})
	}
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
