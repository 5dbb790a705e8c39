#!/bin/bash
# The pre-commit hook for real: pre-commit from PyPI in a virtualenv, a
# throw-away git repository with a good and a bad domain file, and
# `pre-commit try-repo` against a temporary commit of this work tree (try-repo
# uses a repository's committed HEAD, and the tree under test may not be
# committed). pre-commit's `language: rust` runs `cargo install` with the
# default features; CARGO_TARGET_DIR is shared under target/ so only the first
# run compiles the dependencies.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$(pwd)
fail=0
cache=${VIRT_PCI_TEST_CACHE:-$here/target/precommit-test}
mkdir -p "$cache"
venv=$cache/venv
if [ ! -x "$venv/bin/pre-commit" ]; then
  python3 -m venv "$venv" || { echo "FAIL: python3 -m venv (install python3-venv: make deps)"; exit 1; }
  "$venv/bin/pip" install -q 'pre-commit>=3,<5'
fi
echo "pre-commit $("$venv/bin/pre-commit" --version)"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# This work tree as one commit (tracked and untracked files, not ignored ones).
snap=$tmp/virt-pci
mkdir -p "$snap"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$snap/$(dirname "$f")"
  cp -P "$f" "$snap/$f"
done
git -C "$snap" init -q
git -C "$snap" add -A
git -C "$snap" -c user.name=test -c user.email=test@invalid commit -qm snapshot

# A repository of VM definitions.
vms=$tmp/vms
mkdir -p "$vms"
cp tests/fixtures/validate/good.xml "$vms/good.xml"
cp tests/fixtures/validate/vp012-managed.xml "$vms/bad.xml"
git -C "$vms" init -q
git -C "$vms" add -A
git -C "$vms" -c user.name=test -c user.email=test@invalid commit -qm vms

export PRE_COMMIT_HOME=$cache/pre-commit-home
export CARGO_TARGET_DIR=$cache/cargo-target
# try-repo makes a fresh environment (a `cargo install`) per run; what is
# tested is that the hook installs and runs, not the optimizer, so the
# release profile is made cheap to compile.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_INCREMENTAL=true
unset LIBVIRT_DEFAULT_URI VIRT_PCI_ROOT
cd "$vms"
start=$(date +%s)
set +e
"$venv/bin/pre-commit" try-repo "$snap" virt-pci-validate --files good.xml >"$tmp/good.out" 2>&1
good=$?
"$venv/bin/pre-commit" try-repo "$snap" virt-pci-validate --files bad.xml >"$tmp/bad.out" 2>&1
bad=$?
"$venv/bin/pre-commit" try-repo "$snap" virt-pci-validate --all-files >"$tmp/all.out" 2>&1
all=$?
set -e
echo "three try-repo runs took $(( $(date +%s) - start ))s"
if [ "$good" -ne 0 ] || ! grep -q "^virt-pci validate\.*Passed" "$tmp/good.out"; then
  echo "FAIL: good file (exit $good):"; cat "$tmp/good.out"; fail=$((fail+1))
else echo "  ok  good.xml passes"; fi
if [ "$bad" -ne 1 ] || ! grep -q "error\[VP012\]: managed='true' is not \`yes\` or \`no\`" "$tmp/bad.out" \
   || ! grep -q -- "--> bad.xml:8:51" "$tmp/bad.out"; then
  echo "FAIL: bad file (exit $bad):"; cat "$tmp/bad.out"; fail=$((fail+1))
else echo "  ok  bad.xml fails with error[VP012] at bad.xml:8:51"; fi
if [ "$all" -ne 1 ] || ! grep -q "checked 2 files: 1 error, 2 warnings" "$tmp/all.out"; then
  echo "FAIL: --all-files (exit $all):"; cat "$tmp/all.out"; fail=$((fail+1))
else echo "  ok  --all-files: one call sees both files (1 error, 2 shared-device warnings)"; fi
if [ "$fail" -eq 0 ]; then echo "PASS (3/3)"; else echo "FAIL ($fail of 3)"; exit 1; fi
