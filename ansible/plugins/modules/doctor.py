#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runas-podman contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: doctor
short_description: Check what a service user needs for rootless podman (runas-podman doctor)
description:
  - Runs the checks of the C(runas_podman) package on the target, the same as
    C(runas-podman doctor -u USER --format json), and returns them as facts.
  - Each check is C(ok), C(warn) or C(fail), with a detail and the command that fixes it.
  - Changes nothing. The task fails only when O(fail_on) says so; its message is doctor's
    own lines for the checks that made it fail.
version_added: 0.1.0
author:
  - runas-podman contributors (@runas-podman)
requirements:
  - The C(runas_podman) Python package (runas-podman, Python 3.11 or later) importable by
    the target's C(ansible_python_interpreter).
options:
  name:
    description:
      - The service user, a name or a numeric uid.
    type: str
    required: true
    aliases: [user]
  fail_on:
    description:
      - C(fail) fails the task when a check fails (as doctor's exit status does).
      - C(warn) fails it when a check fails or warns.
      - C(never) never fails it; read RV(checks) or the facts instead.
    type: str
    choices: [fail, warn, never]
    default: fail
attributes:
  check_mode:
    support: full
    description: The checks read state only; they run in check mode too.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  facts:
    support: full
    description: The checks as C(ansible_facts.runas_podman_doctor).
notes:
  - The checks, and the fix each one prints, are described in docs/troubleshooting.md of runas-podman.
seealso:
  - module: runas_podman.podman_users.service_user
"""

EXAMPLES = r"""
- name: Stop here on a host where the service user cannot run podman
  runas_podman.podman_users.doctor:
    name: web

- name: Only collect the checks
  runas_podman.podman_users.doctor:
    name: web
    fail_on: never
  register: doctor

- name: Show the warnings
  ansible.builtin.debug:
    msg: "{{ ansible_facts.runas_podman_doctor.checks | selectattr('status', 'equalto', 'warn') | list }}"
"""

RETURN = r"""
checks:
  description: The checks, exactly the JSON of C(runas-podman doctor --format json).
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: The check's name (C(user), C(subuid), C(linger), C(podman), ...).
      type: str
    status:
      description: C(ok), C(warn) or C(fail).
      type: str
    detail:
      description: What was found.
      type: str
    fix:
      description: The command that fixes it (empty when there is none).
      type: str
  sample:
    - {check: podman, status: fail, detail: not installed, fix: apt-get install podman uidmap}
failing:
  description: Doctor's text lines (as C(runas-podman doctor) prints them) of the checks that fail, or warn.
  returned: always
  type: list
  elements: str
  sample: ["fail podman: not installed -> apt-get install podman uidmap"]
ansible_facts:
  description: Facts for later tasks.
  returned: always
  type: dict
  contains:
    runas_podman_doctor:
      description: The user checked, its checks and whether any failed.
      type: dict
      contains:
        user:
          description: The user checked.
          type: str
        checks:
          description: The same list as RV(checks).
          type: list
          elements: dict
        failed:
          description: Whether any check failed (doctor's exit status 1).
          type: bool
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runas_podman.podman_users.plugins.module_utils.runas import (
    RunasError,
    require_package,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["user"]),
            fail_on=dict(type="str", choices=["fail", "warn", "never"], default="fail"),
        ),
        supports_check_mode=True,
    )
    require_package(module)
    from runas_podman.manage.doctor import failed, render_json, render_text, run_checks

    name = module.params["name"]
    try:
        found = run_checks(name)
    except RunasError as error:  # bad text for a user name: a usage error, not a check
        module.fail_json(msg=error.message, status=error.status)
    checks = json.loads(render_json(found))  # the CLI's JSON, as it is
    statuses = ("fail", "warn") if module.params["fail_on"] == "warn" else ("fail",)
    failing = [c for c in found if c.status in ("fail", "warn")]
    result = dict(
        changed=False,
        checks=checks,
        failing=render_text(failing).splitlines() if failing else [],
        ansible_facts=dict(
            runas_podman_doctor=dict(user=name, checks=checks, failed=failed(found)),
        ),
    )
    stopping = [c for c in found if c.status in statuses]
    if module.params["fail_on"] != "never" and stopping:
        # The checks once (a registered result has them), not again as facts: a failed
        # task prints its whole result.
        del result["ansible_facts"]
        module.fail_json(
            msg="runas-podman doctor -u %s: %s" % (name, "; ".join(render_text(stopping).splitlines())),
            **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
