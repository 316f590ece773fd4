"""The group `empower` and its polkit rule: systemd's where the host has them (systemd >= 259
ships the rule, and upstream a sysusers entry for the group), the project's otherwise.

`runas --empower` gives its command every capability and the supplementary group
`empower` when that group exists (elevate.py, as run0 >= 259). The group is worth
something only with a polkit rule allowing every action to it, and only where polkit
judges a process by its own groups: measured, polkit 126 (Debian 13) and 128 do, 122
(Debian 12) reads the user's groups from the user database and ignores the unit's
SupplementaryGroups=. `runas-podman install --empower` adds what the host lacks: the group
(through a sysusers.d file and systemd-sysusers) and the rule; `uninstall` takes both away.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from runas_podman.core.elevate import EMPOWER_GROUP

GROUP = EMPOWER_GROUP  # one name for it: core.elevate
# systemd >= 259 installs its rule as empower.rules (polkit reads /etc before /usr/share).
SYSTEMD_RULES = ("/usr/share/polkit-1/rules.d/empower.rules", "/etc/polkit-1/rules.d/empower.rules")
RULE_FILE = "/etc/polkit-1/rules.d/49-runas-empower.rules"
SYSUSERS_FILE = "/etc/sysusers.d/runas-empower.conf"
POLKIT_GROUPS_OF_PROCESS_SINCE = 126  # the oldest polkit measured to honour them
RUNAS_SINCE = 259  # the systemd whose run0 has --empower and ships the rule

RULE_TEXT = """\
// runas-podman (runas-podman install --empower): polkit allows every action to a process
// in group "empower", as the rule systemd >= 259 ships for run0 --empower does.
// `runas --empower` adds that group to its command; `runas-podman uninstall` removes this.
polkit.addRule(function(action, subject) {
    if (subject.isInGroup("empower")) {
        return polkit.Result.YES;
    }
});
"""

SYSUSERS_TEXT = """\
# runas-podman (runas-podman install --empower): the group runas --empower adds to its
# command, which the polkit rule 49-runas-empower.rules allows every action.
g empower - - -
"""


def systemd_rule(host: Callable[[str], str] = lambda path: path) -> str | None:
    """systemd's own rule file, if the host has one."""
    return next((path for path in SYSTEMD_RULES if os.path.exists(host(path))), None)


def has_rule(host: Callable[[str], str] = lambda path: path) -> bool:
    """Whether a rule is there, or this caller cannot tell (/etc/polkit-1/rules.d is
    readable by root and polkitd only): no note is better than a wrong one."""
    for path in (*SYSTEMD_RULES, RULE_FILE):
        try:
            os.stat(host(path))
        except PermissionError:
            return True
        except OSError:
            continue
        return True
    return False


def polkit_version() -> int | None:
    """polkit's version from `pkaction --version` (the same package as polkitd), or None."""
    import subprocess

    from runas_podman.host.lookup import is_executable_file, resolve_executable

    pkaction = resolve_executable("pkaction", is_executable_file)
    if pkaction is None:
        return None
    try:
        text = subprocess.run(
            [pkaction, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = text.split()
    number = words[-1].split(".")[0] if words else ""
    return int(number) if number.isascii() and number.isdigit() else None


def missing_note(group_exists: bool, rule_exists: bool) -> str | None:
    """The one line runas --empower prints when the host lacks the group or its rule."""
    if group_exists and rule_exists:
        return None
    what = "no group 'empower'" if not group_exists else "no polkit rule for group 'empower'"
    return (
        f"{what} here: the command gets every capability, but polkit does not treat it as "
        f"privileged (systemd >= {RUNAS_SINCE} ships the rule; `runas-podman install "
        "--empower` adds what is missing)"
    )
