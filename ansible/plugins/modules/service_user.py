#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runas-podman contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: service_user
short_description: Set a service user up for rootless podman, or take it down (runas-podman setup, remove)
description:
  - With O(state=present) (the default), runs the setup of the C(runas_podman) package on
    the target, the same as C(runas-podman setup) - the user (created on request),
    subordinate uid/gid ranges, lingering, the user manager (C(user@UID.service)) and
    C(podman.socket) in it.
  - With O(state=absent), the same as C(runas-podman remove) - the user's Quadlets and
    containers stopped and removed, its podman storage reset (unless O(keep_storage)),
    linger disabled, C(user@UID.service) stopped, the sub-id ranges setup added removed,
    and with O(delete_user) the account and its home. Refused for root, and for an
    account setup did not create unless O(force). A user that is gone is no change.
  - Idempotent. A step with nothing to do changes nothing; the task reports C(changed)
    only when a step changed something.
  - Nothing is left half done. If a step fails, setup undoes the changes already made,
    newest first, before the task fails; RV(steps) then lists them as C(undo) steps.
  - In check mode, setup's dry run lists the changes it would make and makes none.
  - With C(--diff), the state of each step before and after.
version_added: 0.1.0
author:
  - runas-podman contributors (@runas-podman)
requirements:
  - The C(runas_podman) Python package (runas-podman, Python 3.11 or later) importable by
    the target's C(ansible_python_interpreter), e.g. C(/opt/runas-podman/venv/bin/python).
  - systemd with logind, podman, uidmap and dbus-user-session on the target.
  - Root on the target (C(become) if you connect as another user).
options:
  name:
    description:
      - The service user, a name or a numeric uid.
    type: str
    required: true
    aliases: [user]
  create:
    description:
      - Create the user when it does not exist, as a system user with no login shell
        (C(useradd --system --create-home --user-group)).
      - Without it, an unknown user is an error.
    type: bool
    default: false
  home:
    description:
      - Home directory of a created user. Default C(/var/lib/NAME).
      - Used only when the user is created.
    type: path
  state:
    description:
      - V(present) sets the user up; V(absent) takes it down.
    type: str
    choices: [present, absent]
    default: present
  keep_storage:
    description:
      - With O(state=absent), keep the user's images and volumes.
    type: bool
    default: false
  delete_user:
    description:
      - With O(state=absent), also delete the account and its home.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), also take down an account setup did not create.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: setup's dry run (C(runas-podman setup --dry-run)).
  diff_mode:
    support: full
    description: One line per step, before and after.
notes:
  - The steps and their texts are the package's own; see docs/setup.md of runas-podman.
seealso:
  - module: runas_podman.podman_users.doctor
  - module: runas_podman.podman_users.quadlet
"""

EXAMPLES = r"""
- name: A system user for the web service, ready for rootless podman
  runas_podman.podman_users.service_user:
    name: web
    create: true

- name: Take the web service's user down, account and all
  runas_podman.podman_users.service_user:
    name: web
    state: absent
    delete_user: true

- name: An existing account, only what is missing
  runas_podman.podman_users.service_user:
    name: test
  vars:
    ansible_python_interpreter: /opt/runas-podman/venv/bin/python
"""

RETURN = r"""
steps:
  description:
    - Each step of setup in order, as setup reported it; C(undo) steps after a failure.
  returned: always
  type: list
  elements: dict
  contains:
    what:
      description: The step (C(user), C(subuid/subgid), C(linger), C(user@UID.service), C(podman.socket), C(undo)).
      type: str
      sample: linger
    changed:
      description: Whether the step changed something (in check mode, would change).
      type: bool
      sample: true
    detail:
      description: What was done, or the state found.
      type: str
      sample: enabled linger for web (logind)
  sample:
    - {what: user, changed: false, detail: web exists (uid 998)}
    - {what: linger, changed: true, detail: enabled linger for web (logind)}
user:
  description: The account after setup; absent in check mode when the user would be created.
  returned: success
  type: dict
  contains:
    name:
      description: User name.
      type: str
    uid:
      description: User id.
      type: int
    home:
      description: Home directory.
      type: str
  sample: {name: web, uid: 998, home: /var/lib/web}
status:
  description: The exit status C(runas-podman setup) would have had (2 bad usage, 125 failure).
  returned: failure
  type: int
  sample: 125
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runas_podman.podman_users.plugins.module_utils.runas import (
    BusCallError,
    RunasError,
    error_text,
    require_package,
    run,
)

# What a step's state was before it changed, by the verb of its text ("enabled linger ...",
# "would enable linger ..."): the diff's "before" side.
_BEFORE = {
    "create": "absent",
    "add": "no range",
    "enable": "disabled",
    "start": "inactive",
}


def _verb(detail):
    words = detail.split()
    if words and words[0] == "would":
        words = words[1:]
    if not words:
        return ""
    verb = words[0]
    for stem in _BEFORE:
        if verb.startswith(stem):
            if len(words) > 2 and words[1] == "and":  # "would enable and start podman.socket"
                return stem + "+" + words[2]
            return stem
    return verb


def _before(step):
    if not step["changed"]:
        return "%s: %s" % (step["what"], step["detail"])
    verb = _verb(step["detail"])
    states = [_BEFORE.get(part, "?") for part in verb.split("+")]
    return "%s: %s" % (step["what"], ", ".join(states))


def _after(step):
    return "%s: %s" % (step["what"], step["detail"])


def diff_of(name, steps):
    """Before and after, one line per step (undo steps left out)."""
    steps = [s for s in steps if s["what"] != "undo"]
    return {
        "before_header": "service user %s" % name,
        "after_header": "service user %s" % name,
        "before": "".join(_before(s) + "\n" for s in steps),
        "after": "".join(_after(s) + "\n" for s in steps),
    }


# The package's messages name its CLI options; a playbook sets the module's.
_OPTION_WORDS = (
    ("add --create to create it", "set create: true to create it"),
    ("add --force to take it down", "set force: true to take it down"),
    ("unless --delete-user", "unless delete_user: true"),
    ("try --dry-run", "use check mode"),
)


def module_words(message):
    for cli, module in _OPTION_WORDS:
        message = message.replace(cli, module)
    return message


def absent(module):
    """state: absent, through the package's remove."""
    from runas_podman.manage.removal import RemoveOptions, remove

    lines = []
    options = RemoveOptions(
        keep_storage=module.params["keep_storage"], delete_user=module.params["delete_user"],
        force=module.params["force"], dry_run=module.check_mode,
    )
    try:
        changed = run(remove(module.params["name"], options, lines.append))
    except (RunasError, BusCallError, OSError) as error:
        module.fail_json(msg=module_words(error_text(error)), steps=lines,
                         status=getattr(error, "status", 125), changed=bool(lines))
    steps = [dict(what="remove", changed=changed, detail=line) for line in lines]
    result = dict(changed=changed, steps=steps)
    if module._diff:
        name = module.params["name"]
        result["diff"] = {
            "before_header": "service user %s" % name, "after_header": "service user %s" % name,
            "before": "service user %s: present\n" % name if changed else "",
            "after": "".join(line + "\n" for line in lines),
        }
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["user"]),
            create=dict(type="bool", default=False),
            home=dict(type="path"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            keep_storage=dict(type="bool", default=False),
            delete_user=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    require_package(module)
    if module.params["state"] == "absent":
        absent(module)
    from runas_podman.host import lookup
    from runas_podman.manage.service_user import setup

    name = module.params["name"]
    reported = []

    def report(step):
        reported.append(dict(what=step.what, changed=step.changed, detail=step.detail))

    try:
        run(setup(name, module.params["create"], module.params["home"], report,
                  dry_run=module.check_mode))
    except (RunasError, BusCallError, OSError) as error:
        message = module_words(error_text(error))
        module.fail_json(
            msg=message,
            steps=reported,
            status=getattr(error, "status", 125),
            # setup undid what it had made, unless it says it could not.
            changed="could not undo" in message,
        )
    result = dict(changed=any(s["changed"] for s in reported), steps=reported)
    try:
        account = lookup.service_user(name)
    except RunasError:
        account = None  # check mode, and the user would be created
    if account is not None:
        result["user"] = dict(name=account.name, uid=account.uid, home=account.home)
    if module._diff:
        result["diff"] = diff_of(name, reported)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
