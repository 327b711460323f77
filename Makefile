# verifyd: `make run` starts the service, `make test` proves it.
# `make run` reads .env when present (copy .env.example to start one).

GO      ?= go
BIN     := bin/verifyd
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: run build test race fuzz vet clean

run:
	@set -a; [ -f .env ] && . ./.env; set +a; exec $(GO) run ./cmd/verifyd

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/verifyd

test: vet
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

# A short fuzzing pass over everything that parses user input.
fuzz:
	$(GO) test -run=XXX -fuzz=FuzzParsePhone -fuzztime=30s ./server/verify
	$(GO) test -run=XXX -fuzz=FuzzParseCode -fuzztime=15s ./server/verify
	$(GO) test -run=XXX -fuzz=FuzzAPI -fuzztime=30s ./server

clean:
	rm -rf bin
