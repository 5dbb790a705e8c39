#!/bin/bash
# The Debian package as a user gets it: `make deb`, `dpkg -i`, `apt-get -f
# install` (dependencies from the package's own Depends), the installed
# /usr/bin/virt-pci run (version, `man virt-pci`, a Tab completion in bash
# with bash-completion's loader, a plan from a sample snapshot, the libvirt
# companion through libvirt's test driver), then `dpkg -r` and a check that
# nothing of the package is left (it has no conffiles, so Debian policy keeps
# nothing after remove), and `dpkg -P`.
#
# It installs a package on the machine, so it runs only as root in CI:
# VIRT_PCI_CI=1 (set by .ci/run). Anywhere else it says SKIP and exits 0;
# run it on a throw-away machine with `VIRT_PCI_CI=1 bash tests/suites/60-deb.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$(pwd)
if [ "$(id -u)" -ne 0 ] || [ "${VIRT_PCI_CI:-}" != 1 ]; then
  echo "SKIP: 60-deb installs a package; it runs as root with VIRT_PCI_CI=1 (.ci/run)"
  exit 0
fi
if dpkg-query -W -f='${Status}' virt-pci 2>/dev/null | grep installed >/dev/null; then
  echo "FAIL: a virt-pci package is already installed; this test installs and removes its own"
  exit 1
fi
fail=0; pass=0
ok() { echo "  ok  $1"; pass=$((pass+1)); }
bad() { echo "FAIL: $1"; fail=$((fail+1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export DEBIAN_FRONTEND=noninteractive

make -s deb >"$tmp/deb.out" 2>&1 || { cat "$tmp/deb.out"; echo "FAIL: make deb"; exit 1; }
deb=$(tail -1 "$tmp/deb.out")
echo "package: $deb"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort >"$tmp/contents"
for f in /usr/bin/virt-pci /usr/bin/virt-pci-libvirt /usr/share/man/man1/virt-pci.1.gz \
         /usr/share/man/man1/virt-pci-snippet.1.gz /usr/share/bash-completion/completions/virt-pci \
         /usr/share/zsh/vendor-completions/_virt-pci /usr/share/fish/vendor_completions.d/virt-pci.fish \
         /usr/share/virt-pci/hooks/qemu.d/virt-pci-guard; do
  grep -qx "$f" "$tmp/contents" || bad "the package lacks $f"
done
if grep -q '^/etc/libvirt' "$tmp/contents"; then bad "the package installs into /etc/libvirt"; else ok "package contents (binaries, man pages, completions; nothing in /etc/libvirt)"; fi

# Install as users do: dpkg -i fails on missing dependencies, apt-get -f fetches them.
dpkg -i "$deb" >"$tmp/dpkg.out" 2>&1 || true
apt-get -f install -y -qq >"$tmp/apt.out" 2>&1 || { cat "$tmp/dpkg.out" "$tmp/apt.out"; bad "apt-get -f install"; }
if dpkg-query -W -f='${Status}' virt-pci | grep "install ok installed" >/dev/null; then ok "dpkg -i + apt-get -f install"; else bad "not installed: $(dpkg-query -W -f='${Status}' virt-pci)"; fi
dpkg -L virt-pci | sort >"$tmp/installed"

v=$(/usr/bin/virt-pci --version)
want="virt-pci $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
[ "$v" = "$want" ] && ok "virt-pci --version: $v" || bad "--version printed '$v', not '$want'"

command -v man >/dev/null || apt-get install -y -qq --no-install-recommends man-db >/dev/null
if MANWIDTH=80 man virt-pci 2>"$tmp/man.err" | grep "virt-pci-snippet(1)" >/dev/null && [ ! -s "$tmp/man.err" ] \
   && MANWIDTH=80 man virt-pci-snippet 2>/dev/null | grep -- "--boot-order" >/dev/null; then
  ok "man virt-pci and man virt-pci-snippet render"
else bad "man: $(cat "$tmp/man.err")"; fi

# Tab in bash: bash-completion loads /usr/share/bash-completion/completions/virt-pci
# on first use, which asks the installed virt-pci.
command -v bash >/dev/null && [ -f /usr/share/bash-completion/bash_completion ] \
  || apt-get install -y -qq --no-install-recommends bash-completion >/dev/null
got=$(cd "$here" && env -i PATH=/usr/bin:/bin HOME="$tmp" bash -c '
  source /usr/share/bash-completion/bash_completion
  _completion_loader virt-pci 2>/dev/null || __load_completion virt-pci
  f=$(complete -p virt-pci | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
  COMP_WORDS=(virt-pci --snapshot samples/hosts/014-thinkpad-p53-laptop-turing-tb3.json show 01:00.)
  COMP_CWORD=5; COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9
  "$f" virt-pci 01:00. show
  echo "${COMPREPLY[*]}"')
[ "$got" = "01:00.0 01:00.1 01:00.2 01:00.3" ] && ok "bash completes the installed virt-pci: $got" || bad "completion gave '$got'"

# A plan: sample 014's listing with its host facts stated (else it is unverified).
out=$(cd "$here" && /usr/bin/virt-pci snapshot --from-listing samples/hosts/listings/014-thinkpad-p53-laptop-turing-tb3.txt \
        --root-disk 02:00.0 --default-nic 00:1f.6 --boot-vga 00:02.0 -o "$tmp/p53.json" 2>&1 \
      && /usr/bin/virt-pci --snapshot "$tmp/p53.json" show 01:00.0 2>&1) \
  && grep -q "verdict: ok — 4 travel together" <<<"$out" && ok "a plan from samples/hosts/014's listing" || bad "plan: $out"
# libvirt through the companion: the test driver's one domain, as completion asks for it.
out=$(env -u LIBVIRT_DEFAULT_URI /usr/bin/virt-pci -c test:///default complete-domains 2>&1) \
  && [ "$out" = test ] && ok "-c test:///default: domains through /usr/bin/virt-pci-libvirt" || bad "companion: $out"
[ ! -e /etc/libvirt/hooks/qemu.d/virt-pci-guard ] && ok "no libvirt hook activated by installing" || bad "installing activated the guard hook"
# The shipped (inactive) hook is what `virt-pci hook install` writes; the
# package's prerm takes an installed one out on removal. Both against a fake
# root: nothing here touches this machine's /etc/libvirt.
fake=$tmp/fakeroot
/usr/bin/virt-pci --root "$fake" hook install --no-reload >/dev/null 2>&1
if cmp -s "$fake/etc/libvirt/hooks/qemu.d/virt-pci-guard" /usr/share/virt-pci/hooks/qemu.d/virt-pci-guard; then
  ok "the shipped hook is the one hook install writes"
else bad "the shipped hook differs from hook install's"; fi
mkdir "$tmp/ctl"; dpkg-deb -e "$deb" "$tmp/ctl"
VIRT_PCI_ROOT=$fake sh "$tmp/ctl/prerm" upgrade
[ -e "$fake/etc/libvirt/hooks/qemu.d/virt-pci-guard" ] && ok "prerm upgrade keeps the hook" || bad "prerm upgrade removed the hook"
VIRT_PCI_ROOT=$fake sh "$tmp/ctl/prerm" remove 2>"$tmp/prerm.err"
[ ! -e "$fake/etc/libvirt/hooks/qemu.d/virt-pci-guard" ] && ok "prerm remove takes the hook out" || bad "prerm remove left the hook: $(cat "$tmp/prerm.err")"

dpkg -r virt-pci >"$tmp/remove.out" 2>&1 || { cat "$tmp/remove.out"; bad "dpkg -r"; }
left=()
while read -r f; do
  [ -d "$f" ] && continue          # shared directories (/usr/bin, ...) stay
  [ -e "$f" ] || [ -L "$f" ] && left+=("$f")
done <"$tmp/installed"
status=$(dpkg-query -W -f='${Status}' virt-pci 2>/dev/null || true)
if [ "${#left[@]}" -eq 0 ] && { [ -z "$status" ] || [[ "$status" == *not-installed ]]; }; then
  ok "dpkg -r leaves nothing (status: ${status:-unknown to dpkg})"
else bad "after dpkg -r: status '$status', left: ${left[*]}"; fi
dpkg -P virt-pci >/dev/null 2>&1 || true

if [ "$fail" -eq 0 ]; then echo "PASS ($pass/$pass)"; else echo "FAIL ($fail failed, $pass passed)"; exit 1; fi
