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
  - Adds or removes C(<hostdev>) elements of a libvirt domain XML file with C(virt-pci add) and
    C(virt-pci remove) (byte-exact splices, atomic writes). Devices are named by address or
    vendor:device (O(devices)) or by logical name through a mapping file (O(logical)).
  - virt-pci plans every device first; the whole IOMMU group travels, and a group with a
    host-critical device (root disk controller, default-route NIC, boot GPU, LPC bridge), a
    non-PCI member or no IOMMU fails the task with virt-pci's message unless O(force=true).
  - A logical device gets the user alias C(ua-NAME) (and C(ua-NAME-N) for its other functions),
    so C(virt-pci place) and C(retarget) find it by name later.
  - Idempotent; supports check mode and diff mode.
version_added: 0.1.0
author: virt-pci maintainers
options:
  path:
    description: The domain XML file to edit.
    type: path
    required: true
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
    description: Read the host through this libvirt URI.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
'''

EXAMPLES = r'''
- name: The RTX 2070 (and its whole IOMMU group) in the Windows VM
  virt_pci.passthrough.hostdev:
    path: /srv/vms/win11.xml
    devices: ["2b:00.0"]

- name: The GPU the mapping calls turing-gpu, wherever it sits on this host
  virt_pci.passthrough.hostdev:
    path: /srv/vms/win11.xml
    logical: [turing-gpu]
    mapping: /srv/vms/mapping.json
    host_name: "{{ inventory_hostname }}"

- name: Take it out again
  virt_pci.passthrough.hostdev:
    path: /srv/vms/win11.xml
    logical: [turing-gpu]
    mapping: /srv/vms/mapping.json
    host_name: "{{ inventory_hostname }}"
    state: absent
'''

RETURN = r'''
added:
  description: The commands' devices that were added (as virt-pci named them).
  returned: always
  type: list
  elements: str
removed:
  description: Functions removed.
  returned: always
  type: list
  elements: str
'''

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
    """(spec, alias) per device: addresses as given, logical names resolved by virt-pci."""
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


def apply(module, base, steps, target):
    """Apply every step to the file `target`; returns (added, removed)."""
    added, removed = [], []
    force = ['--force'] if module.params['force'] else []
    for spec, alias in steps:
        if module.params['state'] == 'present':
            probe = target + '.probe'
            run(module, base + ['add', target, spec, '-o', probe] + force)
            try:
                same = read(probe) == read(target)
            finally:
                os.unlink(probe)
            if same:
                continue
            cmd = base + ['add', target, spec, '-i'] + force
            if alias:
                cmd += ['--alias', 'ua-' + alias]
            run(module, cmd)
            added.append(spec)
        else:
            plan = run_json(module, base + ['show', spec, '--json'])['plan']
            for a in plan['travels']:
                rc, dummy, err = run(module, base + ['remove', target, a, '-i'], ok_codes=(0, 1))
                if rc == 1:
                    if 'not in the domain' not in err:
                        module.fail_json(msg=error_text(err), rc=rc, stderr=err)
                    continue
                removed.append(a)
    return added, removed


def main():
    spec = dict(HOST_ARGS)
    spec.update(
        path=dict(type='path', required=True),
        devices=dict(type='list', elements='str', default=[]),
        logical=dict(type='list', elements='str', default=[]),
        mapping=dict(type='path'),
        host_name=dict(type='str'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        force=dict(type='bool', default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    path = module.params['path']
    if not module.params['devices'] and not module.params['logical']:
        module.fail_json(msg='name devices (devices:) or logical devices (logical:)')
    if not os.path.isfile(path):
        module.fail_json(msg='%s: no such domain XML file' % path)
    base = base_command(module)
    steps = steps_for(module, base)
    original = read(path)
    # Work on a copy first: a refusal halfway leaves the real file as it was.
    work_dir = tempfile.mkdtemp()
    try:
        work = os.path.join(work_dir, os.path.basename(path))
        shutil.copyfile(path, work)
        added, removed = apply(module, base, steps, work)
        final = read(work)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    changed = final != original
    if changed and not module.check_mode:
        # The same steps on the real file, through virt-pci's atomic writer
        # (mode, owner and symlinks kept).
        apply(module, base, steps, path)
        if read(path) != final:
            module.fail_json(msg='%s changed while the task ran; run it again' % path)
    result = dict(changed=changed, added=added, removed=removed)
    if module._diff:
        result['diff'] = dict(
            before_header=path, after_header=path,
            before=original.decode('utf-8', 'replace'), after=final.decode('utf-8', 'replace'),
        )
    module.exit_json(**result)


if __name__ == '__main__':
    main()
