#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virt-pci maintainers
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: facts
short_description: A host's PCI devices and IOMMU groups as facts, from virt-pci
description:
  - Runs C(virt-pci snapshot) and returns the host model (devices, IOMMU groups,
    host-critical devices, domains' use) as the fact C(virt_pci_host), so a play can
    collect a fleet's snapshots and feed them to C(virt-pci inventory), C(place) and C(retarget).
  - With O(inventory=true) also returns C(virt_pci_inventory), the output of
    C(virt-pci inventory --json) for this host (per passable function, whether its
    IOMMU group is clean, in use, unverified or blocked, and why).
  - Reads only. Facts read through libvirt (O(uri) alone) lack the host-critical devices;
    their verdicts are C(unverified).
version_added: 0.1.0
author: virt-pci maintainers (!UNKNOWN)
options:
  binary:
    description: The virt-pci binary (default C(virt-pci) on the PATH).
    type: path
  root:
    description: Read DIR/sys and DIR/proc instead of the host's (fake trees, chroots).
    type: path
  snapshot:
    description: Read a snapshot made by C(virt-pci snapshot) instead of the host.
    type: path
  uri:
    description: Read the host through this libvirt URI (C(qemu:///system), C(test:///path.xml)).
    type: str
  inventory:
    description: Also return C(virt_pci_inventory).
    type: bool
    default: false
  name:
    description: The host's name in the inventory (and in mapping files); default the inventory hostname is not known to the module, so C(host).
    type: str
    default: host
notes:
  - Supports check mode; it changes nothing in either mode.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: Reads only, in either mode.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
'''

EXAMPLES = r'''
- name: Collect the hypervisor's PCI facts
  virt_pci.passthrough.facts:
    inventory: true
    name: "{{ inventory_hostname }}"

- name: Save them where the VM repository's tools read snapshots
  ansible.builtin.copy:
    content: "{{ virt_pci_host | to_nice_json }}"
    dest: "fleet/{{ inventory_hostname }}.json"
  delegate_to: localhost
'''

RETURN = r'''
ansible_facts:
  description: The facts.
  returned: always
  type: dict
  contains:
    virt_pci_host:
      description: The snapshot document (schemas/snapshot.schema.json of virt-pci).
      returned: always
      type: dict
    virt_pci_inventory:
      description: One host entry of C(virt-pci inventory --json) (schemas/inventory.schema.json).
      returned: when inventory=true
      type: dict
'''

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virt_pci.passthrough.plugins.module_utils.virt_pci import (
    HOST_ARGS, base_command, run_json,
)


def inventory(module, binary, host_arg):
    return run_json(module, [binary, 'inventory', host_arg, '--json'])['hosts'][0]


def main():
    spec = dict(HOST_ARGS)
    spec.update(
        inventory=dict(type='bool', default=False),
        name=dict(type='str', default='host'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    base = base_command(module)
    snap = run_json(module, base + ['snapshot'])
    facts = dict(virt_pci_host=snap)
    if module.params['inventory']:
        name = module.params['name']
        if module.params.get('snapshot'):
            facts['virt_pci_inventory'] = inventory(module, base[0], '%s=%s' % (name, module.params['snapshot']))
        elif module.params.get('uri') and not module.params.get('root'):
            # Through libvirt: virt-pci marks these facts unverified.
            facts['virt_pci_inventory'] = inventory(module, base[0], '%s=%s' % (name, module.params['uri']))
        else:
            fd, path = tempfile.mkstemp(suffix='.json')
            try:
                with os.fdopen(fd, 'w') as f:
                    json.dump(snap, f)
                facts['virt_pci_inventory'] = inventory(module, base[0], '%s=%s' % (name, path))
            finally:
                os.unlink(path)
    module.exit_json(changed=False, ansible_facts=facts)


if __name__ == '__main__':
    main()
