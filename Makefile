# Akahu → Parquet ETL. `make help` lists the targets.
GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEMO_OUT      ?= demo-out
# make bench: the end-to-end benchmarks (pipeline/, a whole run per iteration, and
# tests/duckdb's naive-script comparison) run BENCHTIME iterations; every other
# package's run for BENCHTIME_MICRO (Go's default 1s, scaled up by go test).
# Packages run one at a time (-p 1) so that none steals another's CPU. The fleet
# benchmark (pipeline's BenchmarkFleet, see docs/scaling.md) runs the populations in
# FLEET_USERS (e.g. FLEET_USERS=2000 for a shorter run), the mixes in FLEET_MIX and
# the latencies in FLEET_LATENCY (default 50ms,cpu: latency-bound, then CPU-bound),
# FLEET_BENCHTIME iterations each: one, as an iteration is a whole fleet's backfill
# and daily run (at 20,000 users and 50 ms, most of an hour) whose requests, bytes
# and operations are deterministic and whose latency-bound wall time moves by ~1%.
# Within an iteration the daily run is run FLEET_DAILY_PASSES times (default 3, from
# the backfill's bucket each time): its peak RSS is the passes' median.
BENCHTIME       ?= 5x
FLEET_BENCHTIME ?= 1x
BENCHTIME_MICRO ?= 1s
BENCH_TIMEOUT   ?= 24h
FLEET_USERS     ?= 2000,20000
FLEET_MIX       ?= sparse,dense
FLEET_LATENCY   ?= 50ms,cpu
FLEET_DAILY_PASSES ?= 3
BENCH_E2E       := github.com/akahu-etl/akahu-parquet/pipeline
BENCH_PKGS       = $(filter-out $(BENCH_E2E),$(shell $(GO) list $(PKGS)))
PKGS          := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# bin/extract is built once and reused by demo. As in the Dockerfile: CGO_ENABLED=0 (a
# static binary; no C compiler run for the cgo parts of net, os/user and runtime/cgo on a
# first build) and -s -w (no DWARF to write at link time; go run did the same).
.PHONY: build
build: ## Build bin/extract (static, without debug info)
	CGO_ENABLED=0 $(GO) build -ldflags='-s -w' -o bin/extract ./cmd/extract

# make image: the container image without a container engine or a base image
# (tools/image, its own module): the static binary for linux/IMAGE_ARCH, built as the
# Dockerfile builds it, plus a CA bundle from this machine (Debian's ca-certificates)
# and the nonroot user, as a docker-loadable tarball. Its timestamps are the commit's
# (SOURCE_DATE_EPOCH), so the same commit gives the same digest.
IMAGE_ARCH    ?= amd64
IMAGE_TAG     ?= akahu-parquet/extract:dev
IMAGE_SOURCE  ?=
IMAGE_EPOCH   := $(shell git log -1 --format=%ct 2>/dev/null)

.PHONY: image
image: ## Build bin/extract-image.tar (linux/IMAGE_ARCH) without a container engine; prints its digest
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags='-s -w' -o bin/extract-linux-$(IMAGE_ARCH) ./cmd/extract
	cd tools/image && $(GO) build -o ../../bin/build-image .
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$(IMAGE_EPOCH)} ./bin/build-image \
		--binary bin/extract-linux-$(IMAGE_ARCH) --arch $(IMAGE_ARCH) --tag $(IMAGE_TAG) \
		--out bin/extract-image.tar --source "$(IMAGE_SOURCE)" --revision "$$(git rev-parse HEAD 2>/dev/null)"

.PHONY: demo
demo: build ## Run the demo: built-in fake Akahu, dataset written to ./demo-out
	./bin/extract demo --out $(DEMO_OUT)

.PHONY: test
test: ## Run every test with -race (offline), then the DuckDB read-back and image modules
	@test -d tests/sdk/node_modules/akahu || (cd tests/sdk && npm ci --no-audit --no-fund)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	cd tests/duckdb && $(GO) test -count=1 -timeout 15m ./...
	cd tools/image && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 15m ./...

.PHONY: test-short
test-short: ## Run the main module's tests without -race
	$(GO) test -count=1 $(PKGS)

.PHONY: fuzz
fuzz: ## Run each fuzz target briefly (FUZZTIME=10s)
	./scripts/fuzz.sh $(or $(FUZZTIME),10s)

.PHONY: bench
bench: ## Benchmarks one package at a time (-p 1): end-to-end BENCHTIME=5x (fleet: FLEET_BENCHTIME=1x per FLEET_USERS, FLEET_MIX, FLEET_LATENCY), others BENCHTIME_MICRO=1s
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME_MICRO) -timeout $(BENCH_TIMEOUT) $(BENCH_PKGS)
	$(GO) test -p 1 -run '^$$' -bench '^Benchmark([^F]|F[^l])' -benchmem -benchtime $(BENCHTIME) -timeout $(BENCH_TIMEOUT) $(BENCH_E2E)
	FLEET_USERS=$(FLEET_USERS) FLEET_MIX=$(FLEET_MIX) FLEET_LATENCY=$(FLEET_LATENCY) FLEET_DAILY_PASSES=$(FLEET_DAILY_PASSES) $(GO) test -p 1 -run '^$$' -bench '^BenchmarkFleet$$' -benchmem -benchtime $(FLEET_BENCHTIME) -timeout $(BENCH_TIMEOUT) $(BENCH_E2E)
	cd tests/duckdb && $(GO) test -p 1 -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout $(BENCH_TIMEOUT) ./...

.PHONY: lint
lint: ## gofmt, go vet and a pinned staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	cd tools/image && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

.PHONY: clean
clean: ## Remove build output and the demo dataset
	rm -rf bin $(DEMO_OUT)
