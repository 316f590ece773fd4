"""Shared fixtures: the real systemd + podman testbed for integration tests.

Every test that uses the testbed runs once per selected Debian suite:
RUNAS_PODMAN_TESTBED_SUITE names one (default trixie), several (bookworm,sid) or `all`
(`./dev test --suite ...` sets it; under CI=true ./dev selects all). The suite is part of
the test's id (`test_x[sid]`, `test_y[sid-false-1]`) and a `testbed_suite` property in
JUnit XML; pytest runs one suite's tests after the other, each suite up only while its
tests run.

Outside CI, a machine that cannot run the testbed skips integration tests with the
reason. Under CI=true that is a failure: integration tests must run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.testbed.testbed import (
    Suite,
    Testbed,
    TestbedError,
    selected_suites,
    unavailable_reason,
)

IN_CI = os.environ.get("CI") == "true"


# Directories whose tests run in the testbed: integration, reliability and fleet tests.
TESTBED_DIRECTORIES = ("tests/integration/", "tests/reliability/", "tests/fleet/")


def _suite_names() -> list[str]:
    try:
        return [suite.name for suite in selected_suites()]
    except TestbedError as error:
        raise pytest.UsageError(f"RUNAS_PODMAN_TESTBED_SUITE: {error}") from None


def pytest_report_header() -> str:
    return f"testbed suites: {', '.join(_suite_names())}"


# Session fixtures parametrized by suite: the booted testbed, and the same tree in a
# container without systemd as PID 1 (tests/testbed/native.py, the native backend).
SUITE_FIXTURES = ("testbed", "native_container")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name in SUITE_FIXTURES:
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, _suite_names(), indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(directory in item.nodeid for directory in TESTBED_DIRECTORIES):
            item.add_marker(pytest.mark.integration)
        callspec = getattr(item, "callspec", None)
        for name in SUITE_FIXTURES:
            if callspec is not None and name in callspec.params:
                item.user_properties.append(("testbed_suite", callspec.params[name]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("integration"):
        report.outcome = "failed"
        report.longrepr = f"integration test skipped under CI=true: {report.longrepr}"


def _booted(bed: Testbed, what: str) -> Iterator[Testbed]:
    """BED (a testbed or a native container of one suite) up, the project installed; down
    at the end unless it was up before or RUNAS_PODMAN_TESTBED_KEEP=1."""
    reason = unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"the {what} cannot run here, and CI needs it: {reason}")
        pytest.skip(f"{what} unavailable: {reason}")
    try:
        booted = bed.up()
        if not booted:
            bed.install_project()
    except TestbedError as error:
        pytest.fail(f"{what} ({bed.suite.name}): {error}")
    yield bed
    if booted and os.environ.get("RUNAS_PODMAN_TESTBED_KEEP") != "1":
        bed.down()


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    """The testbed of one suite (the test's parameter), booted if needed."""
    yield from _booted(Testbed(suite=Suite(request.param)), "testbed")


@pytest.fixture(scope="session")
def native_container(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    """The suite's tree started without systemd (nspawn --as-pid2), the project installed."""
    from tests.testbed.native import NativeContainer

    yield from _booted(NativeContainer(suite=Suite(request.param)), "native container")


def leftover_units(bed: Testbed) -> list[str]:
    """Our units still loaded on the system manager or on test's user manager."""
    patterns = ["runas-podman-*", "runas-*", "rp-*"]
    system = bed.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", *patterns])
    user = bed.run(
        ["systemctl", "--user", "--machine=test@", "list-units", "--all", "--plain",
         "--no-legend", *patterns]
    )  # fmt: skip
    lines = system.stdout.splitlines() + [f"test@ {line}" for line in user.stdout.splitlines()]
    # The broker's and the launch server's units are installed services, not transient ones.
    installed = ("runas-broker", "runas-podman-launch")
    return [line.strip() for line in lines
            if line.strip() and not any(name in line for name in installed)]  # fmt: skip


@pytest.fixture
def tb(testbed: Testbed) -> Iterator[Testbed]:
    """The testbed, checked after the test: no transient unit of ours is left behind."""
    yield testbed
    deadline = time.monotonic() + 5
    left = leftover_units(testbed)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = leftover_units(testbed)
    assert left == [], f"units left behind: {left}"


LAUNCH_PATHS = ("server", "in-process")


@pytest.fixture(params=LAUNCH_PATHS, ids=[f"launch-{path}" for path in LAUNCH_PATHS])
def launch_path(request: pytest.FixtureRequest, tb: Testbed) -> Iterator[str]:
    """Root's command lines through the launch server (the default once it is installed),
    or in-process (RUNAS_PODMAN_SERVER=0): a module using it runs every test both ways."""
    if request.param == "in-process":
        tb.launch_env = {"RUNAS_PODMAN_SERVER": "0"}
    else:
        active = tb.run(["systemctl", "is-active", "runas-podman-launch.socket"]).stdout
        assert active.strip() == "active", "the testbed's launch server is not installed"
    try:
        yield str(request.param)
    finally:
        tb.launch_env = {}
