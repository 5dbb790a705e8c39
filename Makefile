# virt-pci — every target works on a fresh Debian machine (installs what it needs when root).
CARGO    ?= cargo
FEATURES ?= --features libvirt
BIN      := target/release/virt-pci

.PHONY: all build deps demo test lint unit e2e bench clean samples

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release $(FEATURES)

demo: build
	@scripts/demo.sh $(BIN)

# Re-convert samples/hosts/listings/*.txt into samples/hosts/*.json.
samples: build
	@scripts/make-samples.sh $(BIN)

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --all-targets $(FEATURES) -- -D warnings

# Both feature sets build; every test runs (unit, CLI, samples, corpus, schema, pre-commit).
test: deps lint
	$(CARGO) build
	$(CARGO) build $(FEATURES)
	@scripts/test.sh

e2e: deps
	@tests/e2e/run.sh

bench: deps
	@scripts/bench.sh

clean:
	$(CARGO) clean
