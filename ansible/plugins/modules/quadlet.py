#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runas-podman contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: quadlet
short_description: Install, update, remove, start and stop a service user's Quadlet files
description:
  - Manages one Quadlet file (C(.container), C(.pod), C(.network), C(.volume), C(.kube),
    C(.image), C(.build)) in C(~USER/.config/containers/systemd/) with the C(runas_podman)
    package on the target, as C(runas-podman quadlet install|start|stop|remove) do.
  - A new or changed file is validated by podman's own Quadlet generator together with the
    files already installed, before anything is replaced; a rejected file changes nothing
    and the task fails with the generator's message. C(OpenFile=) paths are held to the
    rules of C(runas-podman) (absolute, no specifiers, controlled by root or USER only).
  - The file is written by USER itself, whole (a temporary file and a rename), and USER's
    manager is reloaded. The file's main unit (the first the generator names, for a
    C(.pod) C(NAME-pod.service)) is then started, stopped or restarted as O(state) asks.
  - Idempotent. An identical file is not rewritten, and a unit is restarted only when its
    file changed (O(restart_on_change)).
  - In check mode the new content is still validated by the generator; nothing is written,
    reloaded, started or stopped.
version_added: 0.1.0
author:
  - runas-podman contributors (@runas-podman)
requirements:
  - The C(runas_podman) Python package (runas-podman, Python 3.11 or later) importable by
    the target's C(ansible_python_interpreter).
  - podman (its C(quadlet) generator) on the target; USER set up (see M(runas_podman.podman_users.service_user)).
options:
  user:
    description:
      - The service user whose Quadlet it is.
    type: str
    required: true
  name:
    description:
      - The Quadlet's file name, such as C(web.container). With O(content) or O(src) it must be a
        file name with one of the Quadlet suffixes.
      - Without them (to start, stop or remove an installed Quadlet) also its stem (C(web)) or one
        of its unit names (C(web.service)).
      - Default with O(src) the base name of O(src).
    type: str
  content:
    description:
      - The file's text.
      - Mutually exclusive with O(src).
    type: str
  src:
    description:
      - A file on the controller (searched like M(ansible.builtin.copy) searches, in C(files/)),
        read by this module's action plugin and sent as O(content).
      - Mutually exclusive with O(content).
    type: path
  state:
    description:
      - C(present) installs or updates the file; a running main unit whose file changed is
        restarted (see O(restart_on_change)).
      - C(started) also starts the main unit unless it is active.
      - C(stopped) also stops the main unit if it runs.
      - C(restarted) also restarts the main unit, always (always C(changed)).
      - C(absent) stops the Quadlet's units and removes the file.
      - Without O(content) or O(src), C(present), C(started), C(stopped) and C(restarted) act on
        an installed file only.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: present
  restart_on_change:
    description:
      - Restart the main unit when the file changed and the unit is active (with O(state=present)
        or O(state=started)).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Validates, changes nothing.
  diff_mode:
    support: full
    description: The file's text before and after, and the main unit's state.
notes:
  - A C(Type=oneshot) unit is inactive again once it has run, so O(state=started) would run it
    on every play; add C(RemainAfterExit=yes) to its C([Service]) section.
  - See docs/quadlets.md and docs/secrets.md of runas-podman (C(OpenFile=) takes an absolute path).
seealso:
  - module: runas_podman.podman_users.service_user
  - name: podman-systemd.unit(5)
    description: The Quadlet file format.
    link: https://docs.podman.io/en/latest/markdown/podman-systemd.unit.5.html
"""

EXAMPLES = r"""
- name: The web service, from a file next to the playbook (files/web.container)
  runas_podman.podman_users.quadlet:
    user: web
    src: web.container
    state: started

- name: A container that reads its database password from fd 3
  runas_podman.podman_users.quadlet:
    user: web
    name: app.container
    state: started
    content: |
      [Container]
      Image=localhost/app
      Exec=/app --password-fd 3
      [Service]
      OpenFile=/etc/runas-podman/secrets/db-password:db:read-only

- name: Stop it
  runas_podman.podman_users.quadlet:
    user: web
    name: app
    state: stopped

- name: Remove it
  runas_podman.podman_users.quadlet:
    user: web
    name: app.container
    state: absent
"""

RETURN = r"""
name:
  description: The Quadlet's file name.
  returned: success
  type: str
  sample: web.container
path:
  description: Where the file is (or was) installed.
  returned: success
  type: str
  sample: /var/lib/web/.config/containers/systemd/web.container
units:
  description: The units podman's generator makes of the file (from its output, not guessed).
  returned: success
  type: list
  elements: str
  sample: [web.service]
unit:
  description: The main unit, the one O(state) drives.
  returned: when the file makes a unit
  type: str
  sample: web.service
active_state:
  description: The main unit's ActiveState after the task (before it, in check mode).
  returned: when the file makes a unit and O(state) is not C(absent)
  type: str
  sample: active
file_changed:
  description: Whether the file was (or, in check mode, would be) written or removed.
  returned: success
  type: bool
action:
  description: What was (or would be) done to the main unit, C(StartUnit), C(StopUnit), C(RestartUnit), or none.
  returned: success
  type: str
  sample: StartUnit
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runas_podman.podman_users.plugins.module_utils.runas import (
    BusCallError,
    RunasError,
    error_text,
    require_package,
    run,
)

RUNNING = ("active", "activating", "reloading", "deactivating")
EXPECTED = {"StartUnit": "active", "RestartUnit": "active", "StopUnit": "inactive"}
DONE = {"StartUnit": "started", "RestartUnit": "restarted", "StopUnit": "stopped"}
VERB = {"started": "start", "stopped": "stop", "restarted": "restart"}


def unit_action(state, before, file_changed, restart_on_change):
    """The job the main unit needs, or None."""
    restart = file_changed and restart_on_change and before in RUNNING
    if state == "started":
        if before not in RUNNING:
            return "StartUnit"
        return "RestartUnit" if restart else None
    if state == "stopped":
        return "StopUnit" if before in RUNNING else None
    if state == "restarted":
        return "RestartUnit"
    return "RestartUnit" if restart else None  # present


def states_of(user, units, check_mode, quadlets):
    """ActiveState of each unit; in check mode without a running user manager, inactive
    (connecting would start the manager: a change)."""
    if check_mode and not os.path.exists(os.path.join(user.runtime_dir, "bus")):
        return dict((unit, "inactive") for unit in units)
    return run(quadlets.unit_states(user, list(units)))


def absent(module, user, quadlets):
    name = module.params["name"]
    try:
        ((file_name, units),) = quadlets.resolve(user, [name])
    except RunasError:
        return dict(changed=False, name=name, units=[], file_changed=False, action="none",
                    path=str(quadlets.quadlet_dir(user) / name))
    files = quadlets.installed(user)
    old = files.get(file_name, "")
    needed = quadlets.dependents(files, [file_name])
    if needed:  # its units would fail at their next start
        module.fail_json(
            msg="%s is used by %s of %s: remove that one first (a task with name: %s, "
            "state: absent)" % (file_name, needed[0][0], user.name, needed[0][0])
        )
    if not module.check_mode:
        run(quadlets.run_jobs(user, "StopUnit", units))
        if not quadlets.remove(user, [file_name]):  # podman quadlet rm reloads itself
            run(quadlets.reload_manager(user))
    path = str(quadlets.quadlet_dir(user) / file_name)
    result = dict(changed=True, name=file_name, units=units, file_changed=True,
                  action="StopUnit", path=path)
    if units:
        result["unit"] = units[0]
    if module._diff:
        result["diff"] = dict(before=old, after="", before_header=path, after_header=path)
    return result


def present(module, user, quadlets):
    params = module.params
    content, state = params["content"], params["state"]
    files = quadlets.installed(user)
    if content is None:
        try:
            ((file_name, units),) = quadlets.resolve(user, [params["name"]])
        except RunasError as error:
            module.fail_json(msg="%s; give content or src to install it" % error.message)
        old = None
        file_changed = False
    else:
        file_name = params["name"]
        if not file_name or os.path.basename(file_name) != file_name:
            module.fail_json(msg="name must be a file name such as web.container, not %r" % file_name)
        if not file_name.endswith(quadlets.SUFFIXES):
            module.fail_json(
                msg="%s: not a quadlet file (one of %s)" % (file_name, ", ".join(quadlets.SUFFIXES))
            )
        old = files.get(file_name)
        file_changed = old != content
        if not file_changed:
            units = quadlets.generate(files).get(file_name, [])
        elif module.check_mode:  # validate as install would, change nothing
            quadlets.check_open_files(user, file_name, content)
            units = quadlets.generate(dict(files, **{file_name: content})).get(file_name, [])
        else:
            with tempfile.TemporaryDirectory(prefix="runas-podman-quadlet-") as staging:
                source = os.path.join(staging, file_name)
                with open(source, "w") as out:
                    out.write(content)
                from pathlib import Path

                units = quadlets.install(user, [Path(source)])[file_name]
            if not quadlets.podman_manages_quadlets():  # podman quadlet install reloads
                run(quadlets.reload_manager(user))
    path = str(quadlets.quadlet_dir(user) / file_name)
    result = dict(name=file_name, units=units, path=path, file_changed=file_changed,
                  action="none")
    diffs = []
    if file_changed:
        diffs.append(dict(before=old or "", after=content, before_header=path, after_header=path))
    action = None
    if units:
        unit = units[0]
        result["unit"] = unit
        before = states_of(user, [unit], module.check_mode, quadlets)[unit]
        action = unit_action(state, before, file_changed, params["restart_on_change"])
        after = before
        if action is not None and not module.check_mode:
            # The package's own driving: the job waited for, a started unit held to stay
            # up, and on anything else a message naming `runas-podman logs` for why.
            try:
                ((_unit, after, problem),) = run(quadlets.drive(user, action, [file_name]))
            except (RunasError, BusCallError) as error:
                problem = error_text(error)
            if problem is not None:
                # What was done stays done (the file is installed): said, with the failure.
                module.fail_json(msg="%s: %s" % (unit, problem) if not problem.startswith(unit)
                                 else problem, changed=True, active_state=after, **result)
        result["active_state"] = after
        result["action"] = action or "none"
        if action is not None:
            expected = after if not module.check_mode else EXPECTED[action]
            diffs.append(dict(before="%s: %s\n" % (unit, before),
                              after="%s: %s (%s)\n" % (unit, expected, DONE[action]),
                              before_header=unit, after_header=unit))
    elif state in ("started", "stopped", "restarted"):
        module.fail_json(msg="%s makes no unit: nothing to %s" % (file_name, VERB[state]))
    result["changed"] = file_changed or action is not None
    if module._diff and diffs:
        result["diff"] = diffs
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            user=dict(type="str", required=True),
            name=dict(type="str"),
            content=dict(type="str"),
            src=dict(type="path"),
            state=dict(type="str", default="present",
                       choices=["present", "started", "stopped", "restarted", "absent"]),
            restart_on_change=dict(type="bool", default=True),
        ),
        mutually_exclusive=[["content", "src"]],
        required_one_of=[["name", "src"]],
        supports_check_mode=True,
    )
    if module.params["src"] is not None:
        module.fail_json(msg="src is read on the controller by the action plugin of "
                             "runas_podman.podman_users.quadlet: call the module by that name")
    require_package(module)
    from runas_podman.host import lookup
    from runas_podman.manage import quadlet as quadlets

    try:
        user = lookup.service_user(module.params["user"])
        if module.params["state"] == "absent":
            result = absent(module, user, quadlets)
        else:
            result = present(module, user, quadlets)
    except (RunasError, BusCallError, OSError) as error:
        module.fail_json(msg=error_text(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
