# The one command that runs every test: `make test`. CI (.ci/run) calls exactly this.
GO ?= go

.PHONY: test short deps vet unit bench build run

test: deps vet
	$(GO) test -race -count=1 -timeout 25m ./...

# The inner loop: pure and in-process tests only; nothing is built or started (well under a minute).
short:
	$(GO) test -short ./...

deps:
	bash scripts/test-deps.sh

vet:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './testdata/*'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

build:
	$(GO) build -o caddy ./cmd/caddy

run:
	$(GO) run ./cmd/caddy run --config caddyfile-examples/quickstart.Caddyfile

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
