# Mailgate — see README.md. `make run` starts the gateway on embedded
# defaults; `make test` runs the whole suite against the local PostgreSQL.

GO        ?= go
BIN       ?= bin/mailgate
PKGS      ?= ./...
# nomsgpack leaves gin's MessagePack binding (ugorji/go/codec) out of the
# binary: the gateway never speaks MessagePack, and it is a fifth of the size
# (docs/binary-size.md). Tests build with the same tags as the release.
GOTAGS    ?= nomsgpack
TEST_FLAGS ?= -race -count=1 -timeout 15m -tags $(GOTAGS)

# What `mailgate version` reports, stamped into the binary by `make build`.
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
STAMP       = github.com/mailgate/mailgate/app
LDFLAGS    ?= -X $(STAMP).version=$(VERSION) -X $(STAMP).commit=$(COMMIT) -X $(STAMP).buildDate=$(BUILD_DATE)

FUZZTIME ?= 30s
# package:target pairs run by `make fuzz`; each has a committed seed corpus
# under its package's testdata/fuzz, which `make test` also runs.
FUZZ_TARGETS = domain:FuzzNormalizeAddress domain:FuzzCheckHeaderText domain:FuzzParseReferences \
	adapters/httpapi:FuzzDecodeJSON adapters/httpapi:FuzzDecodeXML adapters/httpapi:FuzzDecodeForm adapters/httpapi/wire:FuzzServerOwnedFilter \
	adapters/mailbuild:FuzzBuild adapters/mailbuild:FuzzQuotedPrintable adapters/mailbuild:FuzzNormalizeLineEndings adapters/smtprelay:FuzzDotStuffed \
	adapters/inbound:FuzzParseDSN adapters/inbound:FuzzParseARF adapters/inbound:FuzzParseInboundMIME

.PHONY: run test build lint bench bench-short fuzz check-deploy promtool vulncheck reliability reliability-short fmt tidy clean

run: ## mailgate dev: local database, captured mail, demo tenant and token
	$(GO) run -tags $(GOTAGS) ./app/cmd/mailgate dev

test: ## the whole suite, with the race detector, against real PostgreSQL and SMTP
	$(GO) test $(TEST_FLAGS) $(PKGS)

# The fault suite runs the real binary as separate API and worker processes
# against a PostgreSQL cluster of its own; it writes docs/reliability.md.
RELIABILITY_FLAGS ?= -tags reliability -count=1 -v

reliability: ## fault suite, full size (a few thousand messages a scenario, 5-minute soak)
	MAILGATE_RELIABILITY_SCALE=full $(GO) test $(RELIABILITY_FLAGS) -timeout 90m ./reliability/

# The short run's table goes to bin/, so CI never overwrites the full run's
# docs/reliability.md.
reliability-short: ## fault suite, CI size (a few hundred messages a scenario, 30 s soak)
	mkdir -p bin && MAILGATE_RELIABILITY_SCALE=short MAILGATE_RELIABILITY_REPORT=$(CURDIR)/bin/reliability-short.md $(GO) test $(RELIABILITY_FLAGS) -timeout 20m ./reliability/

build: ## a static binary in bin/, stamped with VERSION, COMMIT and BUILD_DATE
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(GOTAGS) -ldflags "$(LDFLAGS)" -o $(BIN) ./app/cmd/mailgate

# golangci-lint holds the dependency rule (depguard), error wrapping and
# comparison (errorlint) and no package-level state (gochecknoglobals); the
# rules are in .golangci.yaml. Installed into bin/tools at a pinned version
# through the Go module proxy, like promtool.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(CURDIR)/bin/tools/golangci-lint

lint: $(GOLANGCI_LINT) ## formatting, vet, and the fences of .golangci.yaml
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(GOTAGS) $(PKGS)
	$(GO) vet -tags $(GOTAGS),reliability ./reliability/
	$(GOLANGCI_LINT) run $(PKGS)

$(GOLANGCI_LINT):
	GOBIN=$(dir $(GOLANGCI_LINT)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

bench: ## benchmarks and the delivery and accept plots; results are recorded in docs/benchmarks.md
	@# Not piped through tee: a pipe would hide a failing benchmark's status.
	$(GO) test -tags $(GOTAGS) -run '^$$' -bench . -benchmem -count=1 -timeout 60m $(PKGS) > bench.out 2>&1; \
		status=$$?; cat bench.out; exit $$status
	cd tools/benchplot && $(GO) run . -in ../../bench.out -out ../../docs/benchmarks-delivery.png
	cd tools/benchplot && $(GO) run . -mode accept -in ../../bench.out -out ../../docs/benchmarks-accept.png

# Every benchmark once at toy sizes, so CI catches one that no longer runs
# (its figures mean nothing at these sizes); the output goes to bin/.
bench-short: ## every benchmark once at small sizes (CI), output in bin/bench-short.out
	mkdir -p bin && MAILGATE_BENCH_MESSAGES=200 MAILGATE_BENCH_BACKLOG=2000 MAILGATE_BENCH_CONCURRENCY=4 MAILGATE_BENCH_ROUNDS=1 MAILGATE_BENCH_PHASE=1s \
		$(GO) test -tags $(GOTAGS) -run '^$$' -bench . -benchtime=1x -count=1 -timeout 20m $(PKGS) > bin/bench-short.out 2>&1; \
		status=$$?; cat bin/bench-short.out; exit $$status

# A short fuzz run can end with "context deadline exceeded" when the engine
# can't stop a worker in time; that is retried once. A real finding is saved
# under testdata/fuzz and fails the retry too, since the corpus runs first.
fuzz: ## each fuzz target for FUZZTIME (CI runs a short pass)
	@set -e; for spec in $(FUZZ_TARGETS); do \
		pkg=$${spec%%:*}; target=$${spec##*:}; \
		echo "== $$target ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./$$pkg || \
		$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./$$pkg; \
	done

# promtool lints the alert rules and runs their unit tests. It is built from
# the same Prometheus module version the deploy checks parse PromQL with
# (deploy/check/go.mod), through the Go module proxy, checksummed by go.sum's
# database, so a fresh machine gets the same binary.
PROMTOOL_VERSION ?= v0.316.0
PROMTOOL ?= $(CURDIR)/bin/tools/promtool

promtool: $(PROMTOOL) ## install promtool into bin/tools

$(PROMTOOL):
	GOBIN=$(dir $(PROMTOOL)) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

check-deploy: $(PROMTOOL) ## Helm chart (rendered and strictly decoded), dashboard and alert PromQL, alert rule lint and unit tests (promtool), Dockerfile lint; deploy/check is its own module
	cd deploy/check && npm ci --no-audit --no-fund
	cd deploy/check && node lint-dockerfile.mjs ../../Dockerfile
	cd deploy/check && PROMTOOL=$(PROMTOOL) PROMTOOL_VERSION=$(PROMTOOL_VERSION) $(GO) test -count=1 ./...

vulncheck: ## govulncheck against golang.org/x/vulndb through the module proxy (cached; skipped with a message when unreachable)
	.ci/govulncheck

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin bench.out
