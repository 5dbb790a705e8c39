#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virt-pci maintainers
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: guard
short_description: Install or remove virt-pci's libvirt start guard
description:
  - Runs C(virt-pci hook install) or C(virt-pci hook uninstall), which manage one executable,
    C(/etc/libvirt/hooks/qemu.d/virt-pci-guard), that checks every VM start against the
    host's IOMMU groups and host-critical devices (other hooks are left alone).
  - Asks C(virt-pci hook status) first, so a guard that is installed and current is not
    touched (idempotent); check mode only asks.
version_added: 0.1.0
author: virt-pci maintainers (!UNKNOWN)
options:
  state:
    description: Whether the guard is installed.
    type: str
    choices: [present, absent]
    default: present
  hook_binary:
    description: The virt-pci binary the hook runs (default the one that installs it).
    type: path
  binary:
    description: The virt-pci binary that does the work (default C(virt-pci) on the PATH).
    type: path
  root:
    description: Install under DIR/etc/libvirt instead of /etc/libvirt (tests, images).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Asks C(virt-pci hook status) and reports whether the guard would be installed or removed; writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
'''

EXAMPLES = r'''
- name: Guard every VM start on the hypervisors
  virt_pci.passthrough.guard:
    hook_binary: /usr/local/bin/virt-pci
'''

RETURN = r'''
status:
  description: What C(virt-pci hook status) said before the change.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virt_pci.passthrough.plugins.module_utils.virt_pci import base_command, run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            hook_binary=dict(type='path'),
            binary=dict(type='path'),
            root=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    base = base_command(module)
    hook_bin = ['--binary', module.params['hook_binary']] if module.params.get('hook_binary') else []
    dummy, out, dummy2 = run(module, base + ['hook', 'status'] + hook_bin, ok_codes=(0, 1))
    state_line = next((line for line in out.splitlines() if line.startswith('state:')), '')
    installed = not state_line.startswith('state: not installed')
    current = state_line.startswith('state: installed, runs') and '(missing' not in state_line
    if module.params['state'] == 'present':
        changed = not current
        if changed and not module.check_mode:
            run(module, base + ['hook', 'install'] + hook_bin + ['--no-reload'] * bool(module.params.get('root')))
    else:
        changed = installed
        if changed and not module.check_mode:
            run(module, base + ['hook', 'uninstall'] + ['--no-reload'] * bool(module.params.get('root')))
    module.exit_json(changed=changed, status=state_line)


if __name__ == '__main__':
    main()
