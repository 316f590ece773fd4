"""The bad-input driver: seeded, generated argument vectors for `runas-podman exec`,
`runas-podman podman` and `runas`, each checked against the documented contract.

Runs inside the testbed as root, in one process. The whole runas_podman package is
imported once; each vector then runs in a forked child that calls the real entry point
(the console script's function, as the installed executable does) with that argv, stdin on
/dev/null, stdout and stderr on memfds and no other fd open, as a fresh process would
have it (a fork costs milliseconds, a Python start 100+). The first "crosscheck" vectors
also run through the installed executables, and must answer the same.

Most vectors are bad (empty, blank, control characters, bytes that are not UTF-8, 100 kB
values, unknown options, bad properties, fds, units, users). Those that do launch run
only `true`, `false`, `echo`, `id` or `podman --version` (rarely `podman run ... true`).

Input, JSON on stdin: {"tool": "exec"|"podman"|"runas", "seed": N, "count": N,
"crosscheck": N, "workers": N, "timeout": S (per vector), "max_hangs": N (then stop)}
Output, JSON on stdout: {"vectors", "ran", "statuses" (status -> count), "seconds",
"median_ms", "violation_count", "violations" (one example of each kind, with how many
"times" it happened; the first 40 kinds), "crosscheck"
{"vectors", "mismatches", "fork_median_ms", "exec_median_ms"}, "units_left"}.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import os
import pkgutil
import random
import re
import select
import statistics
import string
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Token = str | bytes

# --- the values ---------------------------------------------------------------------

LONG = "x" * 100_000
# Fixed bad values: blanks, control characters, bytes that are not UTF-8, long values,
# odd numbers, option look-alikes.
ODD_VALUES: list[Token] = [
    "", " ", "\t", "\n", " \n ", "a\nb", "\r", "\x01", "\x1b[2J", "a\x7fb", "\x08",
    b"\xff", b"\xfe\xff", b"a\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"caf\xe9",
    LONG, "\u00e9" * 50_000, "-", "--", "-x", "=", "==", ":", "::", "a:b:c:d", "%n%i%%",
    "$HOME", "'\"", "\\", "*", "~", "../..", "/", "0", "-1", "99999", "4294967296", "1_000",
    "+5", " 5", "0x10", "1e3", "nan", "\uff15", "\u0661", "\u202e", "\ufeff", "\U0001f9b8",
]  # fmt: skip
# A random bad value starts with one of these, so that it never names a real command
# (a misparsed vector may run it) and never is shell code that does something.
MARKERS = ["\x01", "\u00e9", "-", "=", "\u202e", "\x1b[1m"]
ALPHABET = string.ascii_letters + string.digits + " -_=:./,@+%~'\"\\*?\t\n\x01\x1b\x7f\u00e9\uff15"

BAD_USERS: list[Token] = ["", " ", "\n", "nosuch", "99999", "-1", "test ", " test",
                          "te\x1bst", "root\n", b"\xff", "\uff11\uff10\uff10\uff10", "0x3e8",
                          "4294967296", LONG]  # fmt: skip
VALID_PROPERTIES = ["CPUWeight=100", "Nice=5", "MemoryMax=1G", "LimitNOFILE=1024",
                    "TimeoutStopSec=5", "Description=fuzz", "WorkingDirectory=/", "TasksMax=100",
                    "IOWeight=50", "Environment=A=1 'B=two words'", "UMask=0022",
                    "NoNewPrivileges=yes", "KillMode=mixed", "RuntimeMaxSec=30"]  # fmt: skip
BAD_PROPERTIES: list[Token] = [
    "Nice=\uff15", "=", "=x", "CPUWeight=1_000", "MemoryMax=-1", "Foo=bar", "MemoryMax", "",
    "Nice=99", "User=root", "Group=root", "DynamicUser=yes", "CPUWeight=", "CPUWeight=0",
    "LimitNOFILE=1:2:3", "TimeoutStopSec=5 parsecs", "Environment='unclosed", "Environment=\\",
    b"Description=\xff", "KillSignal=SIGFOO", "Type=bogus", "cpuweight=5", " CPUWeight=5",
    "CPUWeight =5", "MemoryMax=1G\n", "Slice=bad/slice", "RootDirectory=relative",
    "ReadOnlyPaths=relative", "MemoryMax=\uff11G", "Nice=-21", "LimitNOFILE=infinity:1",
    "CPUQuota=-5%", "TasksMax=101%", "Environment=1A=x", "WorkingDirectory=relative",
]  # fmt: skip
VALID_SETENV = ["A=1", "GREETING=a b", "REL_FUZZ_VAR", "EMPTY="]
BAD_SETENV: list[Token] = ["=x", "1X=y", "A B=1", "", " ", "NOT_SET_ANYWHERE", "A\n=1",
                           b"A=\xff", "A-B=1", "=", "A\x01=1"]  # fmt: skip
BAD_UNITS: list[Token] = ["a b", "", " ", "x.socket", "x/y", "-", ".service", "a" * 300,
                          b"\xff", "rp-fz\n", "rp-fz.service.service", "@",
                          "rp fz.service"]  # fmt: skip
VALID_OPEN_FILES = ["/etc/hostname:hostname:read-only", "/nonexistent::graceful",
                    "/etc/os-release:os:read-only,graceful"]  # fmt: skip
BAD_OPEN_FILES: list[Token] = ["relative", "/nonexistent", "/etc/hostname:bad name",
                               "/etc/hostname:x:bogus", "a:b:c:d", "", ":", "/etc/hostname::",
                               b"/etc/\xff", "/etc/hostname:" + "n" * 300]  # fmt: skip
BAD_PASS_FDS: list[Token] = ["99", "-1", "3", "0", "1:out", "x", "", "3:bad name",
                             "4294967296", "\uff13", "5:", "7:a:b"]  # fmt: skip
UNKNOWN_OPTIONS: list[list[Token]] = [
    ["--bogus"], ["-z"], ["--user"], ["--via"], ["-p"], ["--unit"], ["--setenv"], ["--pass-fd"],
    ["--open-file"], ["-pFoo=bar"], ["--user="], ["--via="], ["--dry-run=yes"], ["--"], ["-"],
    ["--property", "--"], ["---"], ["-u"], ["--help=1"], ["-uu"],
]  # fmt: skip
RUNAS_UNKNOWN_OPTIONS: list[list[Token]] = [
    ["--bogus"], ["-z"], ["--user"], ["-g"], ["-D"], ["--nice"], ["--setenv"], ["-p"],
    ["--slice"], ["--preserve-env"], ["--lightweight"], ["--background"], ["--pty=1"],
    ["-uroot"], ["--user="], ["-ix"], ["--empower=yes"], ["---"], ["-"],
]  # fmt: skip
SAFE_COMMANDS: list[list[Token]] = [["true"], ["false"], ["id"], ["id", "-u"], ["/usr/bin/true"],
                                    ["echo", "hello"]]  # fmt: skip
BAD_COMMANDS: list[list[Token]] = [["nosuch-command"], [""], [" "], ["/nonexistent/cmd"],
                                   ["relative/true"], ["/etc/hostname"], ["/etc"],
                                   [b"tr\xffue"], ["true\n"], ["-u"], ["--"]]  # fmt: skip


@dataclass(frozen=True)
class Option:
    """An option the generator may add: how often, its names, good and bad values."""

    probability: float  # of appearing, at each of its two chances
    names: tuple[str, ...]  # one is picked
    valid: Sequence[Token] = ()
    bad: Sequence[Token] = ()  # and random bad values
    p_valid: float = 0.5

    @property
    def is_flag(self) -> bool:
        return not self.valid and not self.bad


NEW_UNIT = "<a new unit name>"  # stands for a fresh valid --unit name
LAUNCH_OPTIONS = [
    Option(0.12, ("--via",), ("auto", "system", "user"),
           ("", "nonsense", "SYSTEM", "user ", b"\xff"), 0.7),
    Option(0.30, ("-p", "--property"), VALID_PROPERTIES, BAD_PROPERTIES, 0.35),
    Option(0.15, ("--setenv",), VALID_SETENV, BAD_SETENV, 0.4),
    Option(0.12, ("--unit",), (NEW_UNIT,), BAD_UNITS, 0.4),
    Option(0.08, ("--description",), ("a description",)),
    Option(0.15, ("--dry-run",)),
    Option(0.05, ("--backend",), ("dbus", "systemd-run"), ("", "nonsense"), 0.6),
    Option(0.10, ("--open-file",), VALID_OPEN_FILES, BAD_OPEN_FILES, 0.3),
    Option(0.08, ("--pass-fd",), (), BAD_PASS_FDS, 0.0),
    Option(0.01, ("--help", "-h")),
]  # fmt: skip
RUNAS_OPTIONS = [
    Option(0.12, ("-g", "--group"), ("test", "0", "root", "1000"), BAD_USERS, 0.4),
    Option(0.12, ("-D", "--chdir"), ("/", "/tmp", "~", "/usr"),
           ("relative", "/nonexistent", "", " ", "a\nb"), 0.5),
    Option(0.06, ("-i",)),
    Option(0.06, ("-s", "--shell", "--via-shell")),
    Option(0.12, ("--setenv", "--env"), VALID_SETENV, BAD_SETENV, 0.4),
    Option(0.08, ("--preserve-env",), ("LANG,HOME", "REL_FUZZ_VAR", "NOPE"),
           (",", ",,", "", "=", "A=B", "a b"), 0.5),
    Option(0.25, ("-p", "--property"), VALID_PROPERTIES, BAD_PROPERTIES, 0.35),
    Option(0.08, ("--unit",), (NEW_UNIT,), BAD_UNITS, 0.4),
    Option(0.06, ("--description",), ("a description",)),
    # No valid slice but the usual two: a new name would create a slice that stays.
    Option(0.08, ("--slice",), ("user.slice", "system.slice", "user"),
           ("bad/slice", "", "a b", "a\nb", b"\xff"), 0.4),
    Option(0.10, ("--nice",), ("5", "-5", "0"),
           ("\uff15", "x", "99", "", "-21", "1_0", " 5", "5\n"), 0.4),
    Option(0.05, ("--pty",)),
    Option(0.08, ("--pipe",)),
    Option(0.05, ("--background",), ("48;2;60;0;0", "")),
    Option(0.05, ("--shell-prompt-prefix",), ("% ",), (), 0.3),
    Option(0.06, ("--lightweight",), ("yes", "no", "true", "0"), ("maybe", "", "2", "\uff11")),
    Option(0.05, ("-n", "--non-interactive", "--no-ask-password")),
    Option(0.03, ("-S", "--stdin")),
    Option(0.05, ("--empower",)),
    Option(0.12, ("--dry-run",)),
    Option(0.01, ("-h", "--help", "--version")),
]  # fmt: skip
SHELL_OPTIONS = {"-s", "--shell", "--via-shell", "-i"}


@dataclass
class Vector:
    argv: list[Token]
    shell: bool = False  # runas: a shell runs it (-s, -i, or no command): 2/126/127 are its

    def as_bytes(self) -> list[bytes]:
        return [a if isinstance(a, bytes) else a.encode() for a in self.argv]

    @property
    def systemd_run_backend(self) -> bool:
        """`--backend systemd-run` (before `--`): runas-podman execs systemd-run itself."""
        args = self.as_bytes()
        options = args[: args.index(b"--")] if b"--" in args else args
        pairs = zip(options, [*options[1:], b""][: len(options)], strict=True)
        return any(
            (a == b"--backend" and b == b"systemd-run") or a == b"--backend=systemd-run"
            for a, b in pairs
        )


@dataclass
class Generator:
    tool: str
    rng: random.Random
    units: int = 0

    def garbage(self) -> Token:
        if self.rng.random() < 0.5:
            return self.rng.choice(ODD_VALUES)
        text = self.rng.choice(MARKERS) + "".join(
            self.rng.choice(ALPHABET) for _ in range(self.rng.randrange(0, 12))
        )
        if self.rng.random() < 0.2:
            return text.encode() + self.rng.choice([b"\xff", b"\xc3", b"\x80"])
        return text

    def pick(self, valid: Sequence[Token], bad: Sequence[Token], p_valid: float) -> Token:
        """A valid value with probability p_valid, else a listed bad one or a random one."""
        if valid and self.rng.random() < p_valid:
            value = self.rng.choice(valid)
            if value == NEW_UNIT:
                self.units += 1
                return f"rp-fz-{self.tool}-{self.units}"
            return value
        return self.rng.choice(bad) if bad and self.rng.random() < 0.6 else self.garbage()

    def options(self, table: list[Option], unknown: list[list[Token]]) -> list[list[Token]]:
        """Options from TABLE (each may come twice) and unknown ones, in random order."""
        chosen: list[list[Token]] = []
        for option in table:
            for _ in range(2):
                if self.rng.random() < option.probability:
                    name = self.rng.choice(option.names)
                    if option.is_flag:
                        chosen.append([name])
                    else:
                        chosen.append([name, self.pick(option.valid, option.bad, option.p_valid)])
        if self.rng.random() < 0.1:
            chosen.append(list(self.rng.choice(unknown)))
        self.rng.shuffle(chosen)
        return chosen

    def user_option(self, valid: list[str], p_valid: float) -> list[Token]:
        value = self.pick(valid, BAD_USERS, p_valid)
        form = self.rng.random()
        if form < 0.7:
            return ["-u", value]
        if form < 0.85:
            return ["--user", value]
        if isinstance(value, bytes):
            return [b"--user=" + value]
        return ["--user=" + value]

    def command(self) -> list[Token]:
        if self.rng.random() < 0.8:
            command = list(self.rng.choice(SAFE_COMMANDS))
            if command[0] in ("echo", "id") and self.rng.random() < 0.6:
                command += [self.garbage() for _ in range(self.rng.randrange(1, 3))]
            return command
        return list(self.rng.choice(BAD_COMMANDS))

    # --- runas-podman exec|podman ---

    def podman_arguments(self) -> list[Token]:
        roll = self.rng.random()
        if roll < 0.015:
            return ["run", "--rm", "--network=none", "localhost/busybox", "true"]
        if roll < 0.75:
            return ["--version"]
        # Refused before podman runs: arguments that are not UTF-8 (podman itself would
        # answer other bad arguments with its own status 125, which is indistinguishable).
        return [
            self.rng.choice(["--version", "ps", "run"]),
            self.rng.choice([b"\xff", b"\xfe\xff", b"a\xc3", b"\xed\xa0\x80"]),
        ]

    def tail(self, command: list[Token]) -> list[Token]:
        roll = self.rng.random()
        if roll < 0.6:
            return ["--", *command]
        if roll < 0.85:
            return command
        if roll < 0.93:
            return []  # no command at all
        return ["--", "-u", "test", *command]  # options after -- belong to the command

    def runas_podman_vector(self) -> Vector:
        if self.rng.random() < 0.04:  # the group level: no or an odd subcommand
            odd: list[list[Token]] = [[], ["--version"], ["-h"], [self.tool.upper()],
                                      [self.garbage(), self.tool], ["--bogus", self.tool],
                                      [self.tool]]  # fmt: skip
            return Vector(self.rng.choice(odd))
        options = self.options(LAUNCH_OPTIONS, UNKNOWN_OPTIONS)
        if self.rng.random() < 0.92:
            options.insert(self.rng.randrange(len(options) + 1),
                           self.user_option(["test", "1000"], 0.8))  # fmt: skip
        rest = self.podman_arguments() if self.tool == "podman" else self.command()
        return Vector([self.tool, *(t for option in options for t in option), *self.tail(rest)])

    # --- runas ---

    def runas_vector(self) -> Vector:
        options = self.options(RUNAS_OPTIONS, RUNAS_UNKNOWN_OPTIONS)
        if self.rng.random() < 0.55:
            options.insert(self.rng.randrange(len(options) + 1),
                           self.user_option(["test", "root", "0", "1000"], 0.7))  # fmt: skip
        flat = [token for option in options for token in option]
        command = self.command() if self.rng.random() < 0.92 else []
        if "--pty" in flat and not command:
            command = ["true"]  # a pty shell reading /dev/null would wait for its terminal
        shell = bool(SHELL_OPTIONS & {token for token in flat if isinstance(token, str)})
        if command and self.rng.random() < 0.6:
            command = ["--", *command]
        return Vector([*flat, *command], shell=shell or not command)

    def vector(self) -> Vector:
        return self.runas_vector() if self.tool == "runas" else self.runas_podman_vector()


# --- running a vector -----------------------------------------------------------------------


@dataclass
class Outcome:
    status: int | None  # None: killed at the timeout
    stdout_size: int
    stderr: str
    seconds: float


def exit_status(exit: SystemExit) -> int:
    """What a Python process exits with for this SystemExit."""
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code & 0xFF
    print(exit.code, file=sys.stderr)
    return 1


def child(main: Callable[[], Any], prog: str, argv: list[bytes], out: int, err: int) -> None:
    """In the forked child: become a fresh `prog ARGV...` process and run its entry point."""
    status = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, 65536)
        # Not the parent's sys.stdin, whose buffer may hold the rest of its JSON input.
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (lives as long as this process)
        sys.argv = [prog, *(os.fsdecode(arg) for arg in argv)]
        main()
        status = 0
    except SystemExit as exit:
        status = exit_status(exit)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


@dataclass
class Running:
    index: int
    pid: int
    pidfd: int
    out: int
    err: int
    started: float


def run_forked(
    main: Callable[[], Any],
    prog: str,
    vectors: list[Vector],
    workers: int,
    timeout: float,
    max_hangs: int,
) -> list[Outcome]:
    """The vectors, each in a forked child, `workers` at a time; after `max_hangs` runs
    that hang (killed at `timeout`) no new one starts: the outcomes of those started."""
    outcomes: list[Outcome | None] = [None] * len(vectors)
    running: dict[int, Running] = {}  # by pidfd
    next_index = 0
    hangs = 0
    while (next_index < len(vectors) and hangs < max_hangs) or running:
        while next_index < len(vectors) and hangs < max_hangs and len(running) < workers:
            out, err = os.memfd_create("stdout"), os.memfd_create("stderr")
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                child(main, prog, vectors[next_index].as_bytes(), out, err)
            pidfd = os.pidfd_open(pid)
            running[pidfd] = Running(next_index, pid, pidfd, out, err, time.monotonic())
            next_index += 1
        ready, _, _ = select.select(list(running), [], [], 0.5)
        now = time.monotonic()
        for run in list(running.values()):
            if run.pidfd not in ready and now - run.started < timeout:
                continue
            status: int | None
            if run.pidfd in ready:
                _, wait_status = os.waitpid(run.pid, 0)
                status = os.waitstatus_to_exitcode(wait_status)
            else:  # a hang: kill the child's whole session
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.pid, 9)
                os.waitpid(run.pid, 0)
                status = None
                hangs += 1
            os.close(run.pidfd)
            del running[run.pidfd]
            stdout, stderr = read_all(run.out), read_all(run.err)
            outcomes[run.index] = Outcome(
                status, len(stdout), stderr.decode(errors="replace"), time.monotonic() - run.started
            )
    return [outcome for outcome in outcomes[:next_index] if outcome is not None]


def run_executable(path: str, vector: Vector, timeout: float) -> Outcome:
    started = time.monotonic()
    try:
        result = subprocess.run(
            [path, *vector.as_bytes()],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Outcome(None, 0, "", time.monotonic() - started)
    return Outcome(
        result.returncode,
        len(result.stdout),
        result.stderr.decode(errors="replace"),
        time.monotonic() - started,
    )


# --- the contract ---------------------------------------------------------------------

# systemd's EXIT_* codes (systemd.exec(5)): with --backend systemd-run, systemd-run's own
# statuses reach the caller as they are (docs/cli.md).
SYSTEMD_EXIT_CODES = frozenset(range(200, 246))


@dataclass(frozen=True)
class Contract:
    prog: str
    failure_statuses: frozenset[int]  # the tool's own failures: one line, `prog: ` first
    command_statuses: frozenset[int]  # what the launched commands themselves may exit with
    shell_statuses: frozenset[int] = frozenset()  # more, when a shell runs the command
    # podman's own errors ("Error: ...", status 125) when it was given options it refuses
    # (those after `--`): the command's own answer, not the launcher's.
    command_error_prefix: str | None = None


CONTRACTS = {
    "exec": Contract("runas-podman", frozenset({2, 125, 126, 127}), frozenset({0, 1})),
    "podman": Contract(
        "runas-podman",
        frozenset({2, 125, 126, 127}),
        frozenset({0, 1}),
        command_error_prefix="Error: ",
    ),
    "runas": Contract("runas", frozenset({1}), frozenset({0, 1}), frozenset({2, 126, 127})),
}


def violations(contract: Contract, vector: Vector, outcome: Outcome) -> list[str]:
    """What this run did against the documented contract (empty: nothing)."""
    if outcome.status is None:
        return ["still running after the timeout"]
    found = []
    # "PROG: note: ..." lines (documented: --dry-run's notes) inform; they are no error.
    notes = [
        line for line in outcome.stderr.splitlines() if line.startswith(f"{contract.prog}: note: ")
    ]
    lines = [line for line in outcome.stderr.splitlines() if line not in notes]
    if "Traceback" in outcome.stderr:
        found.append("a traceback")
    if outcome.status < 0:
        found.append(f"killed by signal {-outcome.status}")
    tool_lines = [line for line in lines if line.startswith(f"{contract.prog}: ")]
    if tool_lines:
        if len(lines) != 1 or not outcome.stderr.endswith("\n") or len(notes) > 1:
            found.append(f"an error of {contract.prog} that is not exactly one line")
        if "\\x0a" in outcome.stderr and not any(b"\n" in arg for arg in vector.as_bytes()):
            found.append("a message of several lines squashed into one (\\x0a escapes)")
        if outcome.status not in contract.failure_statuses:
            found.append(
                f"an error of {contract.prog} with the undocumented status {outcome.status}"
            )
    elif outcome.status in contract.failure_statuses - contract.command_statuses and not (
        contract.command_error_prefix and outcome.stderr.startswith(contract.command_error_prefix)
    ):
        found.append(f"failure status {outcome.status} without its one-line error")
    allowed = contract.failure_statuses | contract.command_statuses
    if vector.shell:
        allowed |= contract.shell_statuses
    if vector.systemd_run_backend:
        allowed |= SYSTEMD_EXIT_CODES  # documented: systemd-run's own statuses pass through
    if outcome.status >= 0 and outcome.status not in allowed:
        found.append(f"undocumented status {outcome.status}")
    return found


def shown(vector: Vector) -> list[str]:
    """The argv for a report: readable, long values cut."""
    out = []
    for arg in vector.argv:
        text = repr(arg)
        out.append(text if len(text) <= 80 else f"{text[:60]}...({len(arg)} long)")
    return out


RANDOM_UNIT = re.compile(r"runas(-podman)?-[0-9a-f]{12}")


UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]+")


def named_units(vectors: list[Vector]) -> list[str]:
    """The units (and lifelines) that --unit values not under rp-* would name."""
    names = set()
    for vector in vectors:
        for option, value in zip(vector.argv, vector.argv[1:], strict=False):
            if (
                option == "--unit"
                and isinstance(value, str)
                and UNIT_NAME.fullmatch(value)
                and len(value) < 240
            ):
                stem = value if "." in value else f"{value}.service"
                if not stem.startswith("rp-"):
                    names |= {stem, stem.removesuffix(".service") + "-lifeline.service"}
    return sorted(names)


def units_left(names: list[str]) -> list[str]:
    """Units of ours still loaded on the system manager or on test's: the usual patterns
    and the NAMES given with --unit."""
    patterns = ["runas-*", "runas-podman-*", "rp-*", *names]
    left: list[str] = []
    for systemctl in (["systemctl"], ["systemctl", "--user", "--machine=test@"]):
        listing = subprocess.run(
            [*systemctl, "list-units", "--all", "--plain", "--no-legend", "--", *patterns],
            capture_output=True,
            text=True,
        )
        left += [
            line.strip()
            for line in listing.stdout.splitlines()
            # The broker's and root's launch server's are installed services.
            if line.strip() and "runas-broker" not in line and "runas-podman-launch" not in line
        ]
    return left


def main() -> None:
    spec = json.load(sys.stdin)
    tool = spec["tool"]
    os.chdir("/")
    os.environ["REL_FUZZ_VAR"] = "from-the-caller"
    import runas_podman

    for module in pkgutil.iter_modules(runas_podman.__path__, "runas_podman."):
        if module.name != "runas_podman.__main__":  # that one runs the CLI
            with contextlib.suppress(Exception):
                importlib.import_module(module.name)  # the children then import nothing
    contract = CONTRACTS[tool]
    # The entry point the installed executable runs (the package's console script).
    (script,) = importlib.metadata.entry_points(group="console_scripts", name=contract.prog)
    entry: Callable[[], Any] = script.load()
    generator = Generator(tool, random.Random(spec["seed"]))
    vectors = [generator.vector() for _ in range(spec["count"])]

    started = time.monotonic()
    outcomes = run_forked(entry, contract.prog, vectors, spec["workers"], spec["timeout"],
                          spec["max_hangs"])  # fmt: skip
    seconds = time.monotonic() - started

    found: dict[tuple[str, ...], dict[str, Any]] = {}  # one example per kind of violation
    for vector, outcome in zip(vectors, outcomes, strict=False):
        problems = violations(contract, vector, outcome)
        if problems:
            # One example per kind; every hang is its own kind (its argv matters).
            detail = repr(vector.argv) if outcome.status is None else outcome.stderr
            kind = (*problems, RANDOM_UNIT.sub("UNIT", detail)[:100])
            example = found.setdefault(
                kind,
                {
                    "problems": problems,
                    "argv": shown(vector),
                    "status": outcome.status,
                    "stderr": outcome.stderr[-600:],
                    "times": 0,
                },
            )
            example["times"] += 1

    # The same first vectors through the installed executable: the forks must answer alike.
    sample = vectors[: spec["crosscheck"]]
    executed = [
        run_executable(f"/usr/local/bin/{contract.prog}", v, spec["timeout"]) for v in sample
    ]
    mismatches = []
    for vector, forked, real in zip(sample, outcomes, executed, strict=False):
        if (forked.status, RANDOM_UNIT.sub("UNIT", forked.stderr)) != (
            real.status,
            RANDOM_UNIT.sub("UNIT", real.stderr),
        ):
            mismatches.append(
                {
                    "argv": shown(vector),
                    "forked": [forked.status, forked.stderr[:300]],
                    "executed": [real.status, real.stderr[:300]],
                }
            )

    names = named_units(vectors)
    left = units_left(names)
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = units_left(names)
    statuses = Counter(str(outcome.status) for outcome in outcomes)
    json.dump(
        {
            "vectors": len(vectors),
            "ran": len(outcomes),  # fewer: stopped after max_hangs hangs
            "statuses": dict(sorted(statuses.items(), key=lambda item: -item[1])),
            "seconds": seconds,
            "median_ms": statistics.median(o.seconds for o in outcomes) * 1000,
            "violation_count": sum(example["times"] for example in found.values()),
            "violations": list(found.values())[:40],
            "crosscheck": {
                "vectors": len(sample),
                "mismatches": mismatches,
                "fork_median_ms": statistics.median(o.seconds for o in outcomes[: len(sample)])
                * 1000,
                "exec_median_ms": statistics.median(o.seconds for o in executed) * 1000,
            },
            "units_left": left,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
