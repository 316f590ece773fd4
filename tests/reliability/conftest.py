"""Fixtures of the reliability suite: its figures, and alice as a wheel member."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.testbed.testbed import Testbed

FIGURES = pytest.StashKey[list[str]]()
ALICE_PASSWORD = "alice-password"


class Figures:
    """Collects `reliability: ...` lines: printed at once (-s) and again in the summary."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __call__(self, text: str) -> None:
        line = f"reliability: {text}"
        print(line, flush=True)
        self.lines.append(line)


@pytest.fixture
def figures(pytestconfig: pytest.Config) -> Figures:
    return Figures(pytestconfig.stash.setdefault(FIGURES, []))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def wheel_alice(testbed: Testbed) -> Iterator[Testbed]:
    """The broker installed, alice in group wheel with a password (as tests/integration).

    Module-scoped, so that a module's tests share one setup (tests still take `tb` for
    the check of leftover units)."""
    tb = testbed
    result = tb.run(
        [
            "sh",
            "-c",
            "runas-podman install-broker >/dev/null && groupadd -f wheel && "
            f"usermod -aG wheel alice && echo alice:{ALICE_PASSWORD} | chpasswd",
        ]
    )
    assert result.returncode == 0, result.stderr
    yield tb
    tb.run(["sh", "-c", "gpasswd -d alice wheel >/dev/null; passwd -d alice >/dev/null"])
