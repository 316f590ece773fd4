"""What `install-pam` and `install-broker` write onto the host, decided without side effects.

Two decisions live here. The PAM service `runas` includes the distribution's own stacks
(common-* on Debian and SUSE, system-auth on Fedora/RHEL and Arch) so that what the
administrator configured there (sssd/LDAP, faillock, 2FA, pam_systemd) applies to the
broker's password check and to the units' sessions too; which stack is chosen from
/etc/os-release and, above all, from what exists under /etc/pam.d. And the root broker
service runs the installing Python: it is refused when anyone but root could change what
that interpreter runs (its binary, the runas_podman package, any directory it imports from).
The trust check reads nothing but lstat() and readlink() results, both injectable.
"""

from __future__ import annotations

import os
import re
import stat as statmod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from runas_podman.core.errors import RunasError, one_line

# --- /etc/os-release ------------------------------------------------------------------------

_OS_RELEASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Inside double quotes the shell (and os-release(5)) lets a backslash escape only these.
_DOUBLE_QUOTE_ESCAPES = frozenset('$"\\`')


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release(5) text: VAR=value lines with shell-style quoting.

    Values may be unquoted, 'single quoted' (taken literally) or "double quoted" (a
    backslash escapes $ " \\ and `); a backslash outside quotes escapes any character.
    Comments, blank lines and lines that are not assignments are skipped, as systemd does;
    a later assignment wins. Unterminated quotes are closed at the end of the line.
    """
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not _OS_RELEASE_NAME.match(name):
            continue
        values[name] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    """Undo shell quoting on one value (single, double, backslash), as os-release(5) allows."""
    out: list[str] = []
    quote = ""
    index = 0
    while index < len(value):
        char = value[index]
        index += 1
        if quote == "'":
            if char == "'":
                quote = ""
            else:
                out.append(char)
        elif quote == '"':
            if char == '"':
                quote = ""
            elif char == "\\" and index < len(value) and value[index] in _DOUBLE_QUOTE_ESCAPES:
                out.append(value[index])
                index += 1
            else:
                out.append(char)
        elif char in "'\"":
            quote = char
        elif char == "\\" and index < len(value):
            out.append(value[index])
            index += 1
        else:
            out.append(char)
    return "".join(out)


def distribution_name(os_release: Mapping[str, str]) -> str:
    """The name to show for the host: PRETTY_NAME, else NAME, else ID, else "Linux"."""
    for key in ("PRETTY_NAME", "NAME", "ID"):
        name = "".join(c if c.isprintable() else " " for c in os_release.get(key, "")).strip()
        if name:
            return name
    return "Linux"  # os-release(5)'s default NAME


def _distribution_ids(os_release: Mapping[str, str]) -> set[str]:
    """ID and every ID_LIKE word, lowercased: what the distribution says it derives from."""
    return {
        word.lower()
        for word in [os_release.get("ID", ""), *os_release.get("ID_LIKE", "").split()]
        if word
    }


# --- /etc/pam.d/runas -----------------------------------------------------------------------


class PamStack(Enum):
    """The distribution PAM stack /etc/pam.d/runas includes; the value is for messages."""

    DEBIAN = "Debian"  # @include common-auth / common-account / common-session
    SUSE = "SUSE"  # include common-auth / common-account / common-session
    FEDORA = "Fedora/RHEL"  # include system-auth (authselect's, which has pam_systemd)
    ARCH = "Arch/Gentoo"  # include system-auth; pam_systemd is in system-login: added here
    FALLBACK = "built-in pam_unix"  # no known distribution stack: today's explicit lines


COMMON_FILES = ("common-auth", "common-account", "common-session")

# The session lines of systemd's own run0 PAM file (src/run/systemd-run0.in) that the
# distribution stacks do not carry: loginuid for audit, a fresh session keyring, the umask.
_RUN0_SESSION = (
    "session  required   pam_loginuid.so",
    "session  optional   pam_keyinit.so force revoke",
    "session  optional   pam_umask.so silent",
)


@dataclass(frozen=True)
class PamChoice:
    """The stack chosen for /etc/pam.d/runas, what it includes, and the file's whole text."""

    stack: PamStack
    distribution: str
    includes: tuple[str, ...]
    text: str

    def summary(self) -> str:
        """For the install line, e.g. "Debian stack: common-auth, common-account, ..."."""
        if not self.includes:
            return f"{self.stack.value} stack: no distribution stack found under /etc/pam.d"
        extra = ", plus pam_systemd" if self.stack is PamStack.ARCH else ""
        return f"{self.stack.value} stack: {', '.join(self.includes)}{extra}"


def choose_pam_stack(os_release: Mapping[str, str], pam_d_entries: Collection[str]) -> PamChoice:
    """Pick the distribution's stack for /etc/pam.d/runas and render the file.

    `pam_d_entries` are the names that exist under /etc/pam.d (and /usr/lib/pam.d, which
    Linux-PAM also searches for included files). What exists wins over what os-release
    claims; os-release only breaks ties (SUSE's syntax over Debian's for common-*, the
    Fedora over the Arch layout for system-auth) and names the host in the header.
    """
    ids = _distribution_ids(os_release)
    entries = set(pam_d_entries)
    has_common = all(name in entries for name in COMMON_FILES)
    has_system_auth = "system-auth" in entries
    suse = bool(ids & {"suse", "opensuse", "sles", "sled"}) or any(
        word.startswith("opensuse") for word in ids
    )
    redhat_or_arch = bool(ids & {"fedora", "rhel", "centos", "arch"})
    if has_common and not (has_system_auth and redhat_or_arch):
        stack = PamStack.SUSE if suse else PamStack.DEBIAN
    elif has_system_auth:
        # Arch and Gentoo keep pam_systemd (and the login-only modules: pam_shells, motd,
        # mail, lastlog) in system-login; Fedora's authselect puts pam_systemd in system-auth.
        arch_layout = "arch" in ids or (
            "system-login" in entries and not ids & {"fedora", "rhel", "centos"}
        )
        stack = PamStack.ARCH if arch_layout else PamStack.FEDORA
    else:
        stack = PamStack.FALLBACK
    name = distribution_name(os_release)
    includes = {
        PamStack.DEBIAN: COMMON_FILES,
        PamStack.SUSE: COMMON_FILES,
        PamStack.FEDORA: ("system-auth",),
        PamStack.ARCH: ("system-auth",),
        PamStack.FALLBACK: (),
    }[stack]
    return PamChoice(stack, name, includes, _render(stack, name))


def pam_file_text(os_release: Mapping[str, str], pam_d_entries: Collection[str]) -> str:
    """The complete text of /etc/pam.d/runas for this host (see choose_pam_stack)."""
    return choose_pam_stack(os_release, pam_d_entries).text


_WHY = {
    PamStack.DEBIAN: (
        "# Stack: Debian's common-auth, common-account and common-session (@include), so that",
        "# what pam-auth-update configures there (sssd/LDAP, faillock, 2FA, pam_systemd)",
        "# applies here too.",
    ),
    PamStack.SUSE: (
        "# Stack: SUSE's common-auth, common-account and common-session (include), so that",
        "# what pam-config configures there (sssd/LDAP, faillock, 2FA, pam_systemd) applies",
        "# here too.",
    ),
    PamStack.FEDORA: (
        "# Stack: system-auth (include), as sudo uses it, so that what authselect configures",
        "# there (sssd/LDAP, faillock, 2FA, pam_systemd) applies here too.",
    ),
    PamStack.ARCH: (
        "# Stack: system-auth (include), as sudo uses it, so that what is configured there",
        "# (faillock, LDAP, 2FA) applies here too. system-login is left out: its extra lines",
        "# are for logins (pam_shells, nologin, motd, mail, lastlog); only its pam_systemd",
        "# is needed, so it is added below.",
    ),
    PamStack.FALLBACK: (
        "# Stack: FALLBACK, pam_unix only. No distribution stack was found under /etc/pam.d",
        "# (neither common-auth, common-account and common-session nor system-auth), so",
        "# sssd/LDAP, faillock or 2FA configured elsewhere do not apply to `runas`.",
    ),
}

_BODY = {
    PamStack.DEBIAN: (
        "@include common-auth",
        "@include common-account",
        *_RUN0_SESSION,
        "@include common-session",
    ),
    PamStack.SUSE: (
        "auth     include    common-auth",
        "account  include    common-account",
        *_RUN0_SESSION,
        "session  include    common-session",
    ),
    PamStack.FEDORA: (
        "auth     include    system-auth",
        "account  include    system-auth",
        *_RUN0_SESSION,
        "session  include    system-auth",
    ),
    PamStack.ARCH: (
        "auth     include    system-auth",
        "account  include    system-auth",
        *_RUN0_SESSION,
        "session  include    system-auth",
        "-session optional   pam_systemd.so",
    ),
    PamStack.FALLBACK: (
        "auth     required   pam_unix.so",
        "account  required   pam_unix.so",
        *_RUN0_SESSION,
        "session  optional   pam_systemd.so",
        "session  required   pam_unix.so",
    ),
}


def _render(stack: PamStack, distribution: str) -> str:
    """The header (what generated the file, for which host, which stack and why) and body."""
    header = (
        "# PAM service \"runas\" (runas-podman's run0-style elevator): the unit's session.",
        f"# Generated by `runas-podman install-pam` for {distribution};",
        "# rerun it after changing the distribution's PAM setup (it rewrites this file).",
        *_WHY[stack],
        "# Units never authenticate through it: authorization happened before the unit was",
        "# started (polkit on StartTransientUnit, or root as the caller); the unit opens its",
        "# session through PAMName=runas. The auth lines serve the root broker of the",
        "# wheel+PAM path, which checks the caller's own password.",
        "# The explicit session lines mirror systemd's run0 PAM file (systemd-run0); the",
        "# session stack includes pam_systemd, since the command needs a logind session.",
    )
    return "\n".join((*header, *_BODY[stack])) + "\n"


# --- the broker's interpreter ---------------------------------------------------------------

MAX_SYMLINKS = 40  # the kernel's limit on one path lookup (ELOOP)
_WRITABLE_BY_OTHERS = statmod.S_IWGRP | statmod.S_IWOTH

StatFunction = Callable[[str], os.stat_result]
ReadlinkFunction = Callable[[str], str]

_ADVICE = (
    "install runas-podman where only root can write (pipx as root, or "
    "python3 -m venv /opt/runas-podman) and run install-broker from there"
)


@dataclass(frozen=True)
class Untrusted:
    """Why `path` is not safe for root to run or import: its first offending component."""

    path: str  # as asked about
    component: str  # the directory, symlink or file on the way that fails
    kind: str  # "directory", "symlink" or "file"
    problem: str  # e.g. "is writable by others", "is owned by uid 1000, not root"

    def describe(self) -> str:
        """One phrase, e.g. "/tmp/venv/bin/python3 goes through directory /tmp, which is ..."."""
        if self.component == self.path:
            return f"{self.path} {self.problem}"
        return f"{self.path} goes through {self.kind} {self.component}, which {self.problem}"


def find_untrusted(
    path: str,
    *,
    must_exist: bool,
    stat: StatFunction = os.lstat,
    readlink: ReadlinkFunction = os.readlink,
) -> Untrusted | None:
    """The first component of absolute `path` that someone other than root could change.

    Walks the path as the kernel resolves it, from / down, one lstat per component,
    following each symlink (at most MAX_SYMLINKS) into its target. Every directory and
    the final file must be owned by root and writable by neither group nor others; a
    symlink must be owned by root (its mode bits mean nothing) and its target is then
    checked the same way. Writable means the mode bits: an ACL granting write to anyone
    shows in the group bits (the mask), so it is refused too.

    A directory writable by others is refused even when sticky (/tmp, /var/tmp): the
    sticky bit stops others from replacing a root-owned entry only while it exists, and a
    root service keeps running the same path after /tmp is emptied at boot or aged by
    systemd-tmpfiles, when any user may create it again with their own contents.

    A missing component ends the walk: when `must_exist`, that is the finding; otherwise
    the path is fine (everything above it is root's alone, so only root could create it
    later; this is how sys.path entries that do not exist yet are judged). A component
    that is a file with more components after it (a zip file on sys.path with an inner
    directory) is judged as that file.
    """
    if not os.path.isabs(path):
        raise ValueError(f"not an absolute path: {path!r}")
    root_finding = _judge("/", path, stat)
    if isinstance(root_finding, Untrusted):
        return root_finding
    pending = list(reversed(path.split("/")))
    current = "/"
    links = 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)  # `current` holds no symlinks: plain parent
            continue
        candidate = os.path.join(current, name)
        judged = _judge(candidate, path, stat)
        if isinstance(judged, Untrusted):
            return judged
        if judged is None:
            if must_exist:
                return Untrusted(path, candidate, "path", "does not exist")
            return None
        if statmod.S_ISLNK(judged.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                return Untrusted(
                    path, candidate, "symlink", f"leads into a loop of over {MAX_SYMLINKS} symlinks"
                )
            try:
                target = readlink(candidate)
            except OSError as error:
                return Untrusted(path, candidate, "symlink", f"cannot be read ({error.strerror})")
            if target.startswith("/"):
                current = "/"
            pending.extend(reversed(target.split("/")))
            continue
        if not statmod.S_ISDIR(judged.st_mode) and pending:
            return None  # a file (zip) with an inner path: the file itself was judged
        current = candidate
    return None


def _judge(component: str, path: str, stat: StatFunction) -> os.stat_result | Untrusted | None:
    """lstat one component: its stat when root's alone, a finding when not, None if absent."""
    try:
        result = stat(component)
    except FileNotFoundError:
        return None
    except OSError as error:
        return Untrusted(path, component, "path", f"cannot be examined ({error.strerror})")
    mode = result.st_mode
    kind = "symlink" if statmod.S_ISLNK(mode) else "directory" if statmod.S_ISDIR(mode) else "file"
    if result.st_uid != 0:
        return Untrusted(path, component, kind, f"is owned by uid {result.st_uid}, not root")
    if kind == "symlink":
        return result
    if mode & statmod.S_IWOTH:
        sticky = " even with its sticky bit" if mode & statmod.S_ISVTX else ""
        return Untrusted(path, component, kind, f"is writable by others{sticky}")
    if mode & _WRITABLE_BY_OTHERS:
        return Untrusted(path, component, kind, f"is writable by its group (gid {result.st_gid})")
    return result


def untrusted_paths(
    paths: Iterable[str],
    stat: StatFunction = os.lstat,
    readlink: ReadlinkFunction = os.readlink,
) -> list[Untrusted]:
    """One finding per absolute path that others could change (missing paths pass)."""
    findings = []
    for path in paths:
        finding = find_untrusted(path, must_exist=False, stat=stat, readlink=readlink)
        if finding is not None:
            findings.append(finding)
    return findings


def check_interpreter_trusted(
    executable: str,
    package_dir: str,
    sys_path: Sequence[str],
    *,
    stat: StatFunction = os.lstat,
    readlink: ReadlinkFunction = os.readlink,
) -> None:
    """Refuse (RunasError, one line) a broker interpreter that anyone but root could change.

    Checked in order: `executable` (sys.executable, through its symlinks), `package_dir`
    (the runas_podman package directory, os.path.dirname(runas_podman.__file__)), then
    every absolute entry of `sys_path` (stdlib, lib-dynload, site-packages and what .pth
    files added). Empty and relative entries are skipped: they name the working
    directory, which is / for the broker's unit. The first two must exist.
    """
    if not os.path.isabs(executable):
        raise RunasError(
            f"refusing to install the broker: cannot tell which Python runs it "
            f"(sys.executable is {executable!r}); run install-broker with an absolute "
            "interpreter path"
        )
    checks = [("interpreter", executable, True), ("package directory", package_dir, True)]
    checks += [("import path entry", entry, False) for entry in sys_path if os.path.isabs(entry)]
    seen: set[str] = set()
    for role, path, must_exist in checks:
        if path in seen:
            continue
        seen.add(path)
        finding = find_untrusted(path, must_exist=must_exist, stat=stat, readlink=readlink)
        if finding is not None:
            raise RunasError(
                one_line(f"refusing to install the broker: {role} {finding.describe()}; {_ADVICE}")
            )
