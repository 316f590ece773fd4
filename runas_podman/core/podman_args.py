"""Reading a `podman run` command line: where podman's options end, and which were given.

Pure. Needed because conmon, not the unit, holds a container: a `podman run` unit that
is stopped (the client interrupted or killed) ends podman, but a container whose PID 1
ignores SIGTERM lives on. The launcher therefore adds `--cidfile` to a foreground
`podman run` and stops (with `--rm`: removes) that container when the unit stops. A
detached run (`-d`) is left alone: outliving the command is what it asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# `podman run` options that take a value (podman 4.3 to 5.x; from `podman run --help`).
# An option not in either set stops the analysis: the run is then left as it is.
RUN_VALUE_OPTIONS = _words(
    """
    add-host annotation arch attach authfile blkio-weight blkio-weight-device cap-add cap-drop
    cgroup-conf cgroup-parent cgroupns cgroups chrootdirs cidfile conmon-pidfile cpu-period
    cpu-quota cpu-rt-period cpu-rt-runtime cpu-shares cpus cpuset-cpus cpuset-mems
    decryption-key detach-keys device device-cgroup-rule device-read-bps device-read-iops
    device-write-bps device-write-iops dns dns-opt dns-option dns-search entrypoint env
    env-file env-merge expose gidmap gpus group-add group-entry health-cmd health-interval
    health-log-destination health-max-log-count health-max-log-size health-on-failure
    health-retries health-start-period health-startup-cmd health-startup-interval
    health-startup-retries health-startup-success health-startup-timeout health-timeout
    hostname hosts-file hostuser image-volume init-path ip ip6 ipc kernel-memory label
    label-file log-driver log-opt mac-address memory memory-reservation memory-swap
    memory-swappiness mount name network network-alias oom-score-adj os passwd-entry
    personality pid pidfile pids-limit platform pod pod-id-file preserve-fd preserve-fds
    publish pull rdt-class requires restart retry retry-delay sdnotify seccomp-policy secret
    security-opt shm-size shm-size-systemd stop-signal stop-timeout subgidname subuidname
    sysctl systemd timeout tmpfs tz uidmap ulimit umask unsetenv user userns uts variant
    volume volumes-from workdir
"""
)
RUN_FLAG_OPTIONS = _words(
    """
    detach disable-content-trust env-host help http-proxy init interactive no-healthcheck
    no-hostname no-hosts oom-kill-disable passwd privileged publish-all quiet read-only
    read-only-tmpfs replace rm rmi rootfs sig-proxy tls-verify tty unsetenv-all
"""
)
SHORT_VALUE_OPTIONS = frozenset("acehlmpuvw")
SHORT_FLAG_OPTIONS = frozenset("Pdiqt")
_FALSE = ("false", "0", "f", "F", "FALSE", "False")


class ForegroundRun(NamedTuple):
    """A `podman run` that waits for its container: where its options start, and --rm."""

    options_at: int  # index in the podman arguments right after `run` / `container run`
    remove: bool  # --rm: the container is removed when it ends


def foreground_run(args: Sequence[str]) -> ForegroundRun | None:
    """The shape of `podman ARGS` if it is a foreground run whose options all are known."""
    if args[:1] == ["run"]:
        at = 1
    elif args[:2] == ["container", "run"]:
        at = 2
    else:
        return None
    flags: dict[str, bool] = {}
    i = at
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break  # the image
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name in RUN_VALUE_OPTIONS:
                if name == "cidfile":
                    return None  # the caller's own cidfile: the caller's to clean up
                i += 1 if eq else 2
                continue
            if name not in RUN_FLAG_OPTIONS:
                return None  # unknown: do not guess where the image is
            flags[name] = not (eq and value in _FALSE)
            i += 1
            continue
        letters = arg[1:]
        for j, letter in enumerate(letters):
            if letter in SHORT_VALUE_OPTIONS:
                i += 1 if j + 1 < len(letters) else 2  # -e X=1 or -eX=1
                break
            if letter not in SHORT_FLAG_OPTIONS:
                return None
            if letter == "d":
                flags["detach"] = True
        else:
            i += 1
    if flags.get("detach"):
        return None
    return ForegroundRun(at, flags.get("rm", False))
