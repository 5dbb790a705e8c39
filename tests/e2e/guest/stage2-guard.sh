#!/bin/bash
# Stage 2, the guard (sourced by stage2.sh): `virt-pci hook install` puts the guard
# in /etc/libvirt/hooks/qemu.d/, libvirtd is reloaded, and real `virsh start`s
# are stopped (or not) before libvirt touches a device.
# The root-disk domain is managed='no' on purpose: should the guard let it through,
# libvirt still refuses an unmanaged device that is not on vfio-pci, so the
# guest's own root disk can never be taken away by this check.

HOOK=/etc/libvirt/hooks/qemu.d/virt-pci-guard

# libvirtd re-reads its hooks on SIGHUP; wait until it answers again.
wait_libvirtd() {
  for _ in $(seq 1 100); do $V version >/dev/null 2>&1 && return 0; sleep 0.2; done
  bad "libvirtd does not answer after the reload"
}

# guard_define NAME DEVICE ADD-OPTIONS...: a domain file with DEVICE added by
# virt-pci, defined in libvirt. Sets F (the file).
guard_define() {
  _n=$1 _d=$2; shift 2
  F=/tmp/$_n-out.xml
  vp add "$(domain_xml "$_n")" "$_d" "$@" -o "$F"
  expect_rc 0 "add $_d $*"
  virsh_do define "$F"
  expect_rc 0 "virsh define $_n"
}

# raw_define NAME BDF MANAGED: a domain with one hostdev written by hand (as
# `virsh edit` would leave it: virt-pci's add refuses the root disk), defined.
raw_define() {
  F=/tmp/$1-out.xml
  _b=${2#0000:}
  sed "s|</devices>|  <hostdev mode='subsystem' type='pci' managed='$3'><source><address domain='0x0000' bus='0x${_b%%:*}' slot='0x$(echo "$_b" | cut -d: -f2 | cut -d. -f1)' function='0x${_b##*.}'/></source></hostdev>\n  </devices>|" \
    "$(domain_xml "$1")" >"$F"
  virsh_do define "$F"
  expect_rc 0 "virsh define $1"
}

# guard_time NAME: the guard's own timing for a defined domain, run as libvirt runs
# it (the XML libvirt hands the hook is the live definition, as dumpxml prints it).
guard_time() {
  $V dumpxml "$1" >/tmp/$1-live.xml
  _t0=${EPOCHREALTIME/./}
  _o=$(virt-pci guard "$1" prepare begin - </tmp/$1-live.xml 2>&1)
  _rc=$?
  _t1=${EPOCHREALTIME/./}
  log "guard-time $1: exit $_rc, wall $(( (_t1 - _t0) / 1000 )) ms (TCG guest, libvirt-linked binary); says: $(printf '%s' "$_o" | tail -n 1)"
}

c_guard_install() {
  vp hook status
  expect_rc 1 "hook status before install"
  vp hook install
  expect_rc 0 "hook install"
  expect_out "installed $HOOK" "hook install"
  expect_out "reloaded libvirtd" "hook install reloads libvirtd"
  [ -x "$HOOK" ] || bad "$HOOK is not an executable file"
  [ -e /etc/libvirt/hooks/qemu ] && bad "the monolithic hooks/qemu was created"
  sed 's/^/  hook: /' "$HOOK"
  vp hook install
  expect_rc 0 "hook install again"
  expect_out "up to date" "hook install is idempotent"
  wait_libvirtd
  vp hook status
  expect_rc 0 "hook status after install"
}

# (a) the root disk's controller: refused by the guard, and virsh says why.
c_guard_root_disk() {
  raw_define e2e-g-root $DISK no
  # What virt-pci would do, first: the check must not depend on luck.
  $V dumpxml e2e-g-root | virt-pci guard e2e-g-root prepare begin - >/dev/null 2>&1 &&
    bad "the guard passes the root disk's domain by hand"
  virsh_do start --paused e2e-g-root
  if [ "$RC" = 0 ]; then bad "a domain holding the root disk's controller started"; $V destroy e2e-g-root >/dev/null 2>&1; fi
  expect_out "virt-pci guard refused to start domain 'e2e-g-root'" "virsh start's error"
  expect_out "root-filesystem.*$DISK.*controller of the root filesystem" "virsh start's error names the rule and device"
  expect_drv $DISK virtio-pci
}

# (b) one function of the 2-function group: refused before QEMU, naming the member
# left behind and the fix.
c_guard_split() {
  guard_define e2e-g-split $MF0 --no-strict-group --managed yes
  virsh_do start --paused e2e-g-split
  if [ "$RC" = 0 ]; then bad "a split group started"; $V destroy e2e-g-split >/dev/null 2>&1; fi
  expect_out "error\[group-not-viable\]" "virsh start's error"
  expect_out "$MF1 \(on .e1000.\)" "the member left behind"
  expect_out "virt-pci add --domain e2e-g-split $MF1" "the fix"
  printf '%s\n' "$OUT" | grep -q "Please ensure all devices" && bad "QEMU ran: the guard did not stop the start first"
  expect_drv $MF0 e1000
  expect_drv $MF1 e1000
  guard_time e2e-g-split
}

# (c) the same split group with consent (add --force writes it): the guard lets it
# through, QEMU then fails as the kernel requires.
c_guard_split_consent() {
  guard_define e2e-g-consent $MF0 --no-strict-group --managed yes --force --reason "e2e: consent lets the guard pass"
  grep -q "<virt-pci:allow device='$MF0' rule='group-not-viable'" "$F" || bad "add --force wrote no consent entry"
  $V dumpxml e2e-g-consent >/tmp/e2e-g-consent-live.xml
  grep -q "urn:virt-pci:consent:1" /tmp/e2e-g-consent-live.xml || bad "libvirt dropped the consent metadata"
  echo "  the guard, on the XML libvirt hands the hook:"
  virt-pci guard e2e-g-consent prepare begin - </tmp/e2e-g-consent-live.xml 2>&1 | sed 's/^/  guard| /'
  virt-pci guard e2e-g-consent prepare begin - </tmp/e2e-g-consent-live.xml >/dev/null 2>&1 ||
    bad "the guard refuses a consented split group"
  virsh_do start --paused e2e-g-consent
  if [ "$RC" = 0 ]; then bad "a split group started"; $V destroy e2e-g-consent >/dev/null 2>&1; fi
  expect_out "group $(group_of $MF0) is not viable" "QEMU's error after the guard passed"
  printf '%s\n' "$OUT" | grep -q "virt-pci guard refused" && bad "the guard refused despite consent"
  expect_drv $MF0 e1000
  expect_drv $MF1 e1000
}

# (d) the whole group: starts.
c_guard_whole_group() {
  guard_define e2e-g-whole $MF0 --managed yes
  virsh_do start --paused e2e-g-whole
  expect_rc 0 "virsh start of a whole group with the guard"
  if [ "$RC" = 0 ]; then
    expect_drv $MF0 vfio-pci
    expect_drv $MF1 vfio-pci
    virsh_do destroy e2e-g-whole
  fi
  guard_time e2e-g-whole
}

# (e) no hostdev: starts.
c_guard_no_hostdev() {
  f=$(domain_xml e2e-g-plain)
  virsh_do define "$f"
  virsh_do start --paused e2e-g-plain
  expect_rc 0 "virsh start without hostdevs"
  [ "$RC" = 0 ] && virsh_do destroy e2e-g-plain
  guard_time e2e-g-plain
}

# (f) managed='no', not prepared: refused with the prepare hint.
c_guard_unmanaged() {
  guard_define e2e-g-um $IGB --managed no
  virsh_do start --paused e2e-g-um
  if [ "$RC" = 0 ]; then bad "an unprepared managed='no' domain started"; $V destroy e2e-g-um >/dev/null 2>&1; fi
  expect_out "error\[not-detached\]" "virsh start's error"
  expect_out "virt-pci prepare e2e-g-um" "the prepare hint"
  expect_drv $IGB igb
}

# Uninstall: (a) is no longer stopped by virt-pci (libvirt itself still refuses
# the unmanaged root disk).
c_guard_uninstall() {
  vp hook uninstall
  expect_rc 0 "hook uninstall"
  expect_out "removed $HOOK" "hook uninstall"
  [ -e "$HOOK" ] && bad "$HOOK still there"
  wait_libvirtd
  raw_define e2e-g-root2 $DISK no
  virsh_do start --paused e2e-g-root2
  if [ "$RC" = 0 ]; then bad "the unmanaged root disk domain started"; $V destroy e2e-g-root2 >/dev/null 2>&1; fi
  printf '%s\n' "$OUT" | grep -q "virt-pci guard" && bad "virt-pci still stops the start after uninstall"
  expect_out "must be manually detached" "libvirt's own refusal"
  expect_drv $DISK virtio-pci
  vp hook status
  expect_rc 1 "hook status after uninstall"
}

check 8-guard-install c_guard_install
check 8-guard-a-root-disk c_guard_root_disk
check 8-guard-b-split-group c_guard_split
check 8-guard-c-split-consent c_guard_split_consent
check 8-guard-d-whole-group c_guard_whole_group
check 8-guard-e-no-hostdev c_guard_no_hostdev
check 8-guard-f-unmanaged c_guard_unmanaged
check 8-guard-uninstall c_guard_uninstall
