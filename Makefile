# Portcullis — see README.md. `make run` and `make test` are the contract.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/portcullis
DATA     ?= ./portcullis-data
# Empty: each fuzz target runs for its budget in scripts/fuzz.sh.
FUZZTIME ?=
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

.PHONY: all build bin run test deps unit fuzz bench bench-tunnel lint clean

all: bin

bin:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/portcullis

# Cross-compiles with CGO off: the agent ships to macOS and Windows laptops.
build: bin
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		echo "build $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o dist/portcullis-$$os-$$arch$$ext ./cmd/portcullis; \
	done

# Creates a demo CA in $(DATA) on first run and says what to do next.
run: bin
	@BIN=$(BIN) DATA=$(DATA) scripts/run.sh

# Installs missing test peers (as root, with apt), then vets, runs every
# test with the race detector, and a fuzz pass over every target (about 5
# minutes, most of it on the parsers of hostile keys, PKCS#12, CRLs, OCSP).
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

deps:
	@scripts/test-deps.sh

unit:
	$(GO) test -count=1 ./internal/...

# The fuzz pass alone; FUZZTIME=10m runs every target that long instead.
fuzz:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# CA benchmarks, then the tunnel against stunnel4 and nginx (8 to 10
# minutes in all; BENCHTIME scales it). See docs/benchmarks.md.
bench: bin
	@scripts/bench.sh

bench-tunnel: bin
	@scripts/bench-tunnel.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$$( $(GO) env GOPATH )/bin/staticcheck ./...

clean:
	rm -rf bin dist
