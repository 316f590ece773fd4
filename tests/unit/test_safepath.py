"""safepath: a path root opens for a caller is decided by root and the caller only.

Real files in a root-owned scratch directory (chown needs root, as ./dev test runs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from runas_podman.host.safepath import (
    NotTrusted,
    check_open_file_for_root,
    find_untrusted,
    fuse_devices,
    open_trusted,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
OTHER = 4242  # someone else


@pytest.fixture
def root_dir() -> Iterator[Path]:
    base = Path("/var/tmp") / f"safepath-{os.getpid()}"
    base.mkdir(mode=0o755)
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def test_a_root_file_in_root_directories_passes(root_dir: Path) -> None:
    (root_dir / "secret").write_text("s")
    assert find_untrusted(str(root_dir / "secret"), {0}) is None
    assert check_open_file_for_root(str(root_dir / "secret"), 0) is None


def test_a_directory_of_another_user_is_refused(root_dir: Path) -> None:
    home = root_dir / "home"
    home.mkdir()
    (home / "app.conf").write_text("x")
    os.chown(home, OTHER, OTHER)
    found = find_untrusted(str(home / "app.conf"), {0})
    assert found is not None and found.component == str(home)
    assert found.problem == f"is owned by uid {OTHER}"
    assert find_untrusted(str(home / "app.conf"), {0, OTHER}) is None  # the caller's own


def test_the_symlink_attack_is_refused(root_dir: Path) -> None:
    link = root_dir / "app.conf"
    link.symlink_to("/etc/shadow")
    os.lchown(link, OTHER, OTHER)
    found = find_untrusted(str(link), {0})
    assert found is not None and found.problem == f"is a symlink owned by uid {OTHER}"


def test_a_root_symlink_is_followed_and_its_target_checked(root_dir: Path) -> None:
    target_dir = root_dir / "theirs"
    target_dir.mkdir()
    os.chown(target_dir, OTHER, OTHER)
    (root_dir / "ok").symlink_to("/etc/hostname")
    (root_dir / "bad").symlink_to(target_dir / "file")
    assert find_untrusted(str(root_dir / "ok"), {0}) is None
    found = find_untrusted(str(root_dir / "bad"), {0})
    assert found is not None and found.component == str(target_dir)


def test_a_file_of_another_user_is_refused(root_dir: Path) -> None:
    (root_dir / "f").write_text("x")
    os.chown(root_dir / "f", OTHER, OTHER)
    assert find_untrusted(str(root_dir / "f"), {0}) is not None


def test_writable_directories_and_sticky_ones(root_dir: Path) -> None:
    shared = root_dir / "shared"
    shared.mkdir()
    (shared / "mine").write_text("x")
    (shared / "theirs").write_text("x")
    os.chown(shared / "theirs", OTHER, OTHER)
    os.chmod(shared, 0o775)
    found = find_untrusted(str(shared / "mine"), {0})
    assert found is not None and found.problem.startswith("is writable by others")
    os.chmod(shared, 0o1777)  # like /tmp: others cannot replace an entry that is not theirs
    assert find_untrusted(str(shared / "mine"), {0}) is None
    assert find_untrusted(str(shared / "theirs"), {0}) is not None


def test_loops_and_missing_paths(root_dir: Path) -> None:
    (root_dir / "a").symlink_to(root_dir / "b")
    (root_dir / "b").symlink_to(root_dir / "a")
    found = find_untrusted(str(root_dir / "a"), {0})
    assert found is not None and "more than 40 symlinks" in found.problem
    assert find_untrusted(str(root_dir / "missing" / "file"), {0}) is None


def test_a_non_root_caller_must_be_able_to_read_the_file(root_dir: Path) -> None:
    (root_dir / "root-only").write_text("x")
    os.chmod(root_dir / "root-only", 0o600)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.setgid(OTHER)
        os.setuid(OTHER)
        problem = check_open_file_for_root(str(root_dir / "root-only"), OTHER)
        os._exit(0 if problem == "you cannot read it yourself" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_fd_made_as_another_user_comes_back_or_its_error(root_dir: Path) -> None:
    from runas_podman.core.model import ServiceUser
    from runas_podman.host.privileges import open_as

    other = ServiceUser("other", OTHER, OTHER, "other", "/")
    (root_dir / "readable").write_text("for anyone")
    (root_dir / "root-only").write_text("x")
    os.chmod(root_dir / "root-only", 0o600)
    fd = open_as(other, str(root_dir / "readable"), os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"for anyone"
    finally:
        os.close(fd)
    with pytest.raises(PermissionError) as raised:
        open_as(other, str(root_dir / "root-only"), os.O_RDONLY)
    assert raised.value.filename == str(root_dir / "root-only")


def test_a_missing_component_is_as_safe_as_the_directory_that_would_hold_it(
    root_dir: Path,
) -> None:
    """Finding 4 of the audit: /tmp/appcfg did not exist yet; test created it (and
    db.conf -> /etc/shadow in it) the moment the unit appeared."""
    shared = root_dir / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    untrusted = find_untrusted(str(shared / "appcfg" / "db.conf"), {0})
    assert untrusted is not None and untrusted.component == f"{shared}/appcfg"
    assert "does not exist" in untrusted.problem and "could create it" in untrusted.problem
    assert find_untrusted(str(root_dir / "missing" / "db.conf"), {0}) is None  # root's only


def test_open_trusted_opens_the_checked_file_and_never_blocks_on_a_fifo(root_dir: Path) -> None:
    (root_dir / "secret").write_text("s3cret")
    fd = open_trusted(str(root_dir / "secret"), os.O_RDONLY, {0})
    try:
        assert os.read(fd, 100) == b"s3cret" and os.get_blocking(fd)
    finally:
        os.close(fd)
    os.mkfifo(root_dir / "fifo")
    fd = open_trusted(str(root_dir / "fifo"), os.O_RDONLY, {0})  # no writer: would block
    os.close(fd)
    other = root_dir / "other"
    other.write_text("x")
    os.chown(other, OTHER, OTHER)
    with pytest.raises(NotTrusted, match="owned by uid 4242"):
        open_trusted(str(other), os.O_RDONLY, {0})
    with pytest.raises(FileNotFoundError):
        open_trusted(str(root_dir / "missing"), os.O_RDONLY, {0})


def test_fuse_mounts_are_found_in_mountinfo(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / / rw - ext4 /dev/vda rw\n"
        "40 22 0:45 / /tmp/d rw,nosuid - fuse.sshfs sshfs rw,user_id=1000\n"
        "41 22 0:46 / /mnt rw shared:5 - fuseblk /dev/sdb1 rw\n"
    )
    assert fuse_devices(str(mountinfo)) == {os.makedev(0, 45), os.makedev(0, 46)}
