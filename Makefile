# Rampart build, test and benchmark entry points. `make run` and `make test` are the two
# commands a new user needs; everything else is for developers.

GO        ?= go
BIN       := bin/rampart
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
PKGS      := ./...
FUZZTIME  ?= 150000x
BENCHTIME ?= 1s
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build run test unit race fuzz fuzz-short bench lint fmt vet staticcheck clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/rampart

# Runs the broker on its embedded safe default: MQTT on 127.0.0.1:1883, WebSocket on
# 127.0.0.1:8083, data in ./data.
run: build
	./$(BIN) serve

# Everything CI checks: formatting, vet, staticcheck, the whole suite under the race
# detector, and a short bounded run of every fuzz target.
test: lint race fuzz-short

unit:
	$(GO) test -count=1 $(PKGS)

race:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Short fuzz pass used by `make test`: each target FUZZTIME, default 150000 executions (a
# count, not a duration: see scripts/fuzz.sh on the Go 1.26 fuzz deadline race).
fuzz-short:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Longer fuzzing for developers: make fuzz FUZZTIME=10m
fuzz:
	FUZZTIME=$(if $(filter 150000x,$(FUZZTIME)),5m,$(FUZZTIME)) scripts/fuzz.sh

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $(PKGS)

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

clean:
	rm -rf bin
