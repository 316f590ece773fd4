"""Environment: hostile variables of the caller never reach the command.

The caller sets LD_PRELOAD, LD_LIBRARY_PATH, PYTHONPATH, BASH_ENV, ENV, SHELLOPTS, PS4, IFS
and a PATH whose first directory, /tmp/evil, holds executables named like the ones the
command and the launcher run (each prints EVIL-NAME). The command's `env` must hold none
of them, its PATH must not name /tmp/evil, a bash in the unit must not read BASH_ENV, and
`id` must be the real one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.conftest import ALICE_PASSWORD, Figures
from tests.reliability.inside import sh
from tests.testbed.testbed import INSIDE_PATH, Testbed

EVIL_DIR = "/tmp/evil"
# Not setpriv: Testbed.run(user=...) starts alice's runas with it, found on the hostile PATH.
EVIL_NAMES = ["env", "id", "bash", "sh", "cat", "true", "sleep", "printenv", "podman",
              "systemd-run", "pkttyagent"]  # fmt: skip
HOSTILE = {
    "LD_PRELOAD": f"{EVIL_DIR}/evil.so",
    "LD_LIBRARY_PATH": EVIL_DIR,
    "PYTHONPATH": EVIL_DIR,
    "BASH_ENV": f"{EVIL_DIR}/bash_env",
    "ENV": f"{EVIL_DIR}/bash_env",
    "SHELLOPTS": "xtrace",
    "PS4": "EVIL-PS4 ",
    "IFS": ":",
    "RELIABILITY_CANARY": "leaked",
    "PATH": f"{EVIL_DIR}:{INSIDE_PATH}",
}
# One command line per launch path; each runs the same probe in the unit.
PROBE = ["sh", "-c", "env; echo id=$(id -un); bash -c 'echo bash-ran'"]
LAUNCHERS = {
    "exec-system": ["runas-podman", "exec", "-u", "test", "--"],
    "exec-user": ["runas-podman", "exec", "-u", "test", "--via", "user", "--"],
    "runas": ["runas", "-u", "test"],
}


@pytest.fixture
def evil_dir(tb: Testbed) -> Iterator[Testbed]:
    scripts = "; ".join(
        f"printf '#!/bin/sh\\necho EVIL-{name}\\n' > {EVIL_DIR}/{name}" for name in EVIL_NAMES
    )
    result = sh(
        tb,
        f"mkdir -p {EVIL_DIR}; {scripts}; echo 'echo EVIL-BASH_ENV' > {EVIL_DIR}/bash_env; "
        f"chmod -R a+rx {EVIL_DIR}",
    )
    assert result.returncode == 0, result.stderr
    # The control: in the caller's own context the hostile PATH does decide.
    assert tb.run(["id"], env=HOSTILE).stdout == "EVIL-id\n"
    yield tb
    tb.run(["rm", "-rf", EVIL_DIR])


def check_probe_output(stdout: str) -> dict[str, str]:
    """The probe's environment, after checking that nothing hostile reached it."""
    lines = stdout.splitlines()
    assert lines[-2:] == ["id=test", "bash-ran"], stdout  # the real id; BASH_ENV not read
    assert "EVIL" not in stdout, stdout
    env = dict(line.split("=", 1) for line in lines[:-2] if "=" in line)
    leaked = sorted(set(HOSTILE) - {"PATH"} & set(env))
    assert leaked == [], f"reached the command: {leaked}"
    assert EVIL_DIR not in env["PATH"], env["PATH"]
    return env


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_hostile_environment_stays_behind(
    evil_dir: Testbed, figures: Figures, launcher: str
) -> None:
    result = evil_dir.run([*LAUNCHERS[launcher], *PROBE], env=HOSTILE)
    assert result.returncode == 0, result.stderr
    env = check_probe_output(result.stdout)
    figures(
        f"environment {launcher}: {len(HOSTILE)} hostile variables set, none reached "
        f"the command (it saw {len(env)} variables, PATH={env['PATH']})"
    )


def test_hostile_environment_stays_behind_through_the_broker(
    evil_dir: Testbed, wheel_alice: Testbed, figures: Figures
) -> None:
    result = evil_dir.run(
        ["runas", "-S", "-u", "test", *PROBE],
        user="alice",
        env=HOSTILE,
        input=f"{ALICE_PASSWORD}\n",
    )
    assert result.returncode == 0, result.stderr
    env = check_probe_output(result.stdout)
    figures(
        f"environment runas-broker: {len(HOSTILE)} hostile variables set, none reached "
        f"the command (it saw {len(env)} variables, PATH={env['PATH']})"
    )
