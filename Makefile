# gantry — make targets. `make dev` runs gantry on its embedded defaults;
# `make test` installs what the tests need (Debian packages, PostgreSQL
# started, staticcheck), vets (go vet, staticcheck, gofmt) and runs every
# test.
GO ?= go
BIN := bin/gantry

.PHONY: build dev deps test test-short vet fmt clean

# Static (it is also the agent that environments copy into containers) and
# stripped: a third smaller to copy into every new machine.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN) ./cmd/gantry

dev: build
	./$(BIN) server --dev

# staticcheck is installed (pinned) by scripts/test-deps.sh into GOBIN, or
# $(go env GOPATH)/bin when GOBIN is unset.
STATICCHECK ?= $(or $(shell $(GO) env GOBIN),$(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin)/staticcheck

vet:
	$(GO) vet ./...
	@test -x "$(STATICCHECK)" || { echo "staticcheck not found at $(STATICCHECK): run scripts/test-deps.sh"; exit 1; }
	"$(STATICCHECK)" ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "not gofmt-ed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# test-deps.sh installs and starts what the tests need (staticcheck for
# vet included) and prints the PostgreSQL URL last; `make test` runs it once,
# then vet, then the tests. The prerequisites run in this order (the file is
# .NOTPARALLEL), and `make -n test` is a real dry run.
.NOTPARALLEL:

deps:
	@mkdir -p bin
	./scripts/test-deps.sh > bin/test-postgres-url

test: deps vet
	GANTRY_TEST_POSTGRES_URL="$$(tail -n 1 bin/test-postgres-url)" $(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

clean:
	rm -rf bin gantry-data
