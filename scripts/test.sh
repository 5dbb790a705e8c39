#!/bin/bash
# Every test: unit and CLI tests with and without libvirt, plus the suites
# that need system tools (corpus, schema, pre-commit) — each script under
# tests/suites/ runs in order and must exit 0. Ends with one closing line:
# "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed_runs=0
run() { echo "== $*"; "$@" 2>&1 | tee -a "$log"; local rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || failed_runs=$((failed_runs + 1)); }

# libvirt's own test data (Debian source package; adds bookworm's deb-src
# entry when root). Several Rust tests read it, so it comes first.
echo "== scripts/fetch-corpus.sh"
if ! scripts/fetch-corpus.sh; then
  echo "cannot fetch libvirt's corpus (tests/corpus); run as root once, or see scripts/fetch-corpus.sh"
  failed_runs=$((failed_runs + 1))
fi
run cargo test
run cargo test --features libvirt
suites_passed=0; suites_failed=0
for s in tests/suites/*.sh; do
  [ -e "$s" ] || continue
  echo "== $s"
  if bash "$s"; then suites_passed=$((suites_passed + 1)); else suites_failed=$((suites_failed + 1)); echo "SUITE FAILED: $s"; fi
done
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
passed=$((passed + suites_passed)); failed=$((failed + suites_failed))
[ "$failed_runs" -gt 0 ] && [ "$failed" -eq 0 ] && failed=$failed_runs
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$failed_runs" -eq 0 ]
