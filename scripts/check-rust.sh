#!/bin/bash
# A make prerequisite: is there a Rust toolchain at least as new as Cargo.toml's
# rust-version? Debian bookworm's own rustc (1.63) is not; without this check
# the build fails deep inside cargo with messages about unknown editions or
# features. Says what to install and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)
rustup_line="curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y"
advice() {
  echo "  install a current toolchain with rustup (as the user who builds):" >&2
  echo "    $rustup_line" >&2
  echo "  then open a new shell (or run: . \"\$HOME/.cargo/env\") and run make again." >&2
  echo "  (Debian's rustc/cargo packages are too old; rustup installs to ~/.cargo, not /usr.)" >&2
}
if ! command -v "${CARGO:-cargo}" >/dev/null || ! command -v rustc >/dev/null; then
  echo "error: virt-pci needs Rust $need or newer, and no cargo/rustc is on PATH" >&2
  advice; exit 1
fi
have=$(rustc --version | awk '{print $2}')
older() { # $1 < $2 (numeric, dot-separated)
  [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t. -k1,1n -k2,2n -k3,3n | head -1)" = "$1" ]
}
if older "${have%%-*}" "$need"; then
  echo "error: virt-pci needs Rust $need or newer; this rustc is $have ($(command -v rustc))" >&2
  advice; exit 1
fi
