#!/bin/bash
# A fresh Debian has rustc 1.63, older than Cargo.toml's rust-version: `make`
# must stop before building, say which Rust it needs and give rustup's line.
# Fake rustc/cargo first on PATH (they only print a version / log a call);
# make itself and scripts/check-rust.sh are the real ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
mkdir "$tmp/bin"
printf '#!/bin/sh\necho "rustc 1.63.0"\n' >"$tmp/bin/rustc"
printf '#!/bin/sh\necho "cargo $*" >>"%s/cargo-calls"\necho "cargo 1.65.0"\n' "$tmp" >"$tmp/bin/cargo"
chmod +x "$tmp/bin/rustc" "$tmp/bin/cargo"
for target in build demo test deb; do
  set +e; PATH=$tmp/bin:$PATH make "$target" >"$tmp/out" 2>&1; rc=$?; set -e
  if [ "$rc" -ne 0 ] && grep -q "error: virt-pci needs Rust $need or newer; this rustc is 1.63.0" "$tmp/out" \
     && grep -qF "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y" "$tmp/out" \
     && [ ! -e "$tmp/cargo-calls" ]; then
    echo "  ok  make $target with rustc 1.63: stops, names Rust $need and rustup"
  else echo "FAIL: make $target (exit $rc):"; cat "$tmp/out"; cat "$tmp/cargo-calls" 2>/dev/null; fail=1; fi
done
# No toolchain at all.
set +e; PATH=/usr/bin:/bin make build >"$tmp/out" 2>&1; rc=$?; set -e
if [ -x /usr/bin/cargo ] || [ -x /bin/cargo ]; then echo "  --  a cargo in /usr/bin: skipped the no-toolchain case"
elif [ "$rc" -ne 0 ] && grep -q "no cargo/rustc is on PATH" "$tmp/out"; then echo "  ok  make build without cargo: says to install Rust"
else echo "FAIL: make build without cargo (exit $rc):"; cat "$tmp/out"; fail=1; fi
# The real toolchain passes.
scripts/check-rust.sh && echo "  ok  this machine's rustc ($(rustc --version)) passes"
exit $fail
