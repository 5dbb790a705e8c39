#!/bin/bash
# `ansible-test sanity` on the Ansible collection
# (ansible/ansible_collections/virt_pci/passthrough), with ansible-core from
# PyPI and nothing from anywhere else.
#
# ansible-test makes one virtualenv per sanity test (pylint, pep8,
# validate-modules, import, ...) and installs that test's pinned requirements
# (ansible_test/_data/requirements/sanity.*.txt) into it with pip from PyPI.
# It puts pip into each new, empty virtualenv with a bootstrap script it
# downloads from ci-files.testing.ansible.com
# (ansible_test/_util/target/setup/requirements.py, bootstrap()), unless that
# script is already in its cache, ~/.ansible/test/cache/get_pip_X_Y.py — the
# download error tells users to put it there by hand. We put a stand-in there:
# it installs the same pip version (get_venv_packages() in
# ansible_test/_internal/python_requirements.py) from pip's own wheel,
# downloaded from PyPI (pip runs from its wheel: "python pip.whl/pip install").
# HOME points into target/, so the virtualenvs are cached there (warm runs
# install nothing) and the user's ~/.ansible is left alone.
#
# ansible-test runs from the collection's root, which must sit under
# ansible_collections/NAMESPACE/NAME. Inside a git checkout it tests only the
# files git knows (and not those it ignores: all of target/), so it runs on a
# copy of those files in a temporary directory outside any checkout; its
# tests/output stays out of the source tree too.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$(pwd)
# Exact, unlike 42-ansible.sh's range: sanity's rules change between
# releases, and a lint must not start failing on its own.
# A new minor version reads its own ignore file: rename the collection's
# tests/sanity/ignore-2.19.txt with it.
core='ansible-core==2.19.14'
cache=${VIRT_PCI_TEST_CACHE:-$here/target/ansible-sanity}
venv=$cache/venv
# (A venv made under another path — a copied target/ — runs that path's Python: make a new one.)
if [ ! -x "$venv/bin/ansible-test" ] || ! grep -qx "$core" "$cache/core.txt" 2>/dev/null ||
   [ "$("$venv/bin/python" -c 'import sys; print(sys.prefix)' 2>/dev/null)" != "$venv" ]; then
  rm -rf "$venv" "$cache/home"; mkdir -p "$cache"
  python3 -m venv "$venv" || { echo "FAIL: python3 -m venv (install python3-venv: make deps)"; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check "$core"
  echo "$core" > "$cache/core.txt"
fi
py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
home=$cache/home
pip_version=$("$venv/bin/python" -c '
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="'"$py"'", path=""))["pip"])')
get_pip=$home/.ansible/test/cache/get_pip_${pip_version//./_}.py
wheels=$(dirname "$get_pip")
if [ ! -s "$get_pip" ] || ! ls "$wheels"/pip-"$pip_version"-*.whl >/dev/null 2>&1; then
  mkdir -p "$wheels"
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$wheels" "pip==$pip_version"
  wheel=$(basename "$(ls "$wheels"/pip-"$pip_version"-*.whl)")
  cat > "$get_pip.tmp" <<EOF
# Stand-in for ci-files.testing.ansible.com/ansible-test/get-pip-$pip_version.py,
# written by virt-pci's tests/suites/43-ansible-sanity.sh: installs pip $pip_version
# into ansible-test's empty virtualenv from pip's own wheel (from PyPI), next to this file.
import os
import sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "$wheel"))
from pip._internal.cli.main import main
# get-pip.py's own options; pip installs neither setuptools nor wheel unasked.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", here] + args))
EOF
  mv "$get_pip.tmp" "$get_pip"
fi

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
src=ansible/ansible_collections/virt_pci/passthrough
copy=$work/ansible_collections/virt_pci/passthrough
mkdir -p "$copy"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard -- "$src" | while IFS= read -r -d '' f; do
    [ -e "$f" ] || continue  # deleted, not yet committed
    mkdir -p "$copy/$(dirname "${f#"$src"/}")"; cp -p "$f" "$copy/${f#"$src"/}"
  done
else  # a source tarball: every file but ansible-test's own output
  cp -a "$src/." "$copy/"; rm -rf "$copy/tests/output"
fi

# Every other sanity test runs; none needs a network beyond PyPI, nor Docker.
skips=(
  # PowerShell's analyzer needs pwsh, which Debian does not package; the
  # collection has no PowerShell.
  --skip-test pslint
  # Needs the shellcheck binary, which `make deps` does not install; the
  # collection has no shell scripts (when it gets one: add shellcheck to
  # scripts/install-deps.sh and drop this skip).
  --skip-test shellcheck
)
echo "$core, Python $py"
cd "$copy"
if ! HOME=$home ANSIBLE_NOCOLOR=1 "$venv/bin/ansible-test" sanity --local --python "$py" "${skips[@]}" --color no; then
  echo "FAIL: ansible-test sanity (run again: bash tests/suites/43-ansible-sanity.sh)"
  exit 1
fi
echo "43-ansible-sanity: all passed"
