"""The one launch call (runas_podman.launch): two launches in one process, one after the
other and at once in one event loop, each with its own stdio, through the real systemd."""

from __future__ import annotations

from tests.testbed.testbed import Testbed

PYTHON = "/opt/runas-podman/venv/bin/python"

# Each command waits for the other's mark: run one after the other, the first would
# wait for ever (its `timeout` ends it with 124 instead), so 0 and 0 prove both ran at once.
AT_ONCE = """\
import asyncio, os, sys
from runas_podman.core.model import Via
from runas_podman.launch.launch import launch, run
from runas_podman.launch.request import (Backend, CallerStdio, ServiceOptions,
                                          ServiceRequest, caller_of)

caller = caller_of(os.getpid(), 0, 0, {}, "/", False)
null = os.open(os.devnull, os.O_RDONLY)

def request(me, other, slice_inherit=False):
    script = (f"echo {me} > /run/launch-test/{me}; "
              f"timeout 20 sh -c 'until [ -e /run/launch-test/{other} ]; do sleep 0.05; done' "
              f"&& echo {me}-saw-{other}; echo $INVOCATION_ID >&2")
    options = ServiceOptions(user="test", via=Via.SYSTEM, backend=Backend.DBUS, quiet=True)
    return ServiceRequest(("sh", "-c", script), options, caller)

async def both():
    pipes = [os.pipe() for _ in range(4)]
    stdios = [CallerStdio((null, pipes[0][1], pipes[1][1])),
              CallerStdio((null, pipes[2][1], pipes[3][1]))]
    statuses = await asyncio.gather(launch(request("a", "b"), stdios[0]),
                                    launch(request("b", "a"), stdios[1]))
    for _, write in pipes:
        os.close(write)
    texts = [os.read(read, 4096).decode().strip() for read, _ in pipes]
    print(statuses, texts[0], texts[2], texts[1] != texts[3] and len(texts[1]) == 32,
          flush=True)

os.makedirs("/run/launch-test", exist_ok=True)
os.chmod("/run/launch-test", 0o1777)
asyncio.run(both())
for name in ("a", "b"):
    os.unlink(f"/run/launch-test/{name}")
# One after the other in the same process: the second sees the first's mark left behind.
first = run(request("a", "a"), CallerStdio((null, 1, 2)))
second = run(request("b", "a"), CallerStdio((null, 1, 2)))
print("sequential", first, second)
"""


def test_two_launches_in_one_loop_and_one_after_the_other(tb: Testbed) -> None:
    result = tb.run([PYTHON, "-c", AT_ONCE], timeout=120)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[0] == "[0, 0] a-saw-b b-saw-a True", result.stdout + result.stderr
    # The sequential runs print their own stdout (fd 1) before the summary line.
    assert lines[1:] == ["a-saw-a", "b-saw-a", "sequential 0 0"], result.stdout
    assert tb.run(["bash", "-c", "rm -rf /run/launch-test"]).returncode == 0
