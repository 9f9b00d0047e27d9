# gantry — make targets. `make dev` runs gantry on its embedded defaults;
# `make test` installs what the tests need (Debian packages, PostgreSQL
# started) and runs every test.
GO ?= go
BIN := bin/gantry

.PHONY: build dev test test-short vet fmt clean

# Static (it is also the agent that environments copy into containers) and
# stripped: a third smaller to copy into every new machine.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN) ./cmd/gantry

dev: build
	./$(BIN) server --dev

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "not gofmt-ed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: vet
	url="$$(./scripts/test-deps.sh)" && GANTRY_TEST_POSTGRES_URL="$$url" $(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

clean:
	rm -rf bin gantry-data
