"""The root broker's caches of authentications: wheel+PAM ones, and polkit's kept ones.

Off unless /etc/runas-podman/broker.toml says `auth_cache = true`. An entry says: this
uid gave its password in this logind session on this terminal, at this time (the boot
clock: suspend counts, wall-clock changes do not). It is good for `auth_cache_timeout`
seconds (default 300) from the authentication, never extended by use; a caller without
a session or a terminal is always asked. Entries live in /run (gone at reboot), in a
directory only root can enter. `runas -k/-K` remove the caller's own entries.

polkit keeps an auth_*_keep authorization per subject *process* and action, whatever the
command (its sources, 2019-2026): the broker never accepts an answer that came from one
(broker.authorize). It remembers instead, per uid, session, terminal and the digest of
the exact details polkit granted org.runas_podman.run for after a challenge it would
keep, for polkit's own 5 minutes; a later request is let through on that entry only if
its details are the same and polkit, asked again without interaction, says "a challenge,
and kept after success": a rule that says no, or asks every time, still decides.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import tomllib
from dataclasses import dataclass

from runas_podman.core.errors import RunasError
from runas_podman.host.procfs import session_of, stat_fields

CONFIG = "/etc/runas-podman/broker.toml"
CACHE_DIR = "/run/runas-podman/auth-cache"
DEFAULT_TIMEOUT = 300
POLKIT_KEEP_SECONDS = 300  # polkit's own lifetime of a temporary authorization
MAX_TIMEOUT = 24 * 3600


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = False
    timeout: int = DEFAULT_TIMEOUT  # seconds


@dataclass(frozen=True)
class Binding:
    """What an entry is bound to: the caller's uid, logind session and terminal."""

    uid: int
    session: str
    tty: int  # st_rdev of the controlling terminal (field 7 of /proc/PID/stat)
    # The terminal's session leader (the login shell), as "PID:STARTTIME": a device
    # number is reused once a terminal closes, a leader's start time never.
    leader: str = ""


def parse_settings(text: str, path: str = CONFIG) -> CacheSettings:
    """The settings of broker.toml, or RunasError naming the file and the bad setting."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RunasError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(data) - {"auth_cache", "auth_cache_timeout"})
    if unknown:
        raise RunasError(
            f"{path}: unknown setting '{unknown[0]}' (known: auth_cache, auth_cache_timeout)"
        )
    enabled = data.get("auth_cache", False)
    timeout = data.get("auth_cache_timeout", DEFAULT_TIMEOUT)
    if not isinstance(enabled, bool):
        raise RunasError(f"{path}: auth_cache must be true or false")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT:
        raise RunasError(f"{path}: auth_cache_timeout must be seconds from 1 to {MAX_TIMEOUT}")
    return CacheSettings(enabled, timeout)


def load_settings(path: str = CONFIG) -> CacheSettings:
    try:
        with open(path) as config:
            return parse_settings(config.read(), path)
    except FileNotFoundError:
        return CacheSettings()
    except OSError as error:
        raise RunasError(f"{path}: {error.strerror}") from None


def binding_of(pid: int, uid: int) -> Binding | None:
    """The binding of the process PID, or None without a session or a terminal."""
    session = session_of(pid)
    try:
        fields = stat_fields(pid)
        tty, leader = int(fields[4]), int(fields[3])
        leader_start = int(stat_fields(leader)[19]) if leader > 0 else 0
    except (OSError, ValueError, IndexError):
        return None
    if session is None or tty == 0 or leader <= 0:
        return None
    return Binding(uid, session, tty, f"{leader}:{leader_start}")


def is_fresh(since: float, now: float, timeout: int) -> bool:
    """An entry made at SINCE is good at NOW for TIMEOUT seconds (never from the future)."""
    return since <= now < since + timeout


def now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _key(entry: dict[str, object]) -> tuple[object, ...]:
    return entry.get("session"), entry.get("tty"), entry.get("leader", ""), entry.get("details", "")


class AuthCache:
    def __init__(
        self, settings: CacheSettings, directory: str = CACHE_DIR, kind: str = "password"
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.kind = kind  # "password": wheel+PAM; "polkit": polkit's kept authorizations

    def _path(self, uid: int) -> str:
        return os.path.join(self.directory, f"{uid}.{self.kind}")

    def _entries(self, uid: int) -> list[dict[str, object]]:
        try:
            with open(self._path(uid)) as file:
                entries = json.load(file)
        except (OSError, ValueError):
            return []
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def _fresh(self, uid: int, moment: float) -> list[dict[str, object]]:
        return [
            entry for entry in self._entries(uid)
            if isinstance(since := entry.get("since"), (int, float))
            and is_fresh(float(since), moment, self.settings.timeout)
        ]  # fmt: skip

    def valid(self, binding: Binding, details: str = "") -> bool:
        """A fresh entry for BINDING and DETAILS (the polkit kind: the digest of the
        exact details authorized; the password kind: "")."""
        if not self.settings.enabled:
            return False
        mine = (binding.session, binding.tty, binding.leader, details)
        fresh = self._fresh(binding.uid, now())
        return any(_key(entry) == mine for entry in fresh)

    def remember(self, binding: Binding, details: str = "") -> None:
        """A fresh entry for BINDING and DETAILS; stale ones and its old one dropped."""
        if not self.settings.enabled:
            return
        moment = now()
        mine = (binding.session, binding.tty, binding.leader, details)
        kept = [e for e in self._fresh(binding.uid, moment) if _key(e) != mine]
        kept.append({"session": binding.session, "tty": binding.tty, "leader": binding.leader,
                     "details": details, "since": moment})  # fmt: skip
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)  # also when an older one was made otherwise
        temporary = f"{self._path(binding.uid)}.{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(kept, file)
            os.replace(temporary, self._path(binding.uid))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def forget(self, uid: int) -> bool:
        """Remove every entry of UID; whether there were any."""
        try:
            os.unlink(self._path(uid))
        except FileNotFoundError:
            return False
        return True
