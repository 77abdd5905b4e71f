package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

// Request bodies: a 2025-03-26 JSON-RPC batch passes through to a real server (the npm
// server-everything answers each element) and byte for byte to the echo upstream;
// malformed JSON gets the gateway's 400 -32700 and a body over max_body_size its 413,
// with or without Content-Length, neither reaching the upstream.
func TestRequestBodies(t *testing.T) {
	t.Parallel()
	npm := testenv.StartServerEverythingNPM(t, testenv.NPMStreamableHTTP)
	echo := startEchoUpstream(t)
	base, _ := gatewayFor(t, map[string]string{"npm": npm.URL, "echo": echo.MCP}, "\t\tmax_body_size 2KiB\n")
	c := newHTTPClient(t)

	t.Run("batch to server-everything", func(t *testing.T) {
		url := base + "/npm/mcp"
		sid, _ := initSession(t, c, url, "2025-03-26")
		resp, body := send(t, c, "POST", url, mcpHeader(sid, "2025-03-26"), `[`+
			`{"jsonrpc":"2.0","id":10,"method":"ping"},`+
			`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"none","progress":1}},`+
			`{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":2,"b":3}}}]`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("batch: %d %s", resp.StatusCode, body)
		}
		msgs := messages(t, resp, body)
		if len(msgs) != 2 {
			t.Errorf("batch answered with %d messages, want 2: %s", len(msgs), body)
		}
		if m := response(t, msgs, "10"); m.Error != nil || string(m.Result) != "{}" {
			t.Errorf("ping in batch: %+v", m)
		}
		if m := response(t, msgs, "11"); m.Error != nil || !strings.Contains(string(m.Result), "The sum of 2 and 3 is 5.") {
			t.Errorf("tools/call in batch: %s", m.Result)
		}
	})

	t.Run("batch to echo", func(t *testing.T) {
		batch := `[{"jsonrpc":"2.0","id":"a","method":"tools/list"}, {"jsonrpc":"2.0","id":"b","method":"prompts/list"}]`
		resp, body := send(t, c, "POST", base+"/echo/mcp", mcpHeader("", "2025-03-26"), batch)
		if resp.StatusCode != http.StatusOK ||
			string(body) != `[{"jsonrpc":"2.0","id":"a","result":{"echo":"tools/list"}},{"jsonrpc":"2.0","id":"b","result":{"echo":"prompts/list"}}]` {
			t.Errorf("batch to echo: %d %s", resp.StatusCode, body)
		}
		if got := echo.last(t); string(got.Body) != batch {
			t.Errorf("upstream got %q, want the batch unchanged", got.Body)
		}
	})

	t.Run("malformed JSON", func(t *testing.T) {
		n := echo.count()
		for _, body := range []string{`{"jsonrpc":"2.0","id":1,"method":`, `not json`, `[{"jsonrpc":"2.0","id":1,"method":"ping"},]`} {
			resp, rbody := send(t, c, "POST", base+"/echo/mcp", mcpHeader("", "2025-03-26"), body)
			wantRPCError(t, "malformed "+body, resp, rbody, http.StatusBadRequest, -32700, "null")
			gatewayMade(t, "malformed "+body, resp, rbody)
		}
		if got := echo.count(); got != n {
			t.Errorf("the upstream received %d malformed requests", got-n)
		}
	})

	t.Run("body over max_body_size", func(t *testing.T) {
		n := echo.count()
		big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"s":"` + strings.Repeat("a", 3000) + `"}}}`
		resp, rbody := send(t, c, "POST", base+"/echo/mcp", mcpHeader("", "2025-03-26"), big)
		wantRPCError(t, "3 KB with Content-Length", resp, rbody, http.StatusRequestEntityTooLarge, -32600, "null", "2048 bytes")
		gatewayMade(t, "413", resp, rbody)

		// Without Content-Length (chunked), the limit holds while reading.
		resp, rbody = sendReader(t, c, "POST", base+"/echo/mcp", mcpHeader("", "2025-03-26"), io.MultiReader(strings.NewReader(big)), -1)
		wantRPCError(t, "3 KB chunked", resp, rbody, http.StatusRequestEntityTooLarge, -32600, "null", "2048 bytes")

		// Exactly at the limit is fine.
		pad := 2048 - len(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"p":""}}`)
		exact := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"p":"` + strings.Repeat("b", pad) + `"}}`
		resp, rbody = send(t, c, "POST", base+"/echo/mcp", mcpHeader("", "2025-03-26"), exact)
		if len(exact) != 2048 || resp.StatusCode != http.StatusOK {
			t.Errorf("a %d-byte body: %d %s", len(exact), resp.StatusCode, rbody)
		}
		if got := echo.count(); got != n+1 {
			t.Errorf("the upstream received %d requests, want only the one at the limit", got-n)
		}
	})
}

// An upstream may answer before it has read the whole request body (here a 413 right
// after the headers). net/http's transport then returns the response while its write
// goroutine is still sending the body, so the body the gateway hands to the transport
// must stay valid after the handler returns; caddy, built with -race, reports it if the
// gateway recycles that memory while the transport still reads it.
func TestUpstreamAnswersBeforeReadingBody(t *testing.T) {
	t.Parallel()
	early, hangUp, done := startEarlyAnswerUpstream(t, `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"too big for me"}}`)
	base, caddy := gatewayFor(t, map[string]string{"early": early}, "\t\tmax_body_size 32MiB\n")
	c := newHTTPClient(t)

	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"s":"` + strings.Repeat("z", 16<<20) + `"}}}`
	resp, body := send(t, c, "POST", base+"/early/mcp", mcpHeader("", "2025-06-18"), big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(body) != `{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"too big for me"}}` {
		t.Errorf("want the upstream's own 413, got %d %s", resp.StatusCode, body)
	}
	hangUp <- struct{}{}
	select {
	case <-done:
	case <-time.After(requestTimeout):
		t.Fatalf("the upstream connection did not end")
	}
	if out := caddy.Output(); strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("caddy's race detector fired: the gateway reused the request body while the upstream transport was still reading it")
	}
}

// startEarlyAnswerUpstream accepts one connection at a time, reads the request
// headers, answers 413 with the given JSON body at once and, without reading the body,
// closes the connection when hangUp receives. done receives after each connection.
func startEarlyAnswerUpstream(t *testing.T, answer string) (url string, hangUp chan<- struct{}, done <-chan struct{}) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hang, fin := make(chan struct{}), make(chan struct{}, 16)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			func() {
				defer func() { fin <- struct{}{} }()
				defer conn.Close()
				// A small, fixed receive buffer: the transport cannot hand the whole body
				// to the kernel before the answer arrives.
				_ = conn.(*net.TCPConn).SetReadBuffer(4096)
				_ = conn.SetDeadline(time.Now().Add(requestTimeout))
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				fmt.Fprintf(conn, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(answer), answer)
				// The body is still being sent; hang up when the test says so.
				select {
				case <-hang:
				case <-stop:
				}
			}()
		}
	}()
	return "http://" + l.Addr().String() + "/mcp", hang, fin
}
