"""The one launch call: `run(request, stdio)`, or `await launch(request, stdio)` inside a
loop of the caller's (any number at once)."""

from __future__ import annotations

import asyncio

from runas_podman.launch.request import CallerStdio, ElevationRequest, LaunchRequest


async def launch(request: LaunchRequest, stdio: CallerStdio) -> int:
    """Run the request to its end; the status to exit with. Raises RunasError (with its
    own status) for what stops it before or instead of the command."""
    if isinstance(request, ElevationRequest):
        from runas_podman.launch.elevation import launch_elevation

        return await launch_elevation(request, stdio)
    from runas_podman.launch.service import launch_service

    return await launch_service(request, stdio)


def run(request: LaunchRequest, stdio: CallerStdio) -> int:
    """launch() in a loop of its own."""
    return asyncio.run(launch(request, stdio))
