# Check helpers shared by stage1.sh and stage2.sh (POSIX sh: busybox ash in stage 1,
# bash in stage 2). The host harness reads only these lines:
#   E2E-CHECK PASS|FAIL NAME [-- why]
#   E2E-RESULT N passed, M failed
# Device map of the topology (tests/e2e/lib.sh builds it; 0-topology proves it).
IGB=0000:01:00.0           # igb, alone in its group, FLR
BR=0000:02:00.0            # pcie-pci-bridge
B1=0000:03:01.0 B2=0000:03:02.0   # e1000 x2 behind the bridge: one group with it
MF0=0000:04:00.0 MF1=0000:04:00.1 # 2-function e1000: one group
DISK=0000:00:06.0          # virtio-blk (stage 2: the root disk)
HB=0000:00:00.0            # host bridge
SYS=/sys/bus/pci/devices

E2E_PASS=0
E2E_FAIL=0
ERR=""

log() { echo "e2e: $*"; }
# bad WHY: record one failed expectation of the running check.
bad() { ERR="$ERR${ERR:+; }$*"; echo "  ! $*"; }

drv() {
  if [ -e "$SYS/$1/driver" ]; then basename "$(readlink "$SYS/$1/driver")"; else echo none; fi
}
group_of() { basename "$(readlink "$SYS/$1/iommu_group")"; }
expect_drv() { # BDF DRIVER...
  _d=$1; shift
  for _w in "$@"; do [ "$(drv "$_d")" = "$_w" ] && return 0; done
  bad "$_d is on $(drv "$_d"), expected $*"
}
expect_no_override() {
  _o=$(cat "$SYS/$1/driver_override" 2>/dev/null)
  [ "$_o" = "(null)" ] || [ -z "$_o" ] || bad "$1 driver_override left as '$_o'"
}

# vp ARGS...: run virt-pci (bounded), show the command, output and status.
# Sets RC and OUT.
vp() {
  echo "  + virt-pci $*"
  OUT=$(timeout 300 virt-pci "$@" 2>&1)
  RC=$?
  [ -n "$OUT" ] && printf '%s\n' "$OUT" | sed 's/^/  | /'
  echo "  = exit $RC"
}
expect_rc() { # WANT WHAT
  [ "$RC" = "$1" ] || bad "$2: exit $RC, expected $1"
}
expect_out() { # PATTERN(grep -Ei) WHAT
  printf '%s\n' "$OUT" | grep -Eqi -- "$1" || bad "$2: output lacks /$1/"
}

# The driver every device had at boot; restore_baseline puts any device back
# there through raw sysfs so one failing check does not cascade into the next.
record_baseline() {
  BASELINE=""
  for _p in "$SYS"/*; do
    BASELINE="$BASELINE ${_p##*/}=$(drv "${_p##*/}")"
  done
}
restore_baseline() {
  for _e in $BASELINE; do
    _d=${_e%%=*} _w=${_e#*=}
    [ "$(drv "$_d")" = "$_w" ] && continue
    log "restoring $_d to $_w (was $(drv "$_d"))"
    echo >"$SYS/$_d/driver_override" 2>/dev/null
    [ -e "$SYS/$_d/driver" ] && echo "$_d" >"$SYS/$_d/driver/unbind"
    [ "$_w" != none ] && echo "$_d" >/sys/bus/pci/drivers_probe
  done
  for _e in $BASELINE; do
    _d=${_e%%=*}
    echo >"$SYS/$_d/driver_override" 2>/dev/null
  done
}

# check NAME FUNCTION: run one named check, print its verdict, restore the baseline.
# `e2e_only=PREFIX` on the kernel command line (E2E_ONLY on the host) runs only the
# checks whose names start with PREFIX (a developer's shortcut; the others are
# then reported as not run).
check() {
  ERR=""
  _only=$(sed -n 's/.*e2e_only=\([^ ]*\).*/\1/p' /proc/cmdline)
  case $1 in "$_only"*) ;; *) echo "=== $1 skipped (e2e_only=$_only)"; return 0 ;; esac
  echo "=== $1 ($(cut -d' ' -f1 /proc/uptime)s)"
  "$2"
  if [ -z "$ERR" ]; then
    echo "E2E-CHECK PASS $1"
    E2E_PASS=$((E2E_PASS + 1))
  else
    echo "E2E-CHECK FAIL $1 -- $ERR"
    E2E_FAIL=$((E2E_FAIL + 1))
  fi
  command -v check_cleanup >/dev/null && check_cleanup
  restore_baseline
}

result() {
  echo "E2E-RESULT $E2E_PASS passed, $E2E_FAIL failed"
}

# ---- checks used by both stages ------------------------------------------------

# The reset witness itself: a kernel reset through sysfs must clear the marker
# (otherwise check 3 proves nothing).
c_reset_witness() {
  log "$IGB power state $(e2e-pci pm $IGB), power/control $(cat "$SYS/$IGB/power/control")"
  mark
  w=$(witness) || { bad "BAR 0 of $IGB does not answer"; return; }
  [ "$w" = "$MARK" ] || { bad "cannot set the witness register (reads $w)"; return; }
  echo 1 >"$SYS/$IGB/reset" || bad "sysfs reset of $IGB failed"
  w=$(witness) || { bad "BAR 0 of $IGB does not answer after reset"; return; }
  [ "$w" = "$MARK" ] && bad "sysfs reset left the witness register at $MARK"
}

# The topology this test was written for: otherwise every later verdict is noise.
c_topology() {
  for d in $IGB $BR $B1 $B2 $MF0 $MF1 $DISK $HB; do
    [ -e "$SYS/$d" ] || bad "$d missing"
  done
  [ -n "$ERR" ] && return
  expect_drv $IGB igb
  expect_drv $B1 e1000
  expect_drv $B2 e1000
  expect_drv $MF0 e1000
  expect_drv $MF1 e1000
  [ "$(group_of $B1)" = "$(group_of $B2)" ] && [ "$(group_of $B1)" = "$(group_of $BR)" ] ||
    bad "bridge group split: $BR=$(group_of $BR) $B1=$(group_of $B1) $B2=$(group_of $B2)"
  [ "$(group_of $MF0)" = "$(group_of $MF1)" ] || bad "$MF0 and $MF1 in different groups"
  [ "$(ls "/sys/kernel/iommu_groups/$(group_of $IGB)/devices" | wc -l)" = 1 ] ||
    bad "$IGB not alone in its group"
  grep -qw flr "$SYS/$IGB/reset_method" || bad "$IGB has no FLR: $(cat "$SYS/$IGB/reset_method")"
  [ -e /dev/vfio/vfio ] || bad "/dev/vfio/vfio missing (vfio not loaded?)"
}

# 1: list --json reports exactly the kernel's groups, with drivers and reset methods.
# SRC: extra global options (e.g. "-c qemu:///system"); RESET=no skips reset methods
# (libvirt's node devices do not carry them).
c_list_json() {
  echo "  + virt-pci $LIST_SRC list --json"
  json=$(timeout 120 virt-pci $LIST_SRC list --json 2>/tmp/list.err)
  RC=$?
  sed 's/^/  | /' /tmp/list.err
  expect_rc 0 "list --json"
  [ "$RC" = 0 ] || return
  printf '%s' "$json" | jq -e . >/dev/null || { bad "list --json printed no valid JSON"; return; }
  kgroups=$(ls /sys/kernel/iommu_groups | sort -n | tr '\n' ' ')
  jgroups=$(printf '%s' "$json" | jq -r '.groups[].id' | sort -n | tr '\n' ' ')
  [ "$kgroups" = "$jgroups" ] || bad "groups: kernel [$kgroups] json [$jgroups]"
  for g in /sys/kernel/iommu_groups/*; do
    id=${g##*/}
    want=$(ls "$g/devices" | sort | tr '\n' ' ')
    got=$(printf '%s' "$json" | jq -r --argjson id "$id" '.groups[] | select(.id == $id) | .members[]' | sort | tr '\n' ' ')
    [ "$want" = "$got" ] || bad "group $id: kernel [$want] json [$got]"
  done
  kdevs=$(ls $SYS | sort | tr '\n' ' ')
  jdevs=$(printf '%s' "$json" | jq -r '.devices[].address' | sort | tr '\n' ' ')
  [ "$kdevs" = "$jdevs" ] || bad "devices: kernel [$kdevs] json [$jdevs]"
  for p in "$SYS"/*; do
    d=${p##*/}
    dev=$(printf '%s' "$json" | jq -c --arg a "$d" '.devices[] | select(.address == $a)')
    g=$(printf '%s' "$dev" | jq -r '.iommu_group')
    [ "$g" = "$(group_of "$d")" ] || bad "$d group: json $g kernel $(group_of "$d")"
    jd=$(printf '%s' "$dev" | jq -r '.driver // "none"')
    [ "$jd" = "$(drv "$d")" ] || bad "$d driver: json $jd kernel $(drv "$d")"
    if [ "${LIST_RESET:-yes}" = yes ]; then
      jr=$(printf '%s' "$dev" | jq -r '.reset_methods | join(" ")')
      kr=$(cat "$p/reset_method" 2>/dev/null)
      [ "$jr" = "$kr" ] || bad "$d reset methods: json [$jr] kernel [$kr]"
    fi
  done
  log "compared $(echo $kgroups | wc -w) groups and $(echo $kdevs | wc -w) devices"
}

# 2: detach of the bridge group moves every endpoint to vfio-pci (the bridge stays,
# the group becomes viable for VFIO); reattach returns each to its driver.
# BACKEND: libvirt|sysfs
c_detach_bridge_group() {
  br_drv=$(drv $BR)
  vp detach --backend "$BACKEND" $B1
  expect_rc 0 "detach $B1"
  expect_drv $B1 vfio-pci
  expect_drv $B2 vfio-pci
  expect_drv $BR "$br_drv"
  if [ "$(drv $B1)" = vfio-pci ] && [ "$(drv $B2)" = vfio-pci ]; then
    e2e-pci viable $B1 || bad "group $(group_of $B1) not viable for VFIO after detach"
  fi
  expect_drv $MF0 e1000       # unrelated groups untouched
  expect_drv $IGB igb
  vp reattach --backend "$BACKEND" $B1
  expect_rc 0 "reattach $B1"
  expect_drv $B1 e1000
  expect_drv $B2 e1000
  expect_drv $BR "$br_drv"
  expect_no_override $B1
  expect_no_override $B2
  [ -e "/dev/vfio/$(group_of $B1)" ] && bad "/dev/vfio/$(group_of $B1) still exists after reattach"
}

# 3: reset really resets. Witness: igb's RDBAL0 register (BAR 0 + 0xC000), which a
# function reset returns to 0. The kernel saves/restores config space around a
# reset, so config space cannot witness it; libvirt skips the reset of a device
# bound to vfio-pci (research notes, gotcha 2), so both bindings are tested.
MARK=0x5a5a5000
RDBAL0=0xC000
STATUS=0x0008
mark() { e2e-pci bar-write $IGB 0 $RDBAL0 $MARK >/dev/null; }
# witness: print RDBAL0, or fail when the BAR does not answer (STATUS reads 0 or
# all ones) — an unreadable register must never pass for a reset one.
witness() {
  case $(e2e-pci bar-read $IGB 0 $STATUS) in 0x00000000 | 0xffffffff | "") return 1 ;; esac
  e2e-pci bar-read $IGB 0 $RDBAL0
}
# vfio-pci lets runtime PM put an unused device in D3hot, where its BARs are off,
# and the way back to D0 may itself reset it. Forbid runtime PM (power/control=on,
# as `powertop`-free hosts have it) so that only virt-pci's reset can clear the mark.
hold_d0() {
  echo on >"$SYS/$IGB/power/control"
  [ "$(e2e-pci pm $IGB)" = D0 ] || bad "$IGB not in D0 after power/control=on: $(e2e-pci pm $IGB)"
}
reset_once() { # WHEN
  hold_d0
  mark
  w=$(witness) || { bad "$1: BAR 0 of $IGB does not answer (power state $(e2e-pci pm $IGB))"; return; }
  [ "$w" = "$MARK" ] || { bad "$1: cannot set the witness register (reads $w)"; return; }
  vp reset --backend "$BACKEND" $IGB
  expect_rc 0 "reset $IGB ($1)"
  command -v after_reset >/dev/null && after_reset
  hold_d0
  w=$(witness) || { bad "$1: BAR 0 of $IGB does not answer after reset (power state $(e2e-pci pm $IGB))"; return; }
  if [ "$w" = "$MARK" ]; then bad "$1: device not reset (witness register still $MARK)"; else
    log "$1: witness register now $w: the device was reset"; fi
}
c_reset_igb() {
  pc=$(cat "$SYS/$IGB/power/control")
  reset_once "on igb"
  expect_drv $IGB igb
  vp detach --backend "$BACKEND" $IGB
  expect_rc 0 "detach $IGB"
  expect_drv $IGB vfio-pci
  if [ "$(drv $IGB)" = vfio-pci ]; then
    reset_once "on vfio-pci"
    expect_drv $IGB vfio-pci
  fi
  vp reattach --backend "$BACKEND" $IGB
  expect_rc 0 "reattach $IGB"
  expect_drv $IGB igb
  echo "$pc" >"$SYS/$IGB/power/control"
}

# 4: all-or-nothing. One member's driver_override is made unwritable (a read-only
# bind mount over the sysfs attribute: EROFS for virt-pci and libvirtd alike);
# detach of the group must fail, name that member, and leave every member on its
# driver. Run with the first and with the second member failing, so that whatever
# order virt-pci acts in, one run has a member to roll back.
all_or_nothing_with() { # FAILING_MEMBER
  echo "(null)" >/tmp/ro-override
  _f=$(readlink -f "$SYS/$1/driver_override")
  mount --bind /tmp/ro-override "$_f" && mount -o remount,bind,ro "$_f" ||
    { bad "cannot make $1's driver_override read-only"; umount "$_f" 2>/dev/null; return; }
  if echo vfio-pci 2>/dev/null >"$SYS/$1/driver_override"; then
    bad "$1's driver_override still writable: the failure was not injected"
  fi
  vp detach --backend "$BACKEND" $B1
  umount "$_f"
  expect_rc 1 "detach with $1 failing"
  expect_out "$1|${1#0000:}" "the error names the failing member $1"
  expect_drv $B1 e1000
  expect_drv $B2 e1000
  expect_no_override $B1
  expect_no_override $B2
}
c_all_or_nothing() {
  all_or_nothing_with $B2
  restore_baseline
  all_or_nothing_with $B1
}
