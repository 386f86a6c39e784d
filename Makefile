# Lifeboat — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go

BIN := bin
CMDS := lifeboat-agent agentctl lifeboat-server lifeboat
TOOLS := fiocompare benchrepl

.PHONY: help generate check-generate build package test vet fmt demo demo-tracker bench-tracker bench-replication bench-recovery bench-failback bench-freeze bench-drill deps console-screenshots clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the Debian packages the tests and demo need, if missing, and mount bpffs (as root)
	@if [ "$$(id -u)" -eq 0 ]; then ./scripts/install-deps.sh; else echo "deps: not root: nothing installed (kernel tests skip, make demo needs root)"; fi

generate: ## rebuild the BPF objects and Go bindings from bpf/*.c (installs clang if missing)
	@command -v clang >/dev/null && test -f /usr/include/bpf/bpf_helpers.h || ./scripts/install-deps.sh clang
	$(GO) generate ./bpf/

check-generate: generate ## fail if the committed BPF objects differ from the sources
	@git diff --exit-code --stat -- bpf/ || { echo "bpf/: generated files are out of date: run 'make generate' and commit"; exit 1; }

# The version every binary prints with --version and exports as
# lifeboat_build_info: scripts/version.sh (git describe, else
# 0.0.0-dev+COMMIT; a plain go build says "devel").
VERSION ?= $(shell ./scripts/version.sh)
LDFLAGS := -X github.com/lifeboat-dr/lifeboat/internal/buildinfo.Version=$(VERSION)

build: ## build the binaries into bin/ (VERSION=x.y.z; default from git describe)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(CMDS)) $(addprefix ./internal/cmd/,$(TOOLS))

GOFILES = $$(git ls-files '*.go' ':!:bpf/*_bpfel.go')
IMPORT_GROUPS := -s standard -s default -s "prefix(github.com/lifeboat-dr/lifeboat)"

vet: ## gofmt, import groups (gci), go vet, staticcheck, and go vet of the Windows build
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	@out=$$($(GO) tool gci list $(IMPORT_GROUPS) $(GOFILES)); if [ -n "$$out" ]; then echo "imports not grouped std / other / lifeboat (make fmt): $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	GOOS=windows $(GO) vet ./...

fmt: ## gofmt and group the imports of every Go file
	gofmt -w $(GOFILES)
	$(GO) tool gci write $(IMPORT_GROUPS) $(GOFILES)

package: ## .deb and .rpm of lifeboat-agent and lifeboat-server, and the agent's Windows .msi, into dist/ (VERSION=x.y.z; default from git describe)
	GO=$(GO) ./scripts/package.sh

test: deps vet ## run every test (kernel tests need root; with CI=true they fail instead of skipping)
	$(GO) test -race -count=1 -timeout 25m ./...

demo: deps build ## the main job end to end: replicate ext4 under fio, cut a point, fail over, verify (STORE=azurite: target storage in Azurite)
	./scripts/demo.sh

demo-tracker: build ## track a loop device while fio writes, and compare what fio wrote with what was tracked
	./scripts/demo-tracker.sh

bench-tracker: build ## fio with the tracker attached and detached, on zram and loop (see docs/PERFORMANCE.md)
	./scripts/bench-tracker.sh

bench-replication: build ## churn, RPO lag, initial sync and agent memory (see docs/PERFORMANCE.md)
	./scripts/bench-replication.sh

bench-recovery: ## materialize a point of a 10 GiB disk vs a full copy, on ext4 and reflink XFS (see docs/PERFORMANCE.md)
	./scripts/bench-recovery.sh

bench-failback: build ## failback bytes sent vs bytes that differ, scattered 4 KiB changes (see docs/PERFORMANCE.md)
	./scripts/bench-failback.sh

bench-freeze: build ## freeze time of app-consistent points under a fio writer, p50/p99 (see docs/PERFORMANCE.md)
	./scripts/bench-freeze.sh

bench-drill: ## boot-verified test failover of the real test guest: command to ready and to verified, TCG (see docs/PERFORMANCE.md)
	flock /tmp/lifeboat-kernel.lock env LIFEBOAT_BENCH_DRILL=$${RUNS:-3} go test ./e2e -run '^TestBenchDrill$$' -count=1 -v -timeout 30m

.PHONY: chaos
chaos: deps ## fault injection (root, eBPF, loop devices): kill -9, stopped server, full cache, scale-out move...; prints each case's time to recover
	LIFEBOAT_CHAOS=full CI=true $(GO) test -count=1 -v -timeout 30m -run '^TestChaos$$' ./e2e

console-screenshots: ## regenerate docs/console/*.png from the console's browser test (needs chromium: make deps)
	mkdir -p docs/console && LIFEBOAT_SCREENSHOTS=$(CURDIR)/docs/console CI=true $(GO) test -count=1 -run TestConsoleInABrowser ./server/

clean: ## remove build output
	rm -rf $(BIN) dist

bench-azure: ## apply throughput, CPU per GiB and materialize cost against Azurite (see docs/PERFORMANCE.md)
	LIFEBOAT_BENCH_AZURE=1 $(GO) test ./store/azblob -run TestBenchAzurite -count=1 -v -timeout 30m

.PHONY: man completions
man: build ## man pages of the four programs (a page per command, cobra/doc) into bin/man/; make package ships them
	./scripts/cli-docs.sh $(BIN) $(BIN)

completions: man ## bash, zsh and fish completion scripts of the four programs into bin/completions/ (made with the man pages)
