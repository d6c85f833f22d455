# Lethe. `make run` starts the whole pipeline on the embedded default;
# `make test` runs every check CI runs.
SHELL   := /bin/bash
GO      ?= go
MODULES := pkg $(patsubst %/go.mod,%,$(sort $(wildcard services/*/go.mod)))
PKGS    := $(addsuffix /...,$(addprefix ./,$(MODULES)))
BINS    := ./services/devstack/cmd/lethe-dev ./services/lethectl ./services/orchestrator/cmd/orchestrator \
           ./services/accounts/cmd/accounts ./services/billing/cmd/billing ./services/emailanalytics/cmd/emailanalytics \
           ./services/recordings/cmd/recordings ./services/subprocessors/cmd/subprocessors ./services/subprocessors/cmd/vendor-standin \
           ./services/witness/cmd/lethe-witness

.PHONY: run build test bench bench-smoke bench-export bench-store chaos fuzz fmt vet modules rules proto vectors tidy clean

## run: build, seed and start the whole pipeline in one process (Ctrl-C stops it)
run: build
	./bin/lethe-dev

## build: every binary into ./bin
build:
	@mkdir -p bin
	$(GO) build -o bin/ $(BINS)

## test: gofmt, each module built on its own, go vet, the alert rules' tests, and go test -race
## over every module (a line per package, why each skipped test skipped, failures in full, a closing count)
test: fmt modules vet rules
	set -o pipefail; $(GO) test -race -count=1 -timeout 10m -json $(PKGS) | GOWORK=off $(GO) run scripts/testsummary/main.go

## bench: one run, one process (bench/, a module of its own: it brings Temporal): the bus's raw ceiling
## for the pipeline's messages, BENCH_N erasures (default 20,000) to verified certificates through the
## pipeline over in-memory systems (durability fast and strict), the same over the SQLite demo systems,
## an open-loop run at 200 requests/s, and the same erasures as Temporal workflows. Writes
## bench/results/<time>.json and .svg (throughput over time, latencies), compares with bench/baseline.json,
## and ends with `ratio=<pipeline:raw> rps=<requests/s> p99_ms=<latency> temporal_ratio=<lethe:temporal>`.
## BENCH_FLAGS adds flags (-bus nats,kafka -store sqlite,postgres -growth 1000,10000,100000; -h lists them).
BENCH_N     ?= 20000
BENCH_FLAGS ?=
bench:
	cd bench && GOWORK=off $(GO) run ./cmd/lethe-bench -n $(BENCH_N) -out results -baseline baseline.json $(BENCH_FLAGS)

## bench-smoke: what CI runs so the bench keeps working: the bench module vetted and tested, and a
## bench of 200 requests (every phase, small)
bench-smoke:
	@out=$$(gofmt -l bench); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	cd bench && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -race -count=1 ./...
	$(MAKE) bench BENCH_N=200 BENCH_FLAGS="-open-seconds 2 -out $${TMPDIR:-/tmp}/lethe-bench-smoke"

## bench-export: a person with a 1 GiB webinar recording exported through the whole stack in one
## process (streamed, encrypted, zipped, downloaded); prints the peak resident memory
bench-export:
	cd services/devstack && LETHE_EXPORT_RECORDING_MIB=1024 $(GO) test -count=1 -run TestExportLargeRecording -v .

## bench-store: the store at scale: 1,000,000 requests in SQLite (and PostgreSQL when
## LETHE_TEST_POSTGRES_DSN is set), the orchestrator's frequent queries, bytes per request
bench-store:
	cd services/orchestrator && $(GO) test -run '^$$' -bench Store -benchtime 200x -timeout 60m ./store/

## chaos: the parts as separate processes on a real nats-server, CHAOS_N requests (default 2000) sent
## while processes are killed, paused and the broker restarted; then every request must have ended with
## a verifying certificate, no effect doubled, no erased email left (scripts/chaos; exit 1 on a violation)
CHAOS_N ?= 2000
chaos: build
	CHAOS_N=$(CHAOS_N) CHAOS_NO_BUILD=1 scripts/chaos

## fuzz: every Go fuzz target (func FuzzXxx in pkg and services), one after the other, each for
## FUZZTIME (default 30s); FUZZ=regexp runs only the targets it matches (make fuzz FUZZ=Verify FUZZTIME=5m).
## A failing input is written to the package's testdata/fuzz/FuzzXxx/ (go test then runs it too).
## FUZZMINIMIZETIME bounds the minimizing of each new input (default 500x: a certificate is kilobytes,
## and the default 60s per input would leave a short run nothing to fuzz with)
FUZZTIME         ?= 30s
FUZZMINIMIZETIME ?= 500x
FUZZ             ?= .
fuzz:
	@targets=$$(grep -rHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' pkg services \
		| sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+).*#\1 \2#' | sort | grep -E " .*$(FUZZ)" || true); \
	total=$$(grep -c . <<<"$$targets"); [ -n "$$targets" ] || { echo "fuzz: no target matches $(FUZZ)"; exit 1; }; \
	n=0; failed=(); \
	while read -r dir name; do \
		n=$$((n+1)); echo "=== fuzz [$$n/$$total] $$name in ./$$dir for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$dir </dev/null \
			|| failed+=("$$dir $$name"); \
	done <<<"$$targets"; \
	if [ $${#failed[@]} -gt 0 ]; then printf 'FAIL fuzz: %s\n' "$${failed[@]}"; exit 1; fi; \
	echo "fuzz: $$total targets, no failure"

fmt:
	@out=$$(gofmt -l pkg services); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## rules: promtool check and test of deployments/prometheus/lethe.rules.yml (skips without promtool)
rules:
	@if command -v promtool >/dev/null; then \
		promtool check rules deployments/prometheus/lethe.rules.yml && \
		promtool test rules deployments/prometheus/tests/*.yml; \
	else \
		echo "SKIP promtool rule tests: promtool not installed (apt-get install prometheus)"; \
	fi

# A module that builds only inside the workspace hides a missing require or replace.
modules:
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) build ./...) || { echo "module $$m does not build on its own"; exit 1; }; done

## proto: regenerate pkg/gen from proto/ (installs buf and protoc-gen-go with go install)
proto:
	$(GO) install github.com/bufbuild/buf/cmd/buf@v1.75.0
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" buf generate

## vectors: write the test vectors of certificates (docs/spec/vectors: every kind of certificate with its
## keys, and invalid variants with the error a verifier must report) from pkg/proof/vectors, the same
## bytes on every run; `make test` fails when they drifted from the code
vectors:
	$(GO) run ./pkg/proof/vectors/cmd/vectors -out docs/spec/vectors

tidy:
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

clean:
	rm -rf bin data
