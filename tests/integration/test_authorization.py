"""Beyond run0, in the testbed with real polkit, PAM and logind: per-command authorization
through the root broker (`runas --via-broker`, polkit action org.runas_podman.run), and
cached authorizations under the caller's control (-k, -K, -v) on the polkit paths and the
broker's own wheel+PAM cache."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.integration import test_runas
from tests.integration.test_runas import Tmux, as_alice, sh
from tests.testbed.testbed import Testbed

tmux_session = test_runas.tmux_session  # the fixture, shared

RULE = "/etc/polkit-1/rules.d/50-runas-authorization-test.rules"
BROKER_CONFIG = "/etc/runas-podman/broker.toml"
PASSWORD = "alice-password"

# What the docs show: alice may run exactly `/usr/bin/id -un` as root, without a password,
# with nothing added (extras), and nothing else through this action.
ONE_COMMAND_RULE = """\
polkit.addRule(function(action, subject) {
    if (action.id != "org.runas_podman.run" || subject.user != "alice")
        return polkit.Result.NOT_HANDLED;
    if (action.lookup("command_line") == "/usr/bin/id -un" &&
        action.lookup("user") == "root" && action.lookup("extras") == "")
        return polkit.Result.YES;
    return polkit.Result.NO;
});
"""


def ask_alice(result: str) -> str:
    """A rule that makes polkit ask alice her own password for both runas actions."""
    return f"""\
polkit.addRule(function(action, subject) {{
    if ((action.id == "org.runas_podman.run" ||
         action.id == "org.freedesktop.systemd1.manage-units") && subject.user == "alice")
        return polkit.Result.{result};
}});
"""


def rule(tb: Testbed, text: str) -> None:
    tb.check(["sh", "-c", f"cat > {RULE}"], input=text)
    time.sleep(2)  # polkitd reloads rules on its own, after an inotify event


@pytest.fixture
def alice(tb: Testbed) -> Iterator[Testbed]:
    sh(tb, f"echo alice:{PASSWORD} | chpasswd")
    yield tb
    sh(tb, f"rm -f {RULE} {BROKER_CONFIG}; rm -rf /run/runas-podman/auth-cache; "
           "passwd -d alice >/dev/null; gpasswd -d alice wheel >/dev/null 2>&1; true")  # fmt: skip
    time.sleep(1)


def started_units(tb: Testbed, since: str) -> list[str]:
    """runas-*.service units started since the journal cursor SINCE."""
    result = sh(tb, f"journalctl --after-cursor='{since}' -o cat --no-pager | "
                    "grep -o 'Started runas-[0-9a-f]*.service' || true")  # fmt: skip
    return result.stdout.split("\n")[:-1]


def cursor(tb: Testbed) -> str:
    return sh(
        tb, "journalctl -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p'"
    ).stdout.strip()


# --- 1. per-command authorization ----------------------------------------------------


def test_a_rule_allows_one_exact_command_and_nothing_else(alice: Testbed) -> None:
    rule(alice, ONE_COMMAND_RULE)
    allowed = alice.run(as_alice("cd /tmp && runas --via-broker id -un"))
    assert (allowed.returncode, allowed.stdout, allowed.stderr) == (0, "root\n", "")
    denied = {
        "id -u": "not authorized to run '/usr/bin/id -u' as root",
        "id -un -z": "not authorized to run '/usr/bin/id -un -z' as root",
        "-u test id -un": "not authorized to run '/usr/bin/id -un' as test",
        "--setenv A=1 id -un": "run '/usr/bin/id -un' as root with Environment=A=1",
        "-p Nice=-5 id -un": "with -p Nice=-5",
        "-s id -un": "not authorized to run '/bin/bash -l -c 'id -un'' as root",
        "sh -c 'id -un'": "not authorized to run '/usr/bin/sh -c 'id -un'' as root",
    }  # fmt: skip
    for arguments, line in denied.items():
        result = alice.run(as_alice(f"cd /tmp && runas --via-broker {arguments}"))
        assert result.returncode == 1, (arguments, result.stdout)
        assert result.stdout == ""
        assert result.stderr.startswith("runas: ") and result.stderr.count("\n") == 1, result.stderr
        assert line in result.stderr, (arguments, result.stderr)
        assert "(polkit action org.runas_podman.run)" in result.stderr


def test_the_shipped_example_rule(alice: Testbed) -> None:
    """docs/examples/50-deploy-nginx.rules as shipped: deploy may restart nginx, nothing else."""
    from tests.testbed.testbed import REPO

    sh(alice, "groupadd -f deploy && usermod -aG deploy alice")
    try:
        rule(alice, (REPO / "docs/examples/50-deploy-nginx.rules").read_text())
        restart = alice.run(
            as_alice("cd /tmp && runas --via-broker systemctl restart nginx.service")
        )
        # Authorized: systemctl itself ran (and found no nginx in the testbed).
        assert restart.returncode == 5 and "nginx.service not found" in restart.stderr
        assert not restart.stderr.startswith("runas:")
        stop = alice.run(as_alice("cd /tmp && runas --via-broker systemctl stop nginx.service"))
        assert stop.returncode == 1 and stop.stderr == (
            "runas: not authorized to run '/usr/bin/systemctl stop nginx.service' as root "
            "(polkit action org.runas_podman.run)\n"
        )
    finally:
        sh(alice, "gpasswd -d alice deploy >/dev/null; groupdel deploy")


def test_what_is_authorized_is_resolved_by_the_broker_not_the_caller(alice: Testbed) -> None:
    """alice's own `id` first in her PATH changes nothing: the broker resolves the command
    on root's terms, checks that path, and starts that very path."""
    rule(alice, ONE_COMMAND_RULE)
    sh(alice, "install -d -o alice /tmp/alice-bin && printf '#!/bin/sh\\necho fake\\n' > "
              "/tmp/alice-bin/id && chmod 755 /tmp/alice-bin/id")  # fmt: skip
    try:
        result = alice.run(
            as_alice("cd /tmp && PATH=/tmp/alice-bin:$PATH runas --via-broker id -un")
        )
        assert (result.returncode, result.stdout) == (0, "root\n"), result.stderr
        explicit = alice.run(as_alice("cd /tmp && runas --via-broker /tmp/alice-bin/id -un"))
        assert explicit.returncode == 1
        assert "not authorized to run '/tmp/alice-bin/id -un' as root" in explicit.stderr
    finally:
        sh(alice, "rm -rf /tmp/alice-bin")


def test_without_a_rule_the_prompt_names_the_command(alice: Testbed, tmux_session) -> None:  # type: ignore[no-untyped-def]
    """pkttyagent shows the action's message with the details filled in; the answer runs it."""
    rule(alice, ask_alice("AUTH_SELF"))
    session = tmux_session("""runas -u alice sh -c "cd /tmp; runas --via-broker -u test id -un" """)
    screen = session.wait_for("Password:", timeout=20)
    assert "AUTHENTICATING FOR org.runas_podman.run" in screen
    assert "Authentication is required to run '/usr/bin/id -un' as test" in screen
    session.keys(PASSWORD, "Enter")
    session.wait_for("test", timeout=20)
    assert session.status() == 0


def test_the_plain_systemd_path_is_unchanged_without_via_broker(alice: Testbed) -> None:
    """Without --via-broker the one-command rule does not apply: systemd's own action is
    checked, which alice is not allowed."""
    rule(alice, ONE_COMMAND_RULE)
    result = alice.run(as_alice("cd /tmp && runas -n id -un"))
    assert result.returncode == 1 and result.stderr.startswith("runas: access denied: ")


# --- 2. cached authorizations ------------------------------------------------------


class AliceShell:
    """alice's login shell in a real logind session on a terminal (tmux), where polkit
    keeps temporary authorizations per session."""

    def __init__(self, tmux: Tmux) -> None:
        self.tmux = tmux
        self.count = 0
        tmux.wait_for("alice@", timeout=20)

    def run(self, command: str, password: str | None = None, timeout: float = 20) -> str:
        """Run COMMAND; answer a prompt with PASSWORD; the screen once it has ended."""
        self.count += 1
        self.tmux.keys("clear", "Enter")
        # Typed as "do""ne-N-$?", shown as done-N-STATUS: the typed line never matches.
        self.tmux.keys(f'{command}; echo "do""ne-{self.count}-$?"', "Enter")
        if password is not None:
            self.tmux.wait_for("Password:", timeout=timeout)
            self.tmux.keys(password, "Enter")
        deadline = time.monotonic() + timeout
        while self._status() is None:
            assert time.monotonic() < deadline, f"{command!r} did not end:\n{self.tmux.screen()}"
            time.sleep(0.1)
        return self.tmux.screen()

    def _status(self) -> int | None:
        prefix = f"done-{self.count}-"
        for line in self.tmux.screen().splitlines():
            if line.startswith(prefix):
                return int(line.removeprefix(prefix))
        return None

    def status(self) -> int:
        status = self._status()
        assert status is not None
        return status


@pytest.fixture
def alice_shell(alice: Testbed, tmux_session) -> AliceShell:  # type: ignore[no-untyped-def]
    return AliceShell(tmux_session("runas -u alice", width=160))


def test_polkit_keep_k_and_K_through_the_broker(alice: Testbed, alice_shell: AliceShell) -> None:
    """auth_self_keep: asked once per session and terminal, for polkit's 5 minutes; -k and
    -K forget it."""
    rule(alice, ask_alice("AUTH_SELF_KEEP"))
    runas = "runas --via-broker"
    screen = alice_shell.run(f"{runas} id -un", password=PASSWORD)
    assert "root" in screen and alice_shell.status() == 0
    screen = alice_shell.run(f"{runas} id -un")  # the same command, in time: nobody asks
    assert "Password:" not in screen and "root" in screen and alice_shell.status() == 0
    # Another command is another authorization (the broker keeps the exact details).
    screen = alice_shell.run(f"{runas} -u test id -un", password=PASSWORD)
    assert "test" in screen and alice_shell.status() == 0
    screen = alice_shell.run(f"{runas} -k id -un", password=PASSWORD)  # forget, then asks
    assert "root" in screen and alice_shell.status() == 0
    screen = alice_shell.run(f"{runas} id -un")
    assert "Password:" not in screen and alice_shell.status() == 0
    screen = alice_shell.run("runas -K")  # forget and exit
    assert "Password:" not in screen and alice_shell.status() == 0
    screen = alice_shell.run(f"{runas} id -un", password=PASSWORD)  # asked again
    assert "root" in screen and alice_shell.status() == 0


def test_polkit_keep_still_lets_rules_decide(alice: Testbed, alice_shell: AliceShell) -> None:
    """What was kept for one command does not carry a command the rules refuse."""
    rule(alice, ask_alice("AUTH_SELF_KEEP"))
    alice_shell.run("runas --via-broker id -un", password=PASSWORD)
    assert alice_shell.status() == 0
    rule(alice, ONE_COMMAND_RULE)  # now: only `id -un`, and nothing kept matters
    screen = alice_shell.run("runas --via-broker id -u")
    assert "not authorized to run '/usr/bin/id -u' as root" in screen
    assert alice_shell.status() == 1


def test_polkit_validate_starts_no_unit(alice: Testbed, alice_shell: AliceShell) -> None:
    rule(alice, ask_alice("AUTH_SELF_KEEP"))
    since = cursor(alice)
    screen = alice_shell.run("runas --via-broker -v", password=PASSWORD)
    assert "Authentication is required to run 'runas -v' as root" in screen
    assert alice_shell.status() == 0
    assert started_units(alice, since) == []
    # What the broker keeps is for one exact command: -v's authentication carries none.
    screen = alice_shell.run("runas --via-broker id -un", password=PASSWORD)
    assert "root" in screen and alice_shell.status() == 0
    screen = alice_shell.run("runas --via-broker id -un")  # this command is kept now
    assert "Password:" not in screen and "root" in screen and alice_shell.status() == 0
    screen = alice_shell.run("runas -v id -un")
    assert "runas: -v runs nothing" in screen and alice_shell.status() == 1


def test_validate_on_systemds_path_asks_for_manage_units(
    alice: Testbed, alice_shell: AliceShell
) -> None:
    rule(alice, ask_alice("AUTH_SELF_KEEP"))
    since = cursor(alice)
    screen = alice_shell.run("runas -v", password=PASSWORD)
    assert "AUTHENTICATING FOR org.freedesktop.systemd1.manage-units" in screen
    assert alice_shell.status() == 0 and started_units(alice, since) == []
    alice_shell.run("runas -v", password="wrong")
    assert alice_shell.status() == 1


def pam_cache(tb: Testbed, text: str) -> None:
    sh(tb, "groupadd -f wheel; usermod -aG wheel alice; mkdir -p /etc/runas-podman")
    tb.check(["sh", "-c", f"cat > {BROKER_CONFIG}"], input=text)


TERMINAL_SEQUENCE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x1b\a]*(\x1b\\|\a))")


def in_alice_session(tb: Testbed, script: str) -> str:
    """SCRIPT as alice in a logind session with a terminal (an outer runas --pty); its
    output without the tint and titles of the inner runas' own ptys (stdout is a tty)."""
    result = tb.run(["runas", "--pty", "--background=", "-u", "alice", "sh", "-c", script])
    return re.sub(r"[\r\n]+", "\n", TERMINAL_SEQUENCE.sub("", result.stdout))


def test_broker_cache_is_off_by_default(alice: Testbed) -> None:
    sh(alice, "groupadd -f wheel; usermod -aG wheel alice")
    out = in_alice_session(
        alice, f"echo {PASSWORD} | runas -S -u test id -un; "
               "echo notpw | runas -S -u test id -un; echo status=$?",
    )  # fmt: skip
    assert "test\n" in out and "the password on stdin (-S) was wrong" in out, out
    assert "status=1" in out


def test_broker_cache_k_K_v_and_expiry(alice: Testbed) -> None:
    pam_cache(alice, "auth_cache = true\nauth_cache_timeout = 4\n")
    out = in_alice_session(alice, "; ".join([
        f"echo {PASSWORD} | runas -S -u test id -un",  # asks (reads stdin's first line)
        "echo kept-stdin | runas -S -u test sh -c 'id -un; cat'",  # cached: stdin untouched
        "echo notpw | runas -S -k -u test true; echo after-k=$?",  # -k: asked again
        f"echo {PASSWORD} | runas -S -u test true",
        "runas -K; echo K=$?",
        "echo notpw | runas -S -u test true; echo after-K=$?",  # -K: asked again
        "sleep 5",
        f"echo {PASSWORD} | runas -S -v; echo v=$?",  # authenticates, runs nothing
        "echo kept-again | runas -S -u test cat",
        "sleep 5",
        "echo notpw | runas -S -u test true; echo expired=$?",  # never extended by use
        "stat -c '%a %U' /run/runas-podman/auth-cache 2>&1",
    ]))  # fmt: skip
    assert "test\ntest\nkept-stdin\n" in out, out
    assert "after-k=1" in out and "K=0" in out and "after-K=1" in out, out
    assert "v=0\nkept-again\n" in out, out
    assert "expired=1" in out, out
    assert "Permission denied" in out or "700 root" in out, out
    assert sh(alice, "stat -c '%a %U' /run/runas-podman/auth-cache").stdout == "700 root\n"


def test_broker_cache_is_bound_to_the_session(alice: Testbed) -> None:
    pam_cache(alice, "auth_cache = true\n")
    first = in_alice_session(alice, f"echo {PASSWORD} | runas -S -u test id -un")
    assert first.strip() == "test", first
    other = in_alice_session(alice, "echo notpw | runas -S -u test true; echo other=$?")
    assert "other=1" in other, other  # another session (and terminal): asked again


def test_broker_refuses_a_bad_configuration_in_one_line(alice: Testbed) -> None:
    pam_cache(alice, "auth_cache = 'yes'\n")
    result = alice.run(as_alice(f"echo {PASSWORD} | runas -S true"))
    assert result.returncode == 1
    assert result.stderr == f"runas: {BROKER_CONFIG}: auth_cache must be true or false\n"


def test_k_v_K_usage(tb: Testbed) -> None:
    for arguments, line in [
        (["-K", "true"], "runas: -K runs nothing: drop the command, or use -k to forget first\n"),
        (["-v", "true"], "runas: -v runs nothing: drop the command, or use -k to forget first\n"),
        (["-k", "-v"], "runas: -k and -v cannot be combined: give one of -k, -K, -v\n"),
    ]:
        result = tb.run(["runas", *arguments])
        assert (result.returncode, result.stderr) == (1, line)
    assert tb.run(["runas", "-K"]).returncode == 0  # root: nothing cached, nothing to do
    assert tb.run(["runas", "-k", "true"]).returncode == 0
