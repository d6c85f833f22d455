# Lethe. `make run` starts the whole pipeline on the embedded default;
# `make test` runs every check CI runs.
SHELL   := /bin/bash
GO      ?= go
MODULES := pkg $(patsubst %/go.mod,%,$(sort $(wildcard services/*/go.mod)))
PKGS    := $(addsuffix /...,$(addprefix ./,$(MODULES)))
BINS    := ./services/devstack/cmd/lethe-dev ./services/lethectl ./services/orchestrator/cmd/orchestrator \
           ./services/accounts/cmd/accounts ./services/billing/cmd/billing ./services/emailanalytics/cmd/emailanalytics \
           ./services/recordings/cmd/recordings ./services/subprocessors/cmd/subprocessors ./services/subprocessors/cmd/vendor-standin

.PHONY: run build test bench fmt vet modules rules proto tidy clean

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

## bench: the store at scale: 1,000,000 requests in SQLite (and PostgreSQL when
## LETHE_TEST_POSTGRES_DSN is set), the orchestrator's frequent queries, bytes per request
bench:
	cd services/orchestrator && $(GO) test -run '^$$' -bench Store -benchtime 200x -timeout 60m ./store/

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

tidy:
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

clean:
	rm -rf bin data
