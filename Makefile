# virt-pci — every target works on a fresh Debian machine (installs what it needs when root).
CARGO    ?= cargo
FEATURES ?= --features libvirt
BIN      := target/release/virt-pci

.PHONY: all build install deps toolchain demo test lint unit e2e bench clean samples deb

all: build

# Rust >= Cargo.toml's rust-version, or a message saying how to get it (rustup).
toolchain:
	@scripts/check-rust.sh

deps: toolchain
	@scripts/install-deps.sh

# Two binaries: virt-pci without libvirt (starts in ~1 ms) and virt-pci-libvirt,
# which virt-pci hands over to for libvirt invocations (src/cli/companion.rs).
build: deps
	$(CARGO) build --release $(FEATURES) --bin virt-pci-libvirt
	$(CARGO) build --release --bin virt-pci

PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 target/release/virt-pci target/release/virt-pci-libvirt $(DESTDIR)$(PREFIX)/bin/

# A Debian package (cargo-deb) of both binaries, the man pages and completions:
# target/debian/virt-pci_VERSION-1_ARCH.deb. tests/suites/60-deb.sh installs it (CI only).
deb: build
	@scripts/deb.sh

demo: build
	@scripts/demo.sh $(BIN)

# Re-convert samples/hosts/listings/*.txt into samples/hosts/*.json.
samples: build
	@scripts/make-samples.sh $(BIN)

lint: deps
	$(CARGO) fmt --check
	@python3 scripts/check-shape.py src
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
