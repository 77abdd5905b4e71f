package mcpgateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/jsonrpc"
	"github.com/caddymcp/caddymcp/internal/listfilter"
	"github.com/caddymcp/caddymcp/internal/policy"
)

// maxListBody bounds a JSON list response the filter reads whole.
const maxListBody = 16 << 20

// hasListCall reports whether the body (or an element of a batch) is a list request.
func hasListCall(in *jsonrpc.Inspection) bool {
	for i := range in.Messages {
		if _, ok := listfilter.KindOf(in.Messages[i].Method); ok && in.Messages[i].Kind == jsonrpc.KindRequest {
			return true
		}
	}
	return false
}

func anyList(string) (listfilter.Kind, bool) { return listfilter.AnyList, true }

func allowFor(grant policy.Grant, server string) listfilter.Allow {
	return func(kind listfilter.Kind, name string) bool {
		switch kind {
		case listfilter.Tools:
			return grant.AllowTool(server, name)
		case listfilter.Prompts:
			return grant.AllowPrompt(server, name)
		case listfilter.Resources, listfilter.ResourceTemplates:
			return grant.AllowResource(server, name)
		}
		return false
	}
}

// listWriter filters a 2xx list response on its way to the client: a JSON body is read
// whole (bounded) and filtered at the end (finish), an event stream is filtered event by
// event and flushed after every write. Other responses pass unchanged. It fails closed:
// a body the filter cannot read, or one that is compressed, does not reach the client.
type listWriter struct {
	http.ResponseWriter
	allow  listfilter.Allow
	logger *zap.Logger
	id     string // request id for a JSON-RPC error, "" for batches

	mode   int // 0 pass-through, 1 JSON, 2 SSE, 3 failed (discard)
	status int
	buf    []byte
	sse    *listfilter.SSEFilter
	why    string

	// budget, when set, bounds the memory of JSON bodies buffered by all list writers
	// (limits.go): each body is counted twice, for the filtered copy. held is what this
	// one took; busy means it found no room in time.
	budget *byteBudget
	ctx    context.Context
	held   int64
	ticket uint64 // this writer's place in the budget's queue (0: not entered yet)
	busy   bool
}

const (
	lwPass = iota
	lwJSON
	lwSSE
	lwFailed
)

func newListWriter(w http.ResponseWriter, grant policy.Grant, server, id string, logger *zap.Logger) *listWriter {
	return &listWriter{ResponseWriter: w, allow: allowFor(grant, server), id: id, logger: logger}
}

func (w *listWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	h := w.Header()
	// 202 and 204 carry no list: the legacy transport accepts a POST with 202 and
	// answers on its event stream, which is filtered there.
	if code < 200 || code > 299 || code == http.StatusNoContent || code == http.StatusAccepted {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	ct := h.Get("Content-Type")
	enc := h.Get("Content-Encoding")
	jsonBody := strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json")
	eventStream := isEventStream(ct)
	if !jsonBody && !eventStream {
		// A list answer the filter cannot read must not pass unfiltered.
		w.mode, w.why = lwFailed, "unexpected Content-Type "+quote(ct)
		return
	}
	if enc != "" && !strings.EqualFold(enc, "identity") {
		w.mode, w.why = lwFailed, "compressed ("+enc+")"
		return
	}
	if jsonBody {
		w.mode = lwJSON
		return
	}
	w.mode = lwSSE
	h.Del("Content-Length")
	w.sse = listfilter.NewSSEFilter(w.ResponseWriter, anyList, w.allow)
	w.ResponseWriter.WriteHeader(code)
}

func (w *listWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	switch w.mode {
	case lwJSON:
		if len(w.buf)+len(p) > maxListBody {
			w.mode, w.why, w.buf = lwFailed, "larger than "+strconv.Itoa(maxListBody)+" bytes", nil
			return len(p), nil
		}
		if need := len(w.buf) + len(p); need > cap(w.buf) {
			if !w.grow(need) {
				w.mode, w.busy, w.buf = lwFailed, true, nil
				w.why = "no room to buffer it (max_list_buffer_size)"
				return len(p), nil
			}
		}
		w.buf = append(w.buf, p...)
		return len(p), nil
	case lwSSE:
		if w.budget != nil && !w.reserve(2*int64(w.sse.Held()+len(p))) {
			w.logger.Warn("list response stream could not be filtered; ending it", zap.String("reason", "no room to buffer it (max_list_buffer_size)"))
			return 0, errListBusy
		}
		n, err := w.sse.Write(p)
		if w.budget != nil {
			w.reserve(2 * int64(w.sse.Held())) // give back what the filter no longer holds
		}
		if err != nil {
			w.logger.Warn("list response stream could not be filtered; ending it", zap.Error(err))
			return n, err
		}
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		return n, nil
	case lwFailed:
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

var errListBusy = errors.New("no room to buffer the list response for filtering")

// enter takes this writer's ticket of the budget on its first reservation.
func (w *listWriter) enter() uint64 {
	if w.ticket == 0 {
		w.ticket = w.budget.enter()
	}
	return w.ticket
}

// reserve adjusts what this writer holds of the budget to n bytes: taking more (waiting
// for room, false if there is none in time) or giving back the excess.
func (w *listWriter) reserve(n int64) bool {
	switch {
	case n > w.held:
		if !w.budget.acquireFor(w.ctx, n-w.held, w.enter(), w.held) {
			return false
		}
	case n < w.held:
		w.budget.release(w.held - n)
	}
	w.held = n
	return true
}

// grow makes room for need bytes in the JSON buffer: the announced length at once when
// it is known, else doubling. Under a budget it first takes twice the new capacity
// (the buffer and the filtered copy finish makes), waiting for room if need be.
func (w *listWriter) grow(need int) bool {
	newCap := max(2*cap(w.buf), need, 4096)
	if cl := w.Header().Get("Content-Length"); cl != "" && len(w.buf) == 0 {
		if n, err := strconv.Atoi(cl); err == nil && n >= need && n <= maxListBody {
			newCap = n
		}
	}
	newCap = min(newCap, max(need, maxListBody))
	if w.budget != nil {
		if extra := 2*int64(newCap) - w.held; extra > 0 {
			if !w.budget.acquireFor(w.ctx, extra, w.enter(), w.held) {
				return false
			}
			w.held += extra
		}
	}
	nb := make([]byte, len(w.buf), newCap)
	copy(nb, w.buf)
	w.buf = nb
	return true
}

// Flush passes flushes through, except while a JSON body is being collected.
func (w *listWriter) Flush() {
	if w.mode == lwJSON || w.mode == lwFailed || w.status == 0 {
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *listWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish writes the filtered JSON body, or ends the filtered stream.
func (w *listWriter) finish() {
	if w.budget != nil {
		defer func() {
			w.budget.release(w.held)
			w.held = 0
			if w.ticket != 0 {
				w.budget.leave(w.ticket)
				w.ticket = 0
			}
		}()
	}
	switch w.mode {
	case lwJSON:
		out, err := listfilter.FilterJSON(make([]byte, 0, len(w.buf)), w.buf, anyList, w.allow)
		if err != nil {
			w.why = err.Error()
			break
		}
		h := w.Header()
		h.Set("Content-Length", strconv.Itoa(len(out)))
		w.ResponseWriter.WriteHeader(w.status)
		_, _ = w.ResponseWriter.Write(out)
		return
	case lwSSE:
		_ = w.sse.Close()
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		return
	case lwFailed:
	default:
		return
	}
	w.logger.Warn("list response could not be filtered; withheld", zap.String("reason", w.why))
	h := w.Header()
	h.Del("Content-Encoding")
	if w.busy {
		writeBusy(w.ResponseWriter, w.id)
		return
	}
	writeRPCError(w.ResponseWriter, http.StatusBadGateway, w.id, codeFilterFailed, "the MCP server's list response could not be filtered for this caller")
}
