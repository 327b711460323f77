# verifyd: `make run` starts the service, `make test` proves it.
# `make run` reads .env when present (copy .env.example to start one).

GO      ?= go
BIN     := bin/verifyd
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: run build test race fuzz vet staticcheck bench soak pumping clean FORCE

run:
	@set -a; [ -f .env ] && . ./.env; set +a; exec $(GO) run ./cmd/verifyd

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/verifyd

test: vet staticcheck
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

# Pinned by go.mod's tool directive: the same version for everyone and CI.
staticcheck:
	$(GO) tool staticcheck ./...

# A short fuzzing pass over everything that parses user input.
fuzz:
	$(GO) test -run=XXX -fuzz=FuzzParsePhone -fuzztime=30s ./server/verify
	$(GO) test -run=XXX -fuzz=FuzzParseCode -fuzztime=15s ./server/verify
	$(GO) test -run=XXX -fuzz=FuzzAPI -fuzztime=30s ./server

# Load run against the real binary and the Verify stand-in over TLS, on
# loopback; prints one table (see README, Performance). Not part of `make test`.
bench: build bin/twilio-standin bin/verifyd-bench
	$(GO) test -run=XXX -bench=. -benchmem ./server ./server/verify
	bin/verifyd-bench -json bin/bench.json -cpuprofile bin/verifyd.cpu.pprof

# Five minutes of mixed traffic against the real binary with Twilio failing,
# Twilio hanging and Redis restarted; prints answers by kind, what was lost,
# RSS and goroutines (see README, Reliability). Not part of `make test`.
soak: build bin/twilio-standin bin/verifyd-soak
	bin/verifyd-soak $(SOAK_FLAGS)

# The attackers an SMS-pumping gang uses, against verifyd's real pipeline and
# the Verify stand-in on a fake clock; prints texts out, their cost and the
# honest people who verified (see README, Abuse and fraud protection). Not
# part of `make test`.
pumping: bin/verifyd-pumping
	bin/verifyd-pumping $(PUMPING_FLAGS)

# The tools, built from cmd/ every time (go build knows what is current).
bin/twilio-standin bin/verifyd-bench bin/verifyd-soak bin/verifyd-pumping: bin/%: FORCE
	$(GO) build -o $@ ./cmd/$*

clean:
	rm -rf bin
