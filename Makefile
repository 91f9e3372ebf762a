# Mailgate — see README.md. `make run` starts the gateway on embedded
# defaults; `make test` runs the whole suite against the local PostgreSQL.

GO        ?= go
BIN       ?= bin/mailgate
PKGS      ?= ./...
TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: run test build lint bench fmt tidy clean

run: ## mailgate dev: local database, captured mail, demo tenant and token
	$(GO) run ./app/cmd/mailgate dev

test: ## the whole suite, with the race detector, against real PostgreSQL and SMTP
	$(GO) test $(TEST_FLAGS) $(PKGS)

build: ## a static binary in bin/
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./app/cmd/mailgate

lint: ## formatting and vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

bench: ## benchmarks; results are recorded in docs/benchmarks.md
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m $(PKGS) | tee bench.out

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin bench.out
