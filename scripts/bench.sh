#!/bin/bash
# make bench: speed and scale of virt-pci against the tools users would pick
# instead (virt-xml, virt-xml-validate, xmllint, lspci, the Arch-wiki listing
# script), side by side in one run. Results: target/bench/results/*.json and
# BENCHMARKS.md (tables generated from the JSON). Not part of `make test`.
#
#   scripts/bench.sh [startup|patch|validate|list|scale|fleet]...   only those parts
#   (scale alone: issue 11's quadratic sizes, its own BENCHMARKS.md section)
#   scripts/bench.sh fleet     the fleet part alone (rewrites only its BENCHMARKS.md section)
#   BENCH_QUICK=1 scripts/bench.sh                       fast pass (dev only)
#   FEATURES=""  scripts/bench.sh                        skip the libvirt companion
#
# Inputs are generated under target/bench/ (fake sysfs trees of up to 16,384
# functions, ~1.5 GB; a 10 MiB domain; 1,000 domain files from libvirt's
# corpus + generated). The trees go to /dev/shm/virt-pci-bench (removed at the
# end; BENCH_KEEP=1 keeps them) or target/bench/trees. No
# real device is touched: the trees are read-only inputs for --root/lspci -A.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bench-only tools (not in scripts/install-deps.sh: `make test` needs none).
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v virt-xml >/dev/null || need+=(virtinst)
command -v lspci >/dev/null || need+=(pciutils)
command -v xmllint >/dev/null || need+=(libxml2-utils)
command -v virt-xml-validate >/dev/null || need+=(libvirt-clients)
command -v python3 >/dev/null || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bench: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
  else
    echo "bench: missing ${need[*]} (run as root once, or install them); those rows will say FAILED" >&2
  fi
fi
command -v hyperfine >/dev/null || { echo "bench: hyperfine is required" >&2; exit 2; }

FEATURES=${FEATURES---features libvirt}
# Built as `make build` builds them: virt-pci without libvirt (what users run),
# and, with the libvirt feature, the companion it hands over to for -c/--domain
# (src/cli/companion.rs). The companion is timed too, for reference: it maps
# libvirt.so and ~55 more shared libraries at every start.
echo "bench: cargo build --release (virt-pci) and --release $FEATURES (virt-pci-libvirt)" >&2
if [[ "$FEATURES" == *libvirt* ]]; then
  # shellcheck disable=SC2086
  cargo build --release $FEATURES --bin virt-pci-libvirt >&2
  export BENCH_BIN_PLAIN=target/release/virt-pci-libvirt
fi
cargo build --release --bin virt-pci >&2
export BENCH_BUILD="cargo build --release --bin virt-pci (as make build)"
exec python3 bench/run.py "$@"
