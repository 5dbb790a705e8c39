#!/bin/bash
# The pre-commit hooks for real: pre-commit from PyPI in a virtualenv, a
# throw-away git repository of VM definitions, this work tree as a temporary
# commit (pre-commit uses a hook repository's committed state, and the tree
# under test may not be committed).
#
# The case that matters: two domain files pass the same IOMMU group's
# devices, and a commit touches only one of them. pre-commit passes only
# staged files, so a hook that validates the files it is given never sees
# the other domain; ours validates the whole repository (`validate .`,
# pass_filenames: false), so the cross-domain finding is reported:
#   1. `pre-commit try-repo` of both hook ids (virt-pci-validate, language
#      rust: pre-commit builds it with `cargo install`; virt-pci-validate-system,
#      language system: the virt-pci on PATH) shows VP040 for the unchanged file;
#   2. with a .pre-commit-config.yaml that adds `--deny shared` and a host
#      snapshot (try-repo cannot pass args), `pre-commit install` and a real
#      `git commit` of the one file are refused with error[VP040], for both ids;
#   3. a malformed file fails the commit with its file:line:col (system hook).
# CARGO_TARGET_DIR is shared under target/ so only the first build compiles
# the dependencies; the release profile is made cheap to compile (what is
# tested is that the hook installs and runs, not the optimizer).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$(pwd)
fail=0; pass=0
ok() { echo "  ok  $1"; pass=$((pass+1)); }
bad() { echo "FAIL: $1"; shift; [ $# -gt 0 ] && cat "$@"; fail=$((fail+1)); }
cache=${VIRT_PCI_TEST_CACHE:-$here/target/precommit-test}
mkdir -p "$cache"
venv=$cache/venv
if [ ! -x "$venv/bin/pre-commit" ]; then
  python3 -m venv "$venv" || { echo "FAIL: python3 -m venv (install python3-venv: make deps)"; exit 1; }
  "$venv/bin/pip" install -q 'pre-commit>=3,<5'
fi
pc=$venv/bin/pre-commit
echo "pre-commit $("$pc" --version)"
# The system hook runs the virt-pci on PATH: this tree's build.
cargo build -q --bin virt-pci
export PATH=$here/target/debug:$PATH
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
git_() { git -c user.name=test -c user.email=test@invalid -c init.defaultBranch=main "$@"; }

# This work tree as one commit (tracked and untracked files, not ignored ones).
snap=$tmp/virt-pci
mkdir -p "$snap"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$snap/$(dirname "$f")"
  cp -P "$f" "$snap/$f"
done
git_ -C "$snap" init -q
git_ -C "$snap" add -A
git_ -C "$snap" commit -qm snapshot
rev=$(git -C "$snap" rev-parse HEAD)

# A repository of VM definitions: vm-a and vm-b both pass group 1's two
# functions (01:00.0, 01:00.1) of host.json; committed as they are.
vms=$tmp/vms
mkdir -p "$vms/vms"
cp tests/fixtures/validate/shared/vm-a.xml tests/fixtures/validate/shared/vm-b.xml "$vms/vms/"
cp tests/fixtures/validate/host.json "$vms/host.json"
git_ -C "$vms" init -q
git_ -C "$vms" add -A
git_ -C "$vms" commit -qm vms
# The commit under test touches vm-b only.
touch_b() { sed -i "s|<memory unit='MiB'>[0-9]*<|<memory unit='MiB'>$1<|" "$vms/vms/vm-b.xml"; git -C "$vms" add vms/vm-b.xml; }

export PRE_COMMIT_HOME=$cache/pre-commit-home
export CARGO_TARGET_DIR=$cache/cargo-target
export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_INCREMENTAL=true
unset LIBVIRT_DEFAULT_URI VIRT_PCI_ROOT
cd "$vms"
start=$(date +%s)

# 1. try-repo on the staged change to vm-b: vm-a is seen.
touch_b 2048
for id in virt-pci-validate virt-pci-validate-system; do
  set +e; "$pc" try-repo "$snap" "$id" --verbose >"$tmp/try-$id.out" 2>&1; rc=$?; set -e
  if [ "$rc" -eq 0 ] && grep -q "warning\[VP040\]: host device 0000:01:00.0 is also assigned to domain 'vm-a' (vms/vm-a.xml)" "$tmp/try-$id.out" \
     && grep -q -- "--> vms/vm-b.xml:10:9" "$tmp/try-$id.out" && grep -q "checked 2 files: 0 errors" "$tmp/try-$id.out"; then
    ok "try-repo $id: a commit of vm-b.xml sees vm-a.xml (VP040)"
  else bad "try-repo $id (exit $rc)" "$tmp/try-$id.out"; fi
done
git -C "$vms" reset -q --hard

# 2. The hooks installed, with --deny shared and the host: git commit refuses.
for id in virt-pci-validate virt-pci-validate-system; do
  cat > .pre-commit-config.yaml <<EOF
repos:
  - repo: $snap
    rev: $rev
    hooks:
      - id: $id
        args: [--snapshot, host.json, --deny, shared]
EOF
  git add .pre-commit-config.yaml
  "$pc" install >/dev/null
  touch_b 4096
  set +e; git_ commit -qm "vm-b: more memory" >"$tmp/commit-$id.out" 2>&1; rc=$?; set -e
  if [ "$rc" -ne 0 ] && grep -q "error\[VP040\]: host device 0000:01:00.1 is also assigned to domain 'vm-a'" "$tmp/commit-$id.out" \
     && grep -q "checked 2 files: 2 errors" "$tmp/commit-$id.out" && [ "$(git rev-list --count HEAD)" -eq 1 ]; then
    ok "git commit with $id (--deny shared): refused, error[VP040] for the unchanged vm-a.xml"
  else bad "git commit with $id (exit $rc)" "$tmp/commit-$id.out"; fi
  git -C "$vms" reset -q --hard
  rm -f .pre-commit-config.yaml
done

# 3. A malformed value fails with its position (system hook, no args).
cp "$here/tests/fixtures/validate/vp012-managed.xml" vms/bad.xml
git add vms/bad.xml
set +e; "$pc" try-repo "$snap" virt-pci-validate-system >"$tmp/bad.out" 2>&1; rc=$?; set -e
if [ "$rc" -eq 1 ] && grep -q "error\[VP012\]: managed='true' is not \`yes\` or \`no\`" "$tmp/bad.out" \
   && grep -q -- "--> vms/bad.xml:8:51" "$tmp/bad.out"; then
  ok "bad.xml fails with error[VP012] at vms/bad.xml:8:51"
else bad "bad.xml (exit $rc)" "$tmp/bad.out"; fi

echo "pre-commit runs took $(( $(date +%s) - start ))s"
if [ "$fail" -eq 0 ]; then echo "PASS ($pass/$pass)"; else echo "FAIL ($fail of $((pass+fail)))"; exit 1; fi
