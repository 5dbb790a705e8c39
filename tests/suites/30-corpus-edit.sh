#!/bin/bash
# add/remove over libvirt 9.0's own domain corpus (~1,800 files): byte-exact
# round trips, domain.rng still passing, remove --all taking exactly the PCI
# hostdevs. Fetches the corpus first on a fresh machine; the counts are
# printed by the Rust test (tests/it/corpus_edit.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/fetch-corpus.sh >/dev/null
if VIRT_PCI_CORPUS=require cargo test -q --test it corpus_edit:: -- --nocapture 2>&1 | tee /tmp/corpus-edit.$$ | grep -oE 'corpus-edit: .*|test result.*|panicked.*|failures.*' ; then :; fi
if grep -q 'test result: ok' /tmp/corpus-edit.$$; then
  rm -f /tmp/corpus-edit.$$; echo "PASS corpus-edit"
else
  cat /tmp/corpus-edit.$$; rm -f /tmp/corpus-edit.$$; echo "FAIL corpus-edit"; exit 1
fi
