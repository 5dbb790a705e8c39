#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virt-pci maintainers
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: hostdev
short_description: Ensure a libvirt domain's PCI hostdevs are present or absent, through virt-pci's plan
description:
  - Adds or removes C(<hostdev>) elements of a libvirt domain with C(virt-pci add) and
    C(virt-pci remove), in a domain XML file (O(path); byte-exact splices, atomic writes) or in
    the persistent definition of a domain libvirt has defined (O(domain); C(add --domain),
    which redefines it with libvirt's schema validation). Devices are named by address or
    vendor:device (O(devices)) or by logical name through a mapping file (O(logical)).
  - virt-pci plans every device first; the whole IOMMU group travels, and a group with a
    host-critical device (root disk controller, default-route NIC, boot GPU, LPC bridge), a
    non-PCI member or no IOMMU fails the task with virt-pci's message unless O(force=true).
    Every device is planned and checked before anything is written or defined, so a refusal
    leaves the file or the domain as it was.
  - A logical device gets the user alias C(ua-NAME) (and C(ua-NAME-N) for its other functions),
    so C(virt-pci place) and C(retarget) find it by name later.
  - Idempotent; supports check mode and diff mode. For a defined domain the diff is its
    inactive (persistent) XML before and after. After a real run, the after is read back from
    libvirt, with the guest addresses (and PCIe root ports) libvirt assigned at the define; in
    check mode it is the edit virt-pci would define.
  - Only the persistent definition changes; a running domain picks the devices up at its
    next start (hot-plug is C(virt-pci add --domain NAME --live), not driven here).
version_added: 0.1.0
author: virt-pci maintainers (!UNKNOWN)
options:
  path:
    description:
      - The domain XML file to edit.
      - Exactly one of O(path) and O(domain) is required.
    type: path
  domain:
    description:
      - The name of a domain defined in libvirt (at O(uri), else libvirt's default
        connection) whose persistent definition is edited.
      - Exactly one of O(path) and O(domain) is required.
    type: str
  devices:
    description: Devices by address (C(0000:2b:00.0), C(2b:00), C(pci_0000_2b_00_0)) or vendor:device (C(10de:1e84)).
    type: list
    elements: str
    default: []
  logical:
    description: Logical device names of O(mapping).
    type: list
    elements: str
    default: []
  mapping:
    description: The mapping file that O(logical) names are looked up in (format in virt-pci's README, "Many hosts").
    type: path
  host_name:
    description: This host's name in O(mapping) (default the snapshot's file name, see virt-pci map resolve).
    type: str
  state:
    description: Whether the devices (with their IOMMU groups) are in the domain.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: Add even when the plan blocks (virt-pci add --force).
    type: bool
    default: false
  binary:
    description: The virt-pci binary (default C(virt-pci) on the PATH).
    type: path
  root:
    description: Read the host from DIR/sys and DIR/proc (fake trees, chroots).
    type: path
  snapshot:
    description: Read the host from a snapshot made by C(virt-pci snapshot).
    type: path
  uri:
    description:
      - The libvirt connection (C(virt-pci -c URI)). With O(domain), the domain is defined
        there; domains holding devices are read from it (a device a running domain holds is
        refused).
      - The host's facts come from it too unless O(snapshot) or O(root) names them
        (C(-c URI --snapshot FILE) reads the facts from the snapshot taken on that host).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Plans and checks every device, reports the change and its diff; writes and defines nothing.
  diff_mode:
    support: full
    details: The domain XML before and after (for O(domain), its inactive definition).
  platform:
    platforms: posix
'''

EXAMPLES = r'''
- name: The RTX 2070 (and its whole IOMMU group) in the Windows VM's definition file
  virt_pci.passthrough.hostdev:
    path: /srv/vms/win11.xml
    devices: ["2b:00.0"]

- name: The same card in the domain libvirt has defined (its persistent config)
  virt_pci.passthrough.hostdev:
    domain: win11
    uri: qemu:///system
    devices: ["2b:00.0"]

- name: The GPU the mapping calls turing-gpu, wherever it sits on this host
  virt_pci.passthrough.hostdev:
    domain: win11
    logical: [turing-gpu]
    mapping: /srv/vms/mapping.json
    host_name: "{{ inventory_hostname }}"

- name: Take it out again
  virt_pci.passthrough.hostdev:
    domain: win11
    logical: [turing-gpu]
    mapping: /srv/vms/mapping.json
    host_name: "{{ inventory_hostname }}"
    state: absent
'''

RETURN = r'''
added:
  description: The requested devices that were added (as the task named them), each with its IOMMU group.
  returned: always
  type: list
  elements: str
removed:
  description: Functions removed.
  returned: always
  type: list
  elements: str
'''

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virt_pci.passthrough.plugins.module_utils.virt_pci import (
    HOST_ARGS, base_command, error_text, run, run_json,
)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def steps_for(module, base):
    '''(spec, alias) per device: addresses as given, logical names resolved by virt-pci.'''
    steps = [(d, None) for d in module.params['devices']]
    if module.params['logical']:
        if not module.params.get('mapping'):
            module.fail_json(msg='logical names need a mapping file (mapping: FILE)')
        cmd = base + ['map', 'resolve', module.params['mapping']] + module.params['logical'] + ['--json']
        if module.params.get('host_name'):
            cmd += ['--from', module.params['host_name']]
        for r in run_json(module, cmd):
            steps.append((r['path'], r['name']))
    return steps


def edit(module, cmd, absent_ok=False):
    '''One virt-pci add/remove with --json: its report (schemas/edit.schema.json), or
    None when `remove` finds the function not in the domain (already absent).'''
    rc, out, err = run(module, cmd + ['--json'], ok_codes=(0, 1))
    if rc == 1:
        if absent_ok and 'not in the domain' in err:
            return None
        module.fail_json(msg=error_text(err), rc=rc, cmd=cmd, stderr=err)
    return parse_report(module, cmd, out)


def parse_report(module, cmd, out):
    try:
        return json.loads(out)
    except ValueError as e:
        module.fail_json(msg='virt-pci printed no JSON: %s' % e, cmd=cmd, stdout=out)


def apply(module, base, steps, target, how):
    '''Every step on `target` (['FILE'] or ['--domain', NAME]), written as `how` says
    (['-i'] for a file; [] redefines a domain; ['--diff'] writes nothing).
    Returns (added, removed, reports).'''
    added, removed, reports = [], [], []
    force = ['--force'] if module.params['force'] else []
    for spec, alias in steps:
        if module.params['state'] == 'present':
            cmd = base + ['add'] + target + [spec] + force
            # virt-pci leaves a hostdev the domain has as it is and refuses to set an
            # option (the alias) on it: ask first whether anything is to add.
            if not edit(module, cmd + ['--diff'])['changed']:
                continue
            if alias:
                cmd += ['--alias', 'ua-' + alias]
            reports.append(edit(module, cmd + how))
            added.append(spec)
        else:
            # The plan's verdict does not matter for taking devices out (exit 1
            # with a blocked plan still prints it); what `add` writes does:
            # what travels and, under --force, what was asked for
            # (Plan::hostdev_set). Functions the domain lacks are skipped.
            plan = run_json(module, base + ['show', spec, '--json'], ok_codes=(0, 1))['plan']
            for a in sorted(set(plan['travels']) | set(plan['requested'])):
                r = edit(module, base + ['remove'] + target + [a] + how, absent_ok=True)
                if r is not None:
                    reports.append(r)
                    removed.append(a)
    return added, removed, reports


def in_file(module, base, steps, path):
    if not os.path.isfile(path):
        module.fail_json(msg='%s: no such domain XML file' % path)
    original = read(path)
    # Work on a copy first: a refusal halfway leaves the real file as it was.
    work_dir = tempfile.mkdtemp()
    try:
        work = os.path.join(work_dir, os.path.basename(path))
        shutil.copyfile(path, work)
        added, removed, dummy = apply(module, base, steps, [work], ['-i'])
        final = read(work)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    changed = final != original
    if changed and not module.check_mode:
        # The same steps on the real file, through virt-pci's atomic writer
        # (mode, owner and symlinks kept).
        apply(module, base, steps, [path], ['-i'])
        if read(path) != final:
            module.fail_json(msg='%s changed while the task ran; run it again' % path)
    return (changed, added, removed, path,
            original.decode('utf-8', 'replace'), final.decode('utf-8', 'replace'))


def predict(module, base, steps, before):
    '''The steps chained on a copy of the domain's XML (the dry runs each start
    from the definition as it is): the inactive XML a real run would define.
    The copy has the domain's <name>, so virt-pci plans for that domain.'''
    work_dir = tempfile.mkdtemp()
    try:
        work = os.path.join(work_dir, 'domain.xml')
        with open(work, 'wb') as f:
            f.write(before.encode('utf-8'))
        apply(module, base, steps, [work], ['-i'])
        return read(work).decode('utf-8', 'replace')
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def in_domain(module, base, steps, name):
    target = ['--domain', name]
    # Dry runs first: every step planned, checked and spliced against the
    # definition, nothing defined; a refusal fails the task here.
    added, removed, reports = apply(module, base, steps, target, ['--diff'])
    changed = any(r['changed'] for r in reports)
    label = 'domain:%s (inactive)' % name
    if not changed:
        return False, [], [], label, '', ''
    before = reports[0]['before']
    if module.check_mode:
        after = predict(module, base, steps, before)
    else:
        added, removed, reports = apply(module, base, steps, target, [])
        # What libvirt keeps, read back by virt-pci after its last define.
        written = [r for r in reports if r['written']]
        after = written[-1]['after'] if written else before
        changed = bool(written)
    return changed, added, removed, label, before, after


def main():
    spec = dict(HOST_ARGS)
    spec.update(
        path=dict(type='path'),
        domain=dict(type='str'),
        devices=dict(type='list', elements='str', default=[]),
        logical=dict(type='list', elements='str', default=[]),
        mapping=dict(type='path'),
        host_name=dict(type='str'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        force=dict(type='bool', default=False),
    )
    module = AnsibleModule(
        argument_spec=spec,
        mutually_exclusive=[('path', 'domain')],
        required_one_of=[('path', 'domain')],
        supports_check_mode=True,
    )
    if not module.params['devices'] and not module.params['logical']:
        module.fail_json(msg='name devices (devices:) or logical devices (logical:)')
    base = base_command(module)
    steps = steps_for(module, base)
    if module.params['domain']:
        result = in_domain(module, base, steps, module.params['domain'])
    else:
        result = in_file(module, base, steps, module.params['path'])
    changed, added, removed, label, before, after = result
    out = dict(changed=changed, added=added, removed=removed)
    if module._diff and changed:
        out['diff'] = dict(before_header=label, after_header=label, before=before, after=after)
    module.exit_json(**out)


if __name__ == '__main__':
    main()
