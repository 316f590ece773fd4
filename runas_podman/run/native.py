"""The native backend: a LaunchPlan run by this process itself, where PID 1 is not systemd.

Containers and CI jobs often have no systemd. There, a root caller (runas, runas-podman
exec/podman, or the broker of `runas-podman broker --listen`) does what systemd's exec
would do, in the order systemd does it (and sudo-rs's exec: fork, session, drop):

1. every property of the plan is honoured or refused (native_plan.native_spec);
2. the fds for --pass-fd and --open-file are opened (as root, the paths already checked
   by safepath, as PID 1 would open them); for runas-podman, /run/user/UID is made;
3. a PAM session opens in this (root) process when the plan has PAMName= (runas):
   pam_start, PAM_TTY/PAM_RUSER, the environment put, acct_mgmt, setcred, open_session,
   and the environment PAM ends with is the command's;
4. a child: a new session (setsid; the pty as its controlling terminal), stdio and the
   passed fds at 0, 1, 2 and 3, 4, ...; nice; signals reset; initgroups, setgid, setuid;
   chdir (as the user); LISTEN_* set; exec. A failure before exec comes back over a
   close-on-exec pipe and becomes one line;
5. this process forwards the pty (ptyfwd) or leaves the caller's stdio to the command,
   passes SIGTERM/SIGINT/SIGHUP on as a stop (ExecStop= first, then the signal to the
   command's process group, SIGKILL after the stop timeout), and waits on a pidfd;
6. after the command: the rest of its process group is sent SIGTERM, ExecStopPost= runs,
   the PAM session closes (close_session, setcred DELETE, pam_end).

Only root may: there is no SUID anywhere; a non-root `runas` goes to a broker if one
listens (broker.py), else gets one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import grp
import os
import signal
import stat
import sys
import termios
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runas_podman.core.errors import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, RunasError
from runas_podman.core.model import LaunchPlan, Manager, ServiceUser, Stdio
from runas_podman.core.native_plan import (
    NativeSpec,
    exit_status,
    listen_environment,
    native_spec,
    pam_environment,
    service_environment,
    working_directory,
)
from runas_podman.host.safepath import open_for_root
from runas_podman.run.remote import Remote
from runas_podman.run.signals import TERMINATING_SIGNALS

if TYPE_CHECKING:
    from runas_podman.run.ptyfwd import PtyForwarder

FORWARDED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)  # passed on as they are
HELD_SIGNALS = (*TERMINATING_SIGNALS, *FORWARDED_SIGNALS)


def not_root_message(tool: str) -> str:
    return (
        f"systemd is not PID 1 here, and without it only root can run a command as another "
        f"user ({tool} has no SUID bit): run it as root, or, for runas, start the broker "
        "(`runas-podman broker --listen`) under this system's supervisor"
    )


# --- PAM ------------------------------------------------------------------------------

PAM_SUCCESS = 0
PAM_TTY, PAM_RUSER = 3, 8
PAM_ESTABLISH_CRED, PAM_DELETE_CRED, PAM_SILENT = 0x2, 0x4, 0x8000
PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_ERROR_MSG, PAM_TEXT_INFO = 1, 2, 3, 4
PAM_BUF_ERR, PAM_CONV_ERR = 5, 19


class _Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_char_p), ("resp_retcode", ctypes.c_int)]


_CONV = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(_Message)),
    ctypes.POINTER(ctypes.POINTER(_Response)), ctypes.c_void_p,
)  # fmt: skip


class _Conv(ctypes.Structure):
    _fields_ = [("conv", _CONV), ("appdata_ptr", ctypes.c_void_p)]


class PamSession:
    """A PAM session for `user`, opened in this process (root) the way systemd's exec
    opens one for PAMName=. Nobody is authenticated here: the caller is root, or the
    broker authenticated it already. A module that asks a question gets no answer."""

    def __init__(self, service: str, user: str, tty: str | None, ruser: str) -> None:
        self.pam = ctypes.CDLL(ctypes.util.find_library("pam") or "libpam.so.0", use_errno=True)
        self.libc = ctypes.CDLL(None)
        self.libc.calloc.restype = ctypes.c_void_p
        self.libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.pam.pam_strerror.restype = ctypes.c_char_p
        self.pam.pam_strerror.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.pam.pam_getenvlist.restype = ctypes.POINTER(ctypes.c_void_p)
        self.pam.pam_getenvlist.argtypes = [ctypes.c_void_p]
        for name in ("pam_acct_mgmt", "pam_setcred", "pam_open_session", "pam_close_session",
                     "pam_end"):  # fmt: skip
            getattr(self.pam, name).argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.pam.pam_set_item.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self.pam.pam_putenv.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.service = service
        self.callback = _CONV(self._converse)  # kept alive as long as the handle
        self.conv = _Conv(self.callback, None)
        self.handle = ctypes.c_void_p()
        self.opened = False
        self.credentials = False
        self._check(
            self.pam.pam_start(service.encode(), user.encode(), ctypes.byref(self.conv),
                               ctypes.byref(self.handle)),
            "pam_start",
        )  # fmt: skip
        if tty:
            self._check(self.pam.pam_set_item(self.handle, PAM_TTY, tty.encode()), "PAM_TTY")
        self._check(self.pam.pam_set_item(self.handle, PAM_RUSER, ruser.encode()), "PAM_RUSER")

    def _converse(
        self,
        count: int,
        messages: ctypes._Pointer[ctypes._Pointer[_Message]],
        responses: ctypes._Pointer[ctypes._Pointer[_Response]],
        _data: int | None,
    ) -> int:
        """Messages go to stderr; a question fails the conversation (nobody to ask)."""
        address = self.libc.calloc(count, ctypes.sizeof(_Response))
        if not address:
            return PAM_BUF_ERR
        for i in range(count):
            message = messages[i].contents
            if message.msg_style in (PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON):
                self.libc.free(address)
                return PAM_CONV_ERR
            text = (message.msg or b"").decode(errors="replace")
            print(f"PAM ({self.service}): {text}", file=sys.stderr, flush=True)
        responses[0] = ctypes.cast(address, ctypes.POINTER(_Response))
        return PAM_SUCCESS

    def _check(self, code: int, step: str) -> None:
        if code != PAM_SUCCESS:
            text = (self.pam.pam_strerror(self.handle, code) or b"?").decode(errors="replace")
            self.end(code)
            raise RunasError(
                f"the PAM session (service {self.service}) failed at {step}: {text}; see "
                "the PAM configuration (runas-podman install-pam writes /etc/pam.d/runas)"
            )

    def open(self, environ: Mapping[str, str]) -> dict[str, str]:
        """Put `environ`, check the account, establish credentials, open the session;
        the environment PAM holds then (what modules added) is the command's."""
        for entry in pam_environment(environ):
            self._check(self.pam.pam_putenv(self.handle, entry.encode()), "pam_putenv")
        self._check(self.pam.pam_acct_mgmt(self.handle, PAM_SILENT), "pam_acct_mgmt")
        self._check(self.pam.pam_setcred(self.handle, PAM_ESTABLISH_CRED | PAM_SILENT),
                    "pam_setcred")  # fmt: skip
        self.credentials = True
        self._check(self.pam.pam_open_session(self.handle, PAM_SILENT), "pam_open_session")
        self.opened = True
        return self.environment()

    def environment(self) -> dict[str, str]:
        listing = self.pam.pam_getenvlist(self.handle)
        env: dict[str, str] = {}
        if not listing:
            return env
        i = 0
        while listing[i]:
            entry = ctypes.string_at(listing[i]).decode(errors="surrogateescape")
            name, _, value = entry.partition("=")
            env[name] = value
            self.libc.free(listing[i])
            i += 1
        self.libc.free(ctypes.cast(listing, ctypes.c_void_p))
        return env

    def close(self) -> None:
        if self.opened:
            self.pam.pam_close_session(self.handle, PAM_SILENT)
            self.opened = False
        if self.credentials:
            self.pam.pam_setcred(self.handle, PAM_DELETE_CRED | PAM_SILENT)
            self.credentials = False
        self.end(PAM_SUCCESS)

    def end(self, code: int) -> None:
        if self.handle:
            self.pam.pam_end(self.handle, code)
            self.handle = ctypes.c_void_p()


# --- preparing ------------------------------------------------------------------------


def prepare_runtime_dir(user: ServiceUser) -> None:
    """/run/user/UID for rootless podman: made 0700 for the user when missing (what
    user-runtime-dir@UID does under systemd); an existing one must be the user's."""
    os.makedirs("/run/user", mode=0o755, exist_ok=True)
    path = user.runtime_dir
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != user.uid:
            raise RunasError(
                f"{path} exists but is not a directory of {user.name}: remove it, and "
                "runas-podman makes it again"
            ) from None
        return
    os.chown(path, user.uid, user.gid)
    os.chmod(path, 0o700)


def open_fds(plan: LaunchPlan) -> tuple[list[int], list[str]]:
    """The fds the command gets from 3 on, and their names: --pass-fd first, then
    --open-file (systemd's order), each a new fd of this process; the paths opened by
    the walk that checks them (safepath.open_trusted), never looked up twice."""
    fds: list[int] = []
    names: list[str] = []
    try:
        for passed in plan.pass_fds:
            fds.append(fcntl.fcntl(passed.fd, fcntl.F_DUPFD_CLOEXEC, 3))
            names.append(passed.name)
        for open_file in plan.open_files:
            fd = open_for_root(open_file, "check that it exists, or add graceful to skip a "
                               "missing one")  # fmt: skip
            if fd is not None:
                fds.append(fd)
                names.append(open_file.name)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds, names


# --- the child ------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """Everything the child needs, decided before the fork."""

    argv: tuple[str, ...]
    environ: dict[str, str]
    user: ServiceUser
    gid: int
    workdir: str
    workdir_optional: bool
    stdio: tuple[int, int, int]
    controlling_tty: bool
    fds: tuple[int, ...]
    fd_names: tuple[str, ...]
    nice: int | None
    umask: int
    ignore_sigpipe: bool


STAGES = {"chdir": "changing to the working directory", "user": "setting the user",
          "group": "setting the groups", "exec": "executing the command",
          "setup": "setting up the session"}  # fmt: skip


def spawn(launch: Launch) -> int:
    """Fork the command; its pid once exec succeeded, or RunasError naming the stage."""
    error_read, error_write = os.pipe()  # close-on-exec: EOF when exec succeeds
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        _child(launch, error_write)
    os.close(error_write)
    report = b""
    with os.fdopen(error_read, "rb") as errors:
        report = errors.read()
    if not report:
        return pid
    os.waitpid(pid, 0)
    stage, _, rest = report.decode(errors="replace").partition(":")
    number, _, text = rest.partition(":")
    what = STAGES.get(stage, stage)
    status = 125
    if stage == "exec":
        status = EXIT_NOT_FOUND if number == str(errno.ENOENT) else EXIT_CANNOT_EXECUTE
    raise RunasError(f"{launch.argv[0]}: failed while {what} as {launch.user.name}: {text}", status)


def _child(launch: Launch, error_write: int) -> None:  # pragma: no cover - in the child
    stage = "setup"
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for signum in signal.valid_signals():
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                signal.signal(signum, signal.SIG_DFL)
        if launch.ignore_sigpipe:
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        os.setsid()
        sources = [*launch.stdio, *launch.fds]
        count = len(sources)
        high = fcntl.fcntl(error_write, fcntl.F_DUPFD_CLOEXEC, count + 3)
        os.close(error_write)
        error_write = high
        copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, count + 3) for fd in sources]
        for target, copy in enumerate(copies):
            os.dup2(copy, target, inheritable=True)
        for copy in copies:
            os.close(copy)
        os.closerange(count, error_write)
        os.closerange(error_write + 1, 1 << 16)
        if launch.controlling_tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if launch.nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, launch.nice)
        os.umask(launch.umask)
        stage = "group"
        os.initgroups(launch.user.name, launch.gid)
        os.setgid(launch.gid)
        stage = "user"
        os.setuid(launch.user.uid)
        stage = "chdir"
        try:
            os.chdir(launch.workdir)
        except OSError:
            if not launch.workdir_optional:
                raise
            os.chdir(launch.user.home if os.path.isdir(launch.user.home) else "/")
        env = {**launch.environ, **listen_environment(launch.fd_names, os.getpid())}
        stage = "exec"
        os.execve(launch.argv[0], list(launch.argv), env)
    except OSError as error:
        message = f"{stage}:{error.errno}:{error.strerror}"
    except Exception as error:
        message = f"{stage}:0:{error}"
    with contextlib.suppress(OSError):
        os.write(error_write, message.encode(errors="replace")[:4000])
    os._exit(EXIT_CANNOT_EXECUTE)


# --- running --------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """Where the command's stdio comes from: this process's (or the caller's `stdio`),
    a local pty forwarded to them, or a remote client's fds (the broker's caller)."""

    stdio: tuple[int, int, int] = (0, 1, 2)
    tint: str | None = None
    title: str | None = None
    remote: Remote | None = None
    ruser: str = "root"
    through: tuple[bool, bool, bool] = (True, True, True)  # stdio through the local pty


def run_native(plan: LaunchPlan, client: Client | None = None) -> int:
    """native_session() in a loop of its own, for callers that have none."""
    return asyncio.run(native_session(plan, client or Client()))


async def native_session(plan: LaunchPlan, client: Client) -> int:
    """Run the plan here, as root, to its end; the status to exit with. One at a time
    per process: the command's process group gets this process's signals."""
    if os.geteuid() != 0:
        raise RunasError(not_root_message("runas-podman"))
    if plan.manager is Manager.USER:
        raise RunasError(
            f"--via user needs {plan.user.name}'s own systemd --user, and systemd is not "
            "PID 1 here: leave --via at system (the default for root)"
        )
    spec = native_spec(plan)
    user = plan.user
    gid = _group_id(spec.group) if spec.group else user.gid
    if spec.runtime_dir:
        prepare_runtime_dir(user)
    fds, names = open_fds(plan)
    forwarder: PtyForwarder | None = None
    session: PamSession | None = None
    try:
        pty = plan.stdio is Stdio.PTY
        if pty and client.remote is None:
            from runas_podman.run.ptyfwd import PtyForwarder

            forwarder = PtyForwarder(client.tint, client.title, client.through, client.stdio)
            stdio: tuple[int, int, int] = forwarder.unit_stdio()
        else:
            stdio = client.stdio if client.remote is None else client.remote.stdio_fds
        ttys = [fd for fd in stdio if os.isatty(fd)] if pty else []
        tty = os.ttyname(ttys[0]) if ttys else None
        environ = service_environment(plan, spec, user)
        caller_umask = os.umask(spec.umask if spec.umask is not None else 0o022)
        try:
            if spec.pam_service is not None:
                session = PamSession(spec.pam_service, user.name, tty, client.ruser)
                environ = session.open(environ)
        finally:
            umask = os.umask(caller_umask)  # pam_umask's, if it set one
        # From the fork on, a stop signal must find the command to stop: held until the
        # loop's handlers are in place (_wait), not acted on by Python's default.
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        workdir = working_directory(spec, user)
        launch = Launch(
            argv=plan.argv, environ=environ, user=user, gid=gid, workdir=workdir,
            workdir_optional=spec.working_directory_optional, stdio=stdio,
            controlling_tty=tty is not None, fds=tuple(fds), fd_names=tuple(names),
            nice=spec.nice, umask=umask, ignore_sigpipe=spec.ignore_sigpipe,
        )  # fmt: skip
        pid = spawn(launch)
        for fd in fds:
            os.close(fd)
        fds = []
        if forwarder is not None:
            forwarder.close_peer()
        if client.remote is not None:
            client.remote.on_started()
        return await _wait(pid, launch, spec, forwarder, client)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
        for fd in fds:
            os.close(fd)
        if forwarder is not None:
            forwarder.stop()
        if session is not None:
            session.close()


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise RunasError(f"unknown group '{name}'") from None


async def _wait(
    pid: int, launch: Launch, spec: NativeSpec, forwarder: PtyForwarder | None, client: Client
) -> int:
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[int] = loop.create_future()
    stopped: list[int] = []  # the status of a stop (128+N), once one began
    pidfd = os.pidfd_open(pid)

    def reap() -> None:
        loop.remove_reader(pidfd)
        _, wait_status = os.waitpid(pid, 0)
        if not ended.done():
            ended.set_result(exit_status(wait_status))

    def signal_group(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)

    async def stop(status: int, signum: int) -> None:
        if stopped:
            return
        stopped.append(status)
        for argv in spec.exec_stop:
            await _run_as_user(argv, launch, {"MAINPID": str(pid)}, spec.stop_timeout)
        signal_group(signum)
        if spec.send_sighup and signum != signal.SIGHUP:
            signal_group(signal.SIGHUP)
        signal_group(signal.SIGCONT)
        loop.call_later(spec.stop_timeout, signal_group, signal.SIGKILL)

    tasks: set[asyncio.Task[None]] = set()

    def on_signal(signum: int) -> None:
        task = loop.create_task(stop(128 + signum, signum))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_reader(pidfd, reap)
    for signum in TERMINATING_SIGNALS:
        loop.add_signal_handler(signum, on_signal, int(signum))
    for signum in FORWARDED_SIGNALS:
        loop.add_signal_handler(signum, signal_group, int(signum))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)  # handled from here on
    watch = client.remote.watch_client() if client.remote is not None else None
    if watch is not None:  # the client went away: a stop, as its SIGHUP would be
        watch.add_done_callback(
            lambda done: None if done.cancelled() else on_signal(done.result() - 128)
        )
    try:
        if forwarder is not None:
            forwarder.start()
        status = await ended
        # What is left of the command's process group goes with it (the unit's cgroup
        # would be stopped so), then ExecStopPost=.
        signal_group(signal.SIGTERM)
        if spec.send_sighup:
            signal_group(signal.SIGHUP)
        for argv in spec.exec_stop_post:
            await _run_as_user(argv, launch, {}, spec.stop_timeout)
        return stopped[0] if stopped else status
    finally:
        for signum in HELD_SIGNALS:
            loop.remove_signal_handler(signum)
        if watch is not None and not watch.done():
            watch.cancel()
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if forwarder is not None:
            forwarder.stop()  # inside the loop that runs it


async def _run_as_user(
    argv: Sequence[str], launch: Launch, extra: Mapping[str, str], timeout: float
) -> None:
    """An ExecStop=/ExecStopPost= command: as the user, its environment, no stdio but
    stderr; its failure is ignored (the plan's commands carry systemd's '-')."""
    process = await asyncio.create_subprocess_exec(
        *argv, env={**launch.environ, **extra}, cwd="/", user=launch.user.uid,
        group=launch.gid, extra_groups=os.getgrouplist(launch.user.name, launch.gid),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=launch.stdio[2], start_new_session=True,
    )  # fmt: skip
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
