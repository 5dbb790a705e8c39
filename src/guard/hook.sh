#!/bin/sh
# virt-pci guard: checks every VM start before libvirt touches a device.
# Installed by `virt-pci hook install`; remove it with `virt-pci hook uninstall`.
# libvirt runs it as: SCRIPT DOMAIN OPERATION SUB-OPERATION EXTRA, with the
# domain XML on stdin; a non-zero exit stops the start, and what is printed on
# stderr becomes `virsh start`'s error. libvirt reads its hooks at start-up and
# on SIGHUP only: reload libvirtd (or virtqemud) after installing or removing.
VIRT_PCI='@VIRT_PCI@'
if [ ! -x "$VIRT_PCI" ]; then
    # A guard that cannot run must not hold every VM hostage: let the start
    # go on, and say why in libvirt's log (and the system log, when there is one).
    msg="virt-pci guard: $VIRT_PCI is missing or not executable; '$1' $2 $3 is NOT checked (reinstall virt-pci, or remove this hook: rm $0 and reload libvirtd)"
    echo "$msg" >&2
    command -v logger >/dev/null 2>&1 && logger -t virt-pci-guard -- "$msg"
    exit 0
fi
exec "$VIRT_PCI" guard -- "$@"
