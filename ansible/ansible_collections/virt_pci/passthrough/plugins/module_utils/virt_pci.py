# -*- coding: utf-8 -*-
# Copyright: virt-pci maintainers
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Running the virt-pci binary from Ansible modules.

Every decision (which functions travel together, what is host-critical,
whether a mapping entry is stale) is virt-pci's: the modules only run it,
read its JSON, and turn its rustc-shaped error messages into Ansible
failures verbatim.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

HOST_ARGS = dict(
    binary=dict(type='path'),
    root=dict(type='path'),
    snapshot=dict(type='path'),
    uri=dict(type='str'),
)


def base_command(module):
    """virt-pci with the host options the task gives."""
    binary = module.params.get('binary') or module.get_bin_path('virt-pci', required=True)
    cmd = [binary]
    if module.params.get('snapshot'):
        cmd += ['--snapshot', module.params['snapshot']]
    if module.params.get('root'):
        cmd += ['--root', module.params['root']]
    if module.params.get('uri'):
        cmd += ['--connect', module.params['uri']]
    return cmd


def error_text(err):
    """virt-pci's error (from its first `error:` line on), without the plan
    printed before it; the whole stderr stays in the result's `stderr`."""
    lines = err.strip().splitlines()
    for i, line in enumerate(lines):
        if line.startswith('error:'):
            return '\n'.join(lines[i:])
    return '\n'.join(lines)


def run(module, args, ok_codes=(0,)):
    """Run virt-pci; a failure ends the task with virt-pci's own message."""
    rc, out, err = module.run_command(args, environ_update={'NO_COLOR': '1'})
    if rc not in ok_codes:
        message = error_text(err) or out.strip() or 'virt-pci exited with %d' % rc
        module.fail_json(msg=message, rc=rc, cmd=args, stdout=out, stderr=err)
    return rc, out, err


def run_json(module, args, ok_codes=(0,)):
    """Run virt-pci and read its JSON output."""
    dummy, out, dummy2 = run(module, args, ok_codes=ok_codes)
    try:
        return json.loads(out)
    except ValueError as e:
        module.fail_json(msg='virt-pci printed no JSON: %s' % e, cmd=args, stdout=out)
