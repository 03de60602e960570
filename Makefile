# Akahu → Parquet ETL. `make help` lists the targets.
GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEMO_OUT      ?= demo-out
BENCHTIME     ?= 1x
PKGS          := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/extract
	$(GO) build -o bin/extract ./cmd/extract

.PHONY: demo
demo: ## Run the demo: built-in fake Akahu, dataset written to ./demo-out
	$(GO) run ./cmd/extract demo --out $(DEMO_OUT)

.PHONY: test
test: ## Run every test with -race (offline), then the DuckDB read-back module
	@test -d tests/sdk/node_modules/akahu || (cd tests/sdk && npm ci --no-audit --no-fund)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	cd tests/duckdb && $(GO) test -count=1 -timeout 15m ./...

.PHONY: test-short
test-short: ## Run the main module's tests without -race
	$(GO) test -count=1 $(PKGS)

.PHONY: fuzz
fuzz: ## Run each fuzz target briefly (FUZZTIME=10s)
	./scripts/fuzz.sh $(or $(FUZZTIME),10s)

.PHONY: bench
bench: ## Run the benchmarks and print their figures (-benchmem)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

.PHONY: lint
lint: ## gofmt, go vet and a pinned staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

.PHONY: clean
clean: ## Remove build output and the demo dataset
	rm -rf bin $(DEMO_OUT)
