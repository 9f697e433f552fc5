# fastsocks: the two commands users need are `make run` and `make test`.
GO       ?= go
BIN      := bin/fastsocks
LISTEN   ?= 127.0.0.1:1080
FUZZTIME ?= 60s
# Tools the tests drive as independent peers; installed where missing.
TEST_TOOLS := curl tinyproxy

# A small allow list for trying fastsocks out: common developer registries.
RUN_ALLOW := github.com api.github.com codeload.github.com '*.githubusercontent.com' \
	pypi.org files.pythonhosted.org registry.npmjs.org crates.io static.crates.io index.crates.io

.PHONY: all build run test deps lint fuzz bench soak clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/fastsocks

run: build
	@echo "fastsocks on $(LISTEN); try:"
	@echo "  curl --proxy socks5h://$(LISTEN) https://github.com/"
	@echo "  ALL_PROXY=socks5h://$(LISTEN) <tool>      (SOCKS5)"
	@echo "  HTTPS_PROXY=http://$(LISTEN) <tool>       (HTTP CONNECT, same port)"
	./$(BIN) --listen $(LISTEN) $(foreach p,$(RUN_ALLOW),--allow $(p))

# deps installs what the tests need on a fresh machine: the Go modules and
# the command-line peers (curl, tinyproxy) the end-to-end tests drive.
deps:
	@missing=""; for t in $(TEST_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	$(GO) mod download

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps lint
	$(GO) test -race -timeout 30m ./...

# fuzz runs every fuzz target for FUZZTIME each (go test allows one target
# per run, so they run in turn).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# bench runs the load generator (fastsocks vs a goroutine-per-connection
# baseline vs direct loopback), then the codec and policy micro-benchmarks.
# e.g. make bench BENCHFLAGS=--quick
BENCHFLAGS ?=
bench:
	$(GO) run ./bench $(BENCHFLAGS)
	$(GO) test -run '^$$' -bench . -benchmem ./proto/... ./policy/...

# soak runs a mixed load (churn, long-lived tunnels, HTTP CONNECT,
# refusals) for SOAKTIME and prints RSS, fds and goroutines every 10 s,
# then whether they stayed flat. e.g. make soak SOAKTIME=30m
SOAKTIME ?= 10m
SOAKFLAGS ?=
soak:
	$(GO) run ./bench soak --duration $(SOAKTIME) $(SOAKFLAGS)

clean:
	rm -rf bin
