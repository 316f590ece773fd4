"""The Quadlet files in quadlets/, installed and run as user test through runas-podman."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.testbed.testbed import Testbed

QUADLET_DIR = "/home/test/.config/containers/systemd"


def sh(tb: Testbed, script: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return tb.run(["bash", "-c", script], **kwargs)  # type: ignore[arg-type]


def quadlet(tb: Testbed, *arguments: str):  # type: ignore[no-untyped-def]
    return tb.run(
        ["runas-podman", "quadlet", arguments[0], "-u", "test", *arguments[1:]], timeout=180
    )


def podman_version(tb: Testbed) -> tuple[int, int]:
    text = tb.check(["podman", "--version"]).stdout
    found = re.search(r"([0-9]+)\.([0-9]+)", text)
    assert found is not None, text
    return int(found.group(1)), int(found.group(2))


def refused_for_old_podman(tb: Testbed) -> bool:
    """Podman < 4.4 (bookworm's 4.3) has no Quadlet: the install is refused in one line
    naming the version needed, and nothing is installed. True when that was checked."""
    if podman_version(tb) >= (4, 4):
        return False
    result = quadlet(tb, "install", "/src/quadlets/web.container")
    assert result.returncode == 125, result.stderr
    assert result.stderr.startswith("runas-podman: Quadlets need podman 4.4 or newer")
    assert result.stderr.count("\n") == 1
    assert tb.run(["sh", "-c", f"ls {QUADLET_DIR} 2>/dev/null"]).stdout == ""
    return True


@pytest.fixture
def clean_quadlets(tb: Testbed) -> Iterator[Testbed]:
    yield tb
    installed = tb.run(["sh", "-c", f"ls {QUADLET_DIR} 2>/dev/null"]).stdout.split()
    if installed:
        quadlet(tb, "remove", *installed)
    sh(tb, "systemctl --user -M test@ reset-failed; rm -rf /etc/runas-podman")


def test_long_running_container(clean_quadlets: Testbed) -> None:
    if refused_for_old_podman(clean_quadlets):
        return
    tb = clean_quadlets
    installed = quadlet(tb, "install", "/src/quadlets/web.container")
    assert installed.stdout == "installed web.container: web.service\n", installed.stderr
    assert quadlet(tb, "start", "web").stdout == "web.service: active\n"
    served = ""
    for _ in range(50):
        served = sh(
            tb, "runuser -u test -- busybox wget -qO- http://127.0.0.1:8080/hostname"
        ).stdout
        if served:
            break
        time.sleep(0.2)
    assert served.strip() != ""  # the container's /etc/hostname, through pasta
    listing = quadlet(tb, "list").stdout.splitlines()
    assert listing[1].split() == ["web.container", "web.service", "active"]
    assert quadlet(tb, "stop", "web.service").returncode == 0
    assert quadlet(tb, "remove", "web").stdout == "removed web.container\n"
    assert tb.run(["ls", QUADLET_DIR]).stdout == ""


def test_secret_file_reaches_the_container_as_an_fd(clean_quadlets: Testbed) -> None:
    if refused_for_old_podman(clean_quadlets):
        return
    tb = clean_quadlets
    sh(tb, "printf 'quadlet-secret\\n' | install -D -m 0640 -o root -g test /dev/stdin "
           "/etc/runas-podman/demo-secret")  # fmt: skip
    assert quadlet(tb, "install", "/src/quadlets/secret-reader.container").returncode == 0
    started = quadlet(tb, "start", "secret-reader")
    assert started.stdout == "secret-reader.service: inactive\n", (
        started.stderr
    )  # ran to completion
    journal = sh(tb, "journalctl --no-pager -o cat _SYSTEMD_USER_UNIT=secret-reader.service").stdout
    assert "fd 3 is demo-secret:" in journal and "quadlet-secret" in journal


def test_pod_and_member(clean_quadlets: Testbed) -> None:
    if refused_for_old_podman(clean_quadlets):
        return
    tb = clean_quadlets
    installed = quadlet(tb, "install", "/src/quadlets/demo.pod", "/src/quadlets/demo-app.container")
    assert installed.stdout.splitlines() == [
        "installed demo.pod: demo-pod.service",
        "installed demo-app.container: demo-app.service",
    ], installed.stderr
    assert quadlet(tb, "start", "demo-app").stdout == "demo-app.service: active\n"
    states = {
        line.split()[1]: line.split()[2] for line in quadlet(tb, "list").stdout.splitlines()[1:]
    }
    assert states == {"demo-app.service": "active", "demo-pod.service": "active"}
    pods = tb.run(["runas-podman", "podman", "-u", "test", "--", "pod", "ps", "--format",
                   "{{.Name}} {{.NumberOfContainers}}"]).stdout  # fmt: skip
    assert "demo 2" in pods.splitlines()


def test_a_bad_file_is_rejected_and_nothing_installed(clean_quadlets: Testbed) -> None:
    if refused_for_old_podman(clean_quadlets):
        return
    tb = clean_quadlets
    sh(tb, "printf '[Container]\\nImage=localhost/busybox\\nBogus=1\\n' > /run/bad.container")
    result = quadlet(tb, "install", "/src/quadlets/web.container", "/run/bad.container")
    assert result.returncode == 125
    assert result.stderr.startswith(
        'runas-podman: rejected by podman\'s quadlet generator: converting "bad.container": '
        "unsupported key 'Bogus' in group 'Container'"
    )
    assert tb.run(["sh", "-c", f"ls {QUADLET_DIR} 2>/dev/null"]).stdout == ""  # not even web
    sh(tb, "rm -f /run/bad.container")


def test_unknown_quadlet_name(tb: Testbed) -> None:
    if refused_for_old_podman(tb):
        return
    result = quadlet(tb, "start", "nosuch")
    assert result.returncode == 125
    assert result.stderr == (
        "runas-podman: test has no quadlet 'nosuch' (runas-podman quadlet list -u test)\n"
    )


def test_install_never_follows_the_users_links_as_root(clean_quadlets: Testbed) -> None:
    if refused_for_old_podman(clean_quadlets):
        return
    """The service user controls its home: root must not write through its symlinks."""
    tb = clean_quadlets
    sh(tb, "mkdir -p /etc/rp-victim-dir; echo original > /etc/rp-victim-file; "
           "runuser -u test -- mkdir -p /home/test/.config/containers/systemd; "
           "runuser -u test -- ln -sf /etc/rp-victim-file "
           "/home/test/.config/containers/systemd/.web.container.runas-new")  # fmt: skip
    try:
        planted = quadlet(tb, "install", "/src/quadlets/web.container")
        assert planted.returncode == 0, planted.stderr  # the planted link is the user's own
        assert tb.run(["cat", "/etc/rp-victim-file"]).stdout == "original\n"
        quadlet(tb, "remove", "web")
        sh(tb, f"rm -rf {QUADLET_DIR}; runuser -u test -- ln -s /etc/rp-victim-dir {QUADLET_DIR}")
        redirected = quadlet(tb, "install", "/src/quadlets/web.container")
        assert redirected.returncode == 125, redirected.stderr
        assert "permission denied" in redirected.stderr.lower()  # ours, or podman 5.6+'s own
        assert redirected.stderr.count("\n") == 1
        assert tb.run(["ls", "-A", "/etc/rp-victim-dir"]).stdout == ""
    finally:
        sh(tb, f"rm -f {QUADLET_DIR}; rm -rf /etc/rp-victim-dir /etc/rp-victim-file")


PODMAN_QUADLET_SINCE = (5, 6)  # podman quadlet install/list/rm


def podmans_own_list(tb: Testbed) -> dict[str, dict[str, str]]:
    """`podman quadlet list` as test (podman >= 5.6): {file name: its entry}."""
    import json

    listed = tb.run(["runas-podman", "podman", "-u", "test", "-q", "--", "quadlet", "list",
                     "--format", "json"])  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    return {entry["Name"]: entry for entry in json.loads(listed.stdout or "[]")}


def test_installed_and_removed_the_way_this_podman_does(clean_quadlets: Testbed) -> None:
    """podman >= 5.6: through `podman quadlet install/rm` (its list shows the file, with
    the `.NAME.app` mark its installer leaves); older: the project's own installer."""
    if refused_for_old_podman(clean_quadlets):
        return
    tb = clean_quadlets
    by_podman = podman_version(tb) >= PODMAN_QUADLET_SINCE
    installed = quadlet(tb, "install", "/src/quadlets/web.container")
    assert installed.stdout == "installed web.container: web.service\n", installed.stderr
    files = tb.run(["ls", "-A", QUADLET_DIR]).stdout.split()
    assert files == ([".web.container.app", "web.container"] if by_podman else ["web.container"])
    if by_podman:
        entry = podmans_own_list(tb)["web.container"]
        assert (
            entry["UnitName"] == "web.service" and entry["Path"] == f"{QUADLET_DIR}/web.container"
        )
    # Installing it again replaces it (podman alone would refuse without --replace).
    sh(tb, "sed 's/^Description=.*/Description=replaced/' /src/quadlets/web.container "
           "> /run/web.container")  # fmt: skip
    again = quadlet(tb, "install", "/run/web.container")
    assert again.returncode == 0, again.stderr
    assert "Description=replaced" in tb.check(["cat", f"{QUADLET_DIR}/web.container"]).stdout
    listing = quadlet(tb, "list").stdout.splitlines()
    assert [line.split() for line in listing[1:]] == [["web.container", "web.service", "inactive"]]
    assert quadlet(tb, "remove", "web").stdout == "removed web.container\n"
    assert tb.run(["ls", "-A", QUADLET_DIR]).stdout == ""  # the .app mark too
    if by_podman:
        assert "web.container" not in podmans_own_list(tb)
    sh(tb, "rm -f /run/web.container")


def test_bad_input_is_refused_before_podman_installs_anything(clean_quadlets: Testbed) -> None:
    """The same refusals on every podman: the generator's complaint and the OpenFile= rule
    come first (podman 5.8's own install takes a file with an unknown key, exit 0), and a
    failed install leaves the files already there as they were."""
    if refused_for_old_podman(clean_quadlets):
        return
    tb = clean_quadlets
    assert quadlet(tb, "install", "/src/quadlets/web.container").returncode == 0
    before = tb.check(["cat", f"{QUADLET_DIR}/web.container"]).stdout
    sh(tb, "sed 's/^Description=.*/Description=changed/' /src/quadlets/web.container "
           "> /run/web.container; "
           "printf '[Container]\\nImage=localhost/busybox\\nBogus=1\\n' > /run/bad.container; "
           "printf '[Container]\\nImage=localhost/busybox\\n[Service]\\n"
           "OpenFile=/tmp/rp-secret:s:read-only\\n' > /run/open.container; "
           "install -o alice /dev/null /tmp/rp-secret")  # fmt: skip
    try:
        for files, expected in [
            (["/run/web.container", "/run/bad.container"],
             "unsupported key 'Bogus' in group 'Container'"),
            (["/run/web.container", "/run/open.container"],
             "open.container: OpenFile=/tmp/rp-secret: /tmp is writable by others"),
        ]:  # fmt: skip
            result = quadlet(tb, "install", *files)
            assert result.returncode == 125, result.stderr
            assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
            assert tb.run(["ls", "-A", QUADLET_DIR]).stdout.split() == sorted(
                [".web.container.app", "web.container"]
                if podman_version(tb) >= PODMAN_QUADLET_SINCE
                else ["web.container"]
            )
            assert tb.check(["cat", f"{QUADLET_DIR}/web.container"]).stdout == before
            if podman_version(tb) >= PODMAN_QUADLET_SINCE:
                assert set(podmans_own_list(tb)) == {"web.container"}
    finally:
        sh(tb, "rm -f /run/web.container /run/bad.container /run/open.container /tmp/rp-secret")


DIES = """\
[Container]
Image=localhost/busybox
Exec=sh -c 'echo dying-now; exit 3'
Network=none

[Service]
Restart=no
"""


def test_a_container_that_dies_at_once_fails_start_and_names_its_journal(
    clean_quadlets: Testbed,
) -> None:
    """issue 22: `quadlet start` said `active`, exit 0, for a container that died at once;
    stopping a failed unit said `failed`, exit 0. Now neither is 0, and the journal
    command printed is one that works as root, as printed."""
    if refused_for_old_podman(clean_quadlets):
        return
    tb = clean_quadlets
    tb.check(["sh", "-c", "mkdir -p /root/q && cat > /root/q/dies.container"], input=DIES)
    try:
        assert quadlet(tb, "install", "/root/q/dies.container").returncode == 0
        started = quadlet(tb, "start", "dies")
        assert started.returncode != 0, started.stdout + started.stderr
        said = started.stdout + started.stderr
        hint = re.search(r"(runas-podman logs -u test -n 20 dies\.service)", said)
        assert hint is not None, said
        journal = tb.run(["sh", "-c", hint.group(1)])
        assert journal.returncode == 0 and "dying-now" in journal.stdout, journal.stdout
        stopped = quadlet(tb, "stop", "dies")  # a failed unit stays failed: not what was asked
        assert stopped.returncode == 1, stopped.stdout + stopped.stderr
        assert stopped.stdout.startswith(
            "dies.service: failed (not inactive: runas-podman logs -u test -n 20 dies.service)"
        )
    finally:
        tb.run(["rm", "-rf", "/root/q"])


TESTBED_DROP_IN = "/etc/containers/systemd/users/container.d/10-testbed-cgroup-v1.conf"


def doctor_checks(tb: Testbed) -> dict[str, dict[str, str]]:
    import json

    result = tb.run(["runas-podman", "doctor", "-u", "test", "--json"])
    return {check["check"]: check for check in json.loads(result.stdout)}


def test_doctor_and_install_catch_the_cgroup_v1_trap_and_the_fix_works(
    clean_quadlets: Testbed,
) -> None:
    """On the hybrid (cgroup v1) hosts, without a drop-in, Quadlet's --cgroups=split fails:
    doctor says so with a fix that works as printed, and install refuses such a file
    unless it sets --cgroups itself. On cgroup v2 (sid) doctor says it works."""
    tb = clean_quadlets
    if podman_version(tb) < (4, 4):
        assert "quadlet cgroups" not in doctor_checks(tb)  # no Quadlet: no trap to tell
        return
    v2 = tb.run(["test", "-e", "/sys/fs/cgroup/cgroup.controllers"]).returncode == 0
    if v2:
        assert doctor_checks(tb)["quadlet cgroups"]["status"] == "ok"
        return
    uid = tb.check(["id", "-u", "test"]).stdout.strip()
    own = f"/etc/containers/systemd/users/{uid}/container.d/10-cgroup-v1.conf"
    sh(tb, f"mv {TESTBED_DROP_IN} {TESTBED_DROP_IN}.away")
    try:
        check = doctor_checks(tb)["quadlet cgroups"]
        assert check["status"] == "warn" and "--cgroups=split fails" in check["detail"], check
        refused = quadlet(tb, "install", "/src/quadlets/web.container")
        assert refused.returncode == 125 and refused.stderr.count("\n") == 1, refused.stderr
        assert "add PodmanArgs=--cgroups=enabled under [Container]" in refused.stderr
        assert tb.run(["sh", "-c", f"ls {QUADLET_DIR} 2>/dev/null"]).stdout == ""
        assert sh(tb, check["fix"]).returncode == 0  # the fix, as printed
        fixed = doctor_checks(tb)["quadlet cgroups"]
        assert fixed["status"] == "ok" and own in fixed["detail"], fixed
        installed = quadlet(tb, "install", "/src/quadlets/web.container")
        assert installed.returncode == 0, installed.stderr
    finally:
        sh(tb, f"rm -rf /etc/containers/systemd/users/{uid}; "
               f"mv {TESTBED_DROP_IN}.away {TESTBED_DROP_IN}")  # fmt: skip


def test_doctor_tells_a_quadlet_start_would_wait_for_the_network(tb: Testbed) -> None:
    """podman 5's Quadlet units wait for network-online.target: inactive, each start
    waits ~90 s. doctor warns, and its fix works as printed."""
    checks = doctor_checks(tb)
    if "network-online" not in checks:
        assert podman_version(tb) < (5, 0) or "quadlet cgroups" not in checks
        return
    assert checks["network-online"]["status"] == "ok"  # the testbed pulls the target in
    sh(tb, "systemctl stop network-online.target")
    try:
        check = doctor_checks(tb)["network-online"]
        assert check["status"] == "warn" and "waits ~90 s" in check["detail"], check
        assert sh(tb, check["fix"]).returncode == 0
        assert doctor_checks(tb)["network-online"]["status"] == "ok"
    finally:
        sh(tb, "systemctl start network-online.target")


def test_a_quadlet_another_one_names_is_not_removed_alone(clean_quadlets: Testbed) -> None:
    """issue 22: `quadlet remove` of a .network a .container still names left the
    container to fail at its next start. Refused unless both go (or --force)."""
    if refused_for_old_podman(clean_quadlets):
        return
    tb = clean_quadlets
    files = {"rp-net.network": "[Network]\n",
             "rp-user.container": "[Container]\nImage=localhost/busybox\nExec=true\n"
                                  "Network=rp-net.network\n"}  # fmt: skip
    for name, text in files.items():
        tb.check(["sh", "-c", f"mkdir -p /root/q && cat > /root/q/{name}"], input=text)
    try:
        assert quadlet(tb, "install", "/root/q/rp-net.network").returncode == 0
        assert quadlet(tb, "install", "/root/q/rp-user.container").returncode == 0
        alone = quadlet(tb, "remove", "rp-net.network")
        assert (alone.returncode, alone.stdout) == (125, "")
        assert alone.stderr == (
            "runas-podman: rp-net.network is used by rp-user.container of test: remove both "
            "together (runas-podman quadlet remove -u test rp-user.container rp-net.network), "
            "or give --force\n"
        )
        assert sh(tb, f"test -e {QUADLET_DIR}/rp-net.network").returncode == 0
        hint = alone.stderr.split("(", 1)[1].split(")", 1)[0]
        both = tb.run(["sh", "-c", hint])
        assert both.returncode == 0, both.stderr
        assert sh(tb, f"ls {QUADLET_DIR}").stdout.split() == []
    finally:
        tb.run(["rm", "-rf", "/root/q"])
