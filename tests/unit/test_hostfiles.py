"""The PAM stack chooser and the broker interpreter's trust check (runas_podman.host.hostfiles)."""

from __future__ import annotations

import os
import stat
import sys
import tempfile

import pytest

from runas_podman.core.errors import RunasError
from runas_podman.host.hostfiles import (
    MAX_SYMLINKS,
    PamStack,
    check_interpreter_trusted,
    choose_pam_stack,
    distribution_name,
    find_untrusted,
    pam_file_text,
    parse_os_release,
    untrusted_paths,
)

# --- os-release samples, as the distributions ship them ---------------------------------------

DEBIAN_12 = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""
UBUNTU_2404 = """\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
"""
FEDORA_41 = """\
NAME="Fedora Linux"
VERSION="41 (Workstation Edition)"
ID=fedora
VERSION_ID=41
PLATFORM_ID="platform:f41"
PRETTY_NAME="Fedora Linux 41 (Workstation Edition)"
CPE_NAME="cpe:/o:fedoraproject:fedora:41"
VARIANT_ID=workstation
"""
RHEL_9 = """\
NAME="Red Hat Enterprise Linux"
VERSION="9.4 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.4"
PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"
"""
ROCKY_9 = """\
NAME="Rocky Linux"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
"""
TUMBLEWEED = """\
NAME="openSUSE Tumbleweed"
# VERSION="20241201"
ID="opensuse-tumbleweed"
ID_LIKE="opensuse suse"
VERSION_ID="20241201"
PRETTY_NAME="openSUSE Tumbleweed"
"""
ARCH = """\
NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
"""
ALPINE = """\
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
"""

DEBIAN_PAM_D = {"common-auth", "common-account", "common-password", "common-session",
                "common-session-noninteractive", "login", "other", "su", "sudo"}  # fmt: skip
FEDORA_PAM_D = {"system-auth", "password-auth", "fingerprint-auth", "smartcard-auth",
                "postlogin", "login", "other", "su", "sudo"}  # fmt: skip
SUSE_PAM_D = {"common-auth", "common-auth-pc", "common-account", "common-account-pc",
              "common-password", "common-session", "common-session-pc", "other"}  # fmt: skip
ARCH_PAM_D = {"system-auth", "system-login", "system-local-login", "system-remote-login",
              "login", "other", "su", "sudo"}  # fmt: skip
ALPINE_PAM_D = {"base-auth", "base-account", "base-session", "other"}


def body(text: str) -> list[str]:
    """The PAM lines of a generated file, without its comment header."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


# --- os-release parsing -----------------------------------------------------------------------


def test_os_release_quoting() -> None:
    parsed = parse_os_release(
        "# a comment\n"
        "\n"
        'PRETTY_NAME="Example \\"Quoted\\" \\$HOME \\`x\\` a\\\\b \\n"\n'
        "NAME='single $quoted \\ \"literal\"'\n"
        "ID=plain\\ word\n"
        'ID_LIKE="rhel fedora"\n'
        "  VERSION_ID = 7 \n"
        "not an assignment\n"
        "1BAD=x\n"
        'BUILD_ID="unterminated\n'
        "ID=override\n"
    )
    assert parsed == {
        "PRETTY_NAME": 'Example "Quoted" $HOME `x` a\\b \\n',
        "NAME": 'single $quoted \\ "literal"',
        "ID": "override",
        "ID_LIKE": "rhel fedora",
        "VERSION_ID": "7",
        "BUILD_ID": "unterminated",
    }


def test_os_release_mixed_quotes_concatenate_like_the_shell() -> None:
    assert parse_os_release("NAME=\"a b\"'c d'e\n") == {"NAME": "a bc de"}


def test_distribution_name_defaults() -> None:
    assert distribution_name(parse_os_release(DEBIAN_12)) == "Debian GNU/Linux 12 (bookworm)"
    assert distribution_name({"NAME": "Foo"}) == "Foo"
    assert distribution_name({"ID": "foo"}) == "foo"
    assert distribution_name({}) == "Linux"
    assert distribution_name({"PRETTY_NAME": "evil\x1b[2Jname"}) == "evil [2Jname"


# --- the PAM stack ----------------------------------------------------------------------------

RUN0_SESSION = [
    "session  required   pam_loginuid.so",
    "session  optional   pam_keyinit.so force revoke",
    "session  optional   pam_umask.so silent",
]


@pytest.mark.parametrize("os_release", [DEBIAN_12, UBUNTU_2404])
def test_debian_family(os_release: str) -> None:
    choice = choose_pam_stack(parse_os_release(os_release), DEBIAN_PAM_D)
    assert choice.stack is PamStack.DEBIAN
    assert body(choice.text) == [
        "@include common-auth",
        "@include common-account",
        *RUN0_SESSION,
        "@include common-session",
    ]
    assert choice.summary() == "Debian stack: common-auth, common-account, common-session"


@pytest.mark.parametrize("os_release", [FEDORA_41, RHEL_9, ROCKY_9])
def test_fedora_family(os_release: str) -> None:
    choice = choose_pam_stack(parse_os_release(os_release), FEDORA_PAM_D)
    assert choice.stack is PamStack.FEDORA
    assert body(choice.text) == [
        "auth     include    system-auth",
        "account  include    system-auth",
        *RUN0_SESSION,
        "session  include    system-auth",
    ]
    assert choice.summary() == "Fedora/RHEL stack: system-auth"


def test_suse_uses_include_not_at_include() -> None:
    choice = choose_pam_stack(parse_os_release(TUMBLEWEED), SUSE_PAM_D)
    assert choice.stack is PamStack.SUSE
    assert body(choice.text) == [
        "auth     include    common-auth",
        "account  include    common-account",
        *RUN0_SESSION,
        "session  include    common-session",
    ]
    assert "for openSUSE Tumbleweed;" in choice.text


def test_arch_adds_pam_systemd_that_system_auth_lacks() -> None:
    choice = choose_pam_stack(parse_os_release(ARCH), ARCH_PAM_D)
    assert choice.stack is PamStack.ARCH
    assert body(choice.text) == [
        "auth     include    system-auth",
        "account  include    system-auth",
        *RUN0_SESSION,
        "session  include    system-auth",
        "-session optional   pam_systemd.so",
    ]
    assert choice.summary() == "Arch/Gentoo stack: system-auth, plus pam_systemd"
    # A derivative that says only ID_LIKE=arch, and one that says nothing, get the same.
    manjaro = {"ID": "manjaro", "ID_LIKE": "arch"}
    assert choose_pam_stack(manjaro, ARCH_PAM_D).stack is PamStack.ARCH
    assert choose_pam_stack({}, ARCH_PAM_D).stack is PamStack.ARCH


@pytest.mark.parametrize(("os_release", "entries"), [(ALPINE, ALPINE_PAM_D), ("", set())])
def test_unknown_falls_back_to_pam_unix(os_release: str, entries: set[str]) -> None:
    choice = choose_pam_stack(parse_os_release(os_release), entries)
    assert choice.stack is PamStack.FALLBACK
    assert body(choice.text) == [
        "auth     required   pam_unix.so",
        "account  required   pam_unix.so",
        *RUN0_SESSION,
        "session  optional   pam_systemd.so",
        "session  required   pam_unix.so",
    ]
    assert "# Stack: FALLBACK, pam_unix only." in choice.text
    assert choice.summary().startswith("built-in pam_unix stack: no distribution stack")


def test_what_exists_wins_over_the_id() -> None:
    fedora, debian = parse_os_release(FEDORA_41), parse_os_release(DEBIAN_12)
    assert choose_pam_stack(debian, FEDORA_PAM_D).stack is PamStack.FEDORA
    assert choose_pam_stack(fedora, DEBIAN_PAM_D).stack is PamStack.DEBIAN
    assert choose_pam_stack(debian, set()).stack is PamStack.FALLBACK
    # Only part of the common-* set is not a stack to include.
    partial = {"common-auth", "common-session"}
    assert choose_pam_stack(debian, partial).stack is PamStack.FALLBACK
    # Both layouts present: the ID decides.
    both = DEBIAN_PAM_D | FEDORA_PAM_D
    assert choose_pam_stack(fedora, both).stack is PamStack.FEDORA
    assert choose_pam_stack(debian, both).stack is PamStack.DEBIAN
    assert choose_pam_stack({}, both).stack is PamStack.DEBIAN


@pytest.mark.parametrize(
    ("os_release", "entries"),
    [(DEBIAN_12, DEBIAN_PAM_D), (FEDORA_41, FEDORA_PAM_D), (TUMBLEWEED, SUSE_PAM_D),
     (ARCH, ARCH_PAM_D), (ALPINE, ALPINE_PAM_D)],
)  # fmt: skip
def test_every_variant_has_the_header_and_a_session_with_pam_systemd(
    os_release: str, entries: set[str]
) -> None:
    parsed = parse_os_release(os_release)
    text = pam_file_text(parsed, entries)
    assert text == choose_pam_stack(parsed, entries).text
    assert text.endswith("\n") and not text.endswith("\n\n")
    lines = text.splitlines()
    assert lines[1] == f"# Generated by `runas-podman install-pam` for {distribution_name(parsed)};"
    assert "# Units never authenticate through it" in text
    assert "checks the caller's own password." in text
    assert all(len(line) <= 100 for line in lines)
    # pam_systemd comes from the included session stack (Debian's common-session through
    # libpam-systemd, SUSE's pam-config common-session, authselect's system-auth), or it is
    # explicit (Arch's system-auth lacks it, and the fallback); never both.
    carried = {PamStack.DEBIAN, PamStack.SUSE, PamStack.FEDORA}
    explicit = [line for line in body(text) if "pam_systemd.so" in line]
    assert len(explicit) == (0 if choose_pam_stack(parsed, entries).stack in carried else 1)


# --- the interpreter trust check, on a fake filesystem ----------------------------------------

DIR, FILE, LINK = stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK


def st(kind: int, perm: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((kind | perm, 1, 1, 1, uid, gid, 0, 0, 0, 0))


class FakeFS:
    """lstat/readlink over a table: path -> stat_result, symlink path -> target."""

    def __init__(
        self, entries: dict[str, os.stat_result], links: dict[str, str] | None = None
    ) -> None:
        self.entries = {"/": st(DIR, 0o755), **entries}
        self.links = links or {}
        self.asked: list[str] = []

    def lstat(self, path: str) -> os.stat_result:
        self.asked.append(path)
        if path not in self.entries:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.entries[path]

    def readlink(self, path: str) -> str:
        return self.links[path]

    def check(self, executable: str, package: str, sys_path: list[str]) -> None:
        check_interpreter_trusted(
            executable, package, sys_path, stat=self.lstat, readlink=self.readlink
        )

    def untrusted(self, *paths: str) -> list[str]:
        return [u.describe() for u in untrusted_paths(paths, self.lstat, self.readlink)]


def root_tree(*dirs: str, files: tuple[str, ...] = ()) -> dict[str, os.stat_result]:
    """Root-owned 0755 directories (and their parents) and 0755 files."""
    table: dict[str, os.stat_result] = {}
    for path in dirs:
        while path != "/":
            table.setdefault(path, st(DIR, 0o755))
            path = os.path.dirname(path)
    table.update({path: st(FILE, 0o755) for path in files})
    return table


OPT_VENV = root_tree(
    "/opt/runas-podman/bin",
    "/opt/runas-podman/lib/python3.12/site-packages/runas_podman",
    "/usr/lib/python3.12/lib-dynload",
    "/usr/bin",
    files=("/usr/bin/python3.12",),
)
OPT_LINKS = {
    "/opt/runas-podman/bin/python3": "/usr/bin/python3",
    "/usr/bin/python3": "python3.12",
}
OPT_VENV.update({path: st(LINK, 0o777) for path in OPT_LINKS})
OPT_SITE = "/opt/runas-podman/lib/python3.12/site-packages"
OPT_SYS_PATH = ["", "/usr/lib/python312.zip", "/usr/lib/python3.12",
                "/usr/lib/python3.12/lib-dynload", OPT_SITE]  # fmt: skip


def test_all_root_0755_is_trusted() -> None:
    fs = FakeFS(OPT_VENV, OPT_LINKS)
    fs.check("/opt/runas-podman/bin/python3", f"{OPT_SITE}/runas_podman", OPT_SYS_PATH)
    # The interpreter was followed through both links to the real binary, component by
    # component; the missing zip entry passed because /usr/lib is root's alone.
    assert "/usr/bin/python3.12" in fs.asked and "/usr/lib/python312.zip" in fs.asked
    assert fs.untrusted("/opt/runas-podman/bin/python3", "/usr/lib/python312.zip") == []


def test_venv_under_world_writable_sticky_tmp_is_refused() -> None:
    site = "/tmp/venv/lib/python3.12/site-packages"
    table = root_tree("/tmp/venv/bin", f"{site}/runas_podman", files=("/tmp/venv/bin/python3",))
    table["/tmp"] = st(DIR, 0o1777)
    fs = FakeFS(table)
    with pytest.raises(RunasError) as raised:
        fs.check("/tmp/venv/bin/python3", f"{site}/runas_podman", [site])
    assert raised.value.message == (
        "refusing to install the broker: interpreter /tmp/venv/bin/python3 goes through "
        "directory /tmp, which is writable by others even with its sticky bit; install "
        "runas-podman where only root can write (pipx as root, or python3 -m venv "
        "/opt/runas-podman) and run install-broker from there"
    )
    assert "\n" not in raised.value.message
    # A sys.path entry that does not exist yet under /tmp is refused too: anyone may create it.
    assert fs.untrusted("/tmp/not-yet") == [
        "/tmp/not-yet goes through directory /tmp, which is writable by others even with "
        "its sticky bit"
    ]


def test_group_writable_directory_is_refused() -> None:
    table = dict(OPT_VENV)
    table["/opt/runas-podman/lib"] = st(DIR, 0o775, gid=50)
    fs = FakeFS(table, OPT_LINKS)
    with pytest.raises(
        RunasError,
        match=r"package directory .* goes through directory "
        r"/opt/runas-podman/lib, which is writable by its group \(gid 50\)",
    ):
        fs.check("/opt/runas-podman/bin/python3", f"{OPT_SITE}/runas_podman", OPT_SYS_PATH)


def test_file_owned_by_a_user_is_refused() -> None:
    table = dict(OPT_VENV)
    table["/usr/bin/python3.12"] = st(FILE, 0o755, uid=1000)
    fs = FakeFS(table, OPT_LINKS)
    with pytest.raises(RunasError) as raised:
        fs.check("/opt/runas-podman/bin/python3", f"{OPT_SITE}/runas_podman", OPT_SYS_PATH)
    assert raised.value.message.startswith(
        "refusing to install the broker: interpreter /opt/runas-podman/bin/python3 goes "
        "through file /usr/bin/python3.12, which is owned by uid 1000, not root; "
    )
    assert fs.untrusted("/usr/bin/python3.12") == [
        "/usr/bin/python3.12 is owned by uid 1000, not root"
    ]


def test_world_writable_sys_path_entry_is_refused() -> None:
    table = dict(OPT_VENV)
    table["/usr/lib/python3.12/lib-dynload"] = st(DIR, 0o757)
    fs = FakeFS(table, OPT_LINKS)
    entry = r"import path entry /usr/lib/python3.12/lib-dynload is writable by others; install"
    with pytest.raises(RunasError, match=entry):
        fs.check("/opt/runas-podman/bin/python3", f"{OPT_SITE}/runas_podman", OPT_SYS_PATH)


def test_symlink_chain_into_an_untrusted_directory_is_refused() -> None:
    table = dict(OPT_VENV)
    table.update(root_tree("/home/alice/py/bin", files=("/home/alice/py/bin/python3",)))
    table["/home/alice"] = st(DIR, 0o755, uid=1000)
    links = {
        "/opt/runas-podman/bin/python3": "../../../usr/bin/python3",
        "/usr/bin/python3": "/usr/local/bin/python3",
        "/usr/local/bin/python3": "/home/alice/py/bin/python3",
    }
    table.update(root_tree("/usr/local/bin"))
    table.update({path: st(LINK, 0o777) for path in links})
    fs = FakeFS(table, links)
    assert fs.untrusted("/opt/runas-podman/bin/python3") == [
        "/opt/runas-podman/bin/python3 goes through directory /home/alice, which is owned by "
        "uid 1000, not root"
    ]


def test_symlink_owned_by_a_user_is_refused_whatever_its_target() -> None:
    table = dict(OPT_VENV)
    table["/usr/bin/python3"] = st(LINK, 0o777, uid=1000)
    fs = FakeFS(table, OPT_LINKS)
    assert fs.untrusted("/opt/runas-podman/bin/python3") == [
        "/opt/runas-podman/bin/python3 goes through symlink /usr/bin/python3, which is owned "
        "by uid 1000, not root"
    ]


def test_symlink_loop_is_refused_cleanly() -> None:
    links = {"/opt/a": "b", "/opt/b": "/opt/a"}
    table = root_tree("/opt")
    table.update({path: st(LINK, 0o777) for path in links})
    fs = FakeFS(table, links)
    with pytest.raises(RunasError, match="leads into a loop of over 40 symlinks"):
        fs.check("/opt/a", "/opt", [])
    assert len([p for p in fs.asked if p in links]) == MAX_SYMLINKS + 1


def test_a_chain_of_exactly_the_limit_resolves() -> None:
    names = [f"/l{i}" for i in range(MAX_SYMLINKS)]
    links = {name: (names[i + 1] if i + 1 < len(names) else "/usr/bin/python3.12")
             for i, name in enumerate(names)}  # fmt: skip
    table = dict(OPT_VENV)
    table.update({path: st(LINK, 0o777) for path in links})
    assert FakeFS(table, links).untrusted(names[0]) == []


def test_missing_interpreter_or_package_is_refused_but_missing_sys_path_passes() -> None:
    fs = FakeFS(OPT_VENV, OPT_LINKS)
    with pytest.raises(RunasError, match=r"interpreter /opt/runas-podman/bin/python9 does not"):
        fs.check("/opt/runas-podman/bin/python9", f"{OPT_SITE}/runas_podman", [])
    with pytest.raises(RunasError, match=r"package directory /nowhere does not exist"):
        fs.check("/opt/runas-podman/bin/python3", "/nowhere", [])
    fs.check("/opt/runas-podman/bin/python3", OPT_SITE, ["/nowhere/at/all", "relative/dir"])
    with pytest.raises(RunasError, match="cannot tell which Python"):
        fs.check("", OPT_SITE, [])


def test_zip_file_on_sys_path_is_judged_as_the_file() -> None:
    table = dict(OPT_VENV)
    table["/usr/lib/python312.zip"] = st(FILE, 0o644)
    assert FakeFS(table).untrusted("/usr/lib/python312.zip/inner/dir") == []
    table["/usr/lib/python312.zip"] = st(FILE, 0o666)
    assert FakeFS(table).untrusted("/usr/lib/python312.zip/inner") == [
        "/usr/lib/python312.zip/inner goes through file /usr/lib/python312.zip, which is "
        "writable by others"
    ]


def test_dotdot_and_relative_links_resolve_like_the_kernel() -> None:
    table = root_tree("/opt/x/y", "/srv")
    table["/srv"] = st(DIR, 0o777)
    fs = FakeFS(table)
    assert fs.untrusted("/opt/x/y/../../x/./y") == []
    assert fs.untrusted("/opt/x/../../../srv/z") == [
        "/opt/x/../../../srv/z goes through directory /srv, which is writable by others"
    ]
    with pytest.raises(ValueError, match="not an absolute path"):
        find_untrusted("opt/x", must_exist=False, stat=fs.lstat)


def test_stat_errors_other_than_missing_are_findings() -> None:
    def denied(path: str) -> os.stat_result:
        raise PermissionError(13, "Permission denied", path)

    finding = find_untrusted("/x", must_exist=False, stat=denied)
    assert finding is not None
    assert finding.describe() == (
        "/x goes through path /, which cannot be examined (Permission denied)"
    )


# --- against the real filesystem (this runs as root, with a root-owned /usr) ------------------


def test_system_python_is_trusted_here() -> None:
    python = "/usr/bin/python3"
    if not os.path.exists(python) or os.stat(python).st_uid != 0 or os.geteuid() != 0:
        pytest.skip("needs a root-owned /usr/bin/python3 and root")
    real = os.path.realpath(python)
    stdlib = os.path.join("/usr/lib", os.path.basename(real))  # /usr/lib/python3.11
    extra = ["/usr/lib/python3/dist-packages", "/usr/lib/nonexistent.zip"]
    check_interpreter_trusted(python, stdlib, [stdlib, *extra])
    assert untrusted_paths([python, real, "/usr", "/"]) == []


def test_the_running_interpreter_is_judged_without_error() -> None:
    # Whatever the verdict on this machine's interpreter, it is one line or nothing.
    try:
        check_interpreter_trusted(sys.executable, os.path.dirname(pytest.__file__), sys.path)
    except RunasError as error:
        assert "\n" not in error.message and error.message.startswith("refusing")


def test_world_writable_tempdir_is_refused() -> None:
    with tempfile.TemporaryDirectory() as base:
        os.chmod(base, 0o777)
        python = os.path.join(base, "python3")
        with open(python, "w"):
            pass
        os.chmod(python, 0o755)
        with pytest.raises(RunasError, match="is writable by others") as raised:
            check_interpreter_trusted(python, base, [])
        finding = find_untrusted(python, must_exist=True)
        assert finding is not None
        # The first world-writable directory on the way: /tmp itself, or the 0777 dir
        # when TMPDIR points somewhere private.
        assert base == finding.component or base.startswith(finding.component + "/")
        assert finding.component in raised.value.message


def test_a_newline_in_a_path_keeps_the_message_on_one_line() -> None:
    table = root_tree("/opt")
    table["/opt/evil\nname"] = st(DIR, 0o777)
    fs = FakeFS(table)
    with pytest.raises(RunasError) as raised:
        fs.check("/opt/evil\nname/python3", "/opt", [])
    assert "\n" not in raised.value.message
    assert "directory /opt/evil\\nname, which is writable by others" in raised.value.message
