"""The service user's podman, through its REST API socket (podman-py).

The socket is /run/user/UID/podman/podman.sock, served by podman.socket in the user's
own manager; it is started on demand. podman-py (and requests) are imported only here.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from runas_podman.core.errors import BusCallError, RunasError
from runas_podman.core.model import ServiceUser


def socket_path(user: ServiceUser) -> str:
    return f"{user.runtime_dir}/podman/podman.sock"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, as podman prints them. Every cell is text a
    user's podman or manager chose (names, commands): shown escaped, one line each."""
    from runas_podman.core.errors import one_line

    rows = [[one_line(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.3g} GB"


async def _start_socket(user: ServiceUser) -> None:
    from runas_podman.bus.systemd_bus import connected
    from runas_podman.bus.user_bus import connect_user_manager

    async with connected(connect_user_manager(user, launch=False)) as bus:
        try:
            done = await bus.run_job("StartUnit", "podman.socket")
        except BusCallError as error:
            raise RunasError(
                f"podman.socket of {user.name} failed to start ({error.text}): "
                f"runas-podman doctor -u {user.name}"
            ) from None
    if done.result != "done":
        raise RunasError(
            f"podman.socket of {user.name} failed to start: runas-podman doctor -u {user.name}"
        )


def _answering_client(path: str) -> Any | None:
    from podman import PodmanClient

    client = PodmanClient(base_url=f"unix://{path}")
    try:
        client.ping()
    except Exception:  # podman-py's APIError, or requests' own: they vary by version
        return None
    return client


def client_for(user: ServiceUser) -> Any:
    """A podman-py client of USER's API, starting podman.socket if nothing answers.

    A stopped socket unit leaves its file behind (RemoveOnStop=no): only a ping tells.
    """
    path = socket_path(user)
    client = _answering_client(path) if os.path.exists(path) else None
    if client is None:
        asyncio.run(_start_socket(user))
        client = _answering_client(path)
    if client is None:
        raise RunasError(
            f"{user.name}'s podman API at {path} does not answer: "
            f"see runas-podman doctor -u {user.name}"
        )
    return client


F = TypeVar("F", bound=Callable[..., Any])


def podman_errors(function: F) -> F:
    """podman-py's refusals (APIError: a 409 for rm of a running container, ...) as one line."""

    @functools.wraps(function)
    def wrapper(user: ServiceUser, *args: Any, **kwargs: Any) -> Any:
        from podman.errors import APIError, PodmanError

        try:
            return function(user, *args, **kwargs)
        except (APIError, PodmanError) as error:
            reason = getattr(error, "explanation", None) or str(error)
            raise RunasError(f"{user.name}'s podman refused: {reason}") from None

    return wrapper  # type: ignore[return-value]


def _container(client: Any, user: ServiceUser, name: str) -> Any:
    from podman.errors import NotFound

    try:
        return client.containers.get(name)
    except NotFound:
        raise RunasError(
            f"{user.name} has no container '{name}' (runas-podman ps -u {user.name} -a)"
        ) from None


@podman_errors
def ps(user: ServiceUser, all_containers: bool, as_json: bool) -> str:
    client = client_for(user)
    containers = client.containers.list(all=all_containers)
    if as_json:
        return json.dumps([c.attrs for c in containers], indent=2)
    rows = []
    for c in containers:
        attrs = c.attrs
        command = " ".join(attrs.get("Command") or [])
        names = ",".join(attrs.get("Names") or [c.name])
        rows.append(
            [
                c.id[:12],
                str(attrs.get("Image", "")),
                command[:30],
                str(attrs.get("State", "")),
                names,
            ]
        )
    return render_table(["CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES"], rows)


@podman_errors
def images(user: ServiceUser, as_json: bool) -> str:
    client = client_for(user)
    found = client.images.list()
    if as_json:
        return json.dumps([i.attrs for i in found], indent=2)
    rows = []
    for image in found:
        tags = image.attrs.get("RepoTags") or ["<none>:<none>"]
        for tag in tags:
            repository, _, version = tag.rpartition(":")
            rows.append(
                [repository, version, image.id[:12], human_size(int(image.attrs.get("Size", 0)))]
            )
    return render_table(["REPOSITORY", "TAG", "IMAGE ID", "SIZE"], rows)


@podman_errors
def inspect(user: ServiceUser, names: Sequence[str], as_json: bool = True) -> str:
    client = client_for(user)
    found = [_container(client, user, name).inspect() for name in names]
    if as_json:
        return json.dumps(found, indent=2)
    rows = [
        [str(c.get("Id", ""))[:12], str(c.get("Name", "")), str(c.get("ImageName", "")),
         str((c.get("State") or {}).get("Status", ""))]
        for c in found
    ]  # fmt: skip
    return render_table(["CONTAINER ID", "NAME", "IMAGE", "STATE"], rows)


@podman_errors
def logs(user: ServiceUser, name: str, follow: bool) -> Iterator[bytes]:
    """The log stream; the container is looked up now, not on the first read."""
    client = client_for(user)
    output = _container(client, user, name).logs(stream=follow, follow=follow)
    return iter([output]) if isinstance(output, bytes) else iter(output)


@podman_errors
def stop(user: ServiceUser, names: Sequence[str], timeout: int | None) -> list[str]:
    client = client_for(user)
    containers = [_container(client, user, name) for name in names]  # all found, or none stopped
    for container in containers:
        container.stop(timeout=timeout) if timeout is not None else container.stop()
    return [c.name for c in containers]


@podman_errors
def remove(user: ServiceUser, names: Sequence[str], force: bool) -> list[str]:
    client = client_for(user)
    containers = [_container(client, user, name) for name in names]
    for container in containers:
        container.remove(force=force)
    return [c.name for c in containers]


def write_stream(chunks: Iterator[bytes]) -> None:
    for chunk in chunks:  # as they come: `logs -f` shows each line when it is written
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
