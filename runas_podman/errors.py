"""Errors the tool reports as one line on stderr, each with a documented exit status.

The statuses follow podman's convention (docs/cli.md): 125 for a failure of the
launcher itself, 126 for a command that cannot be executed, 127 for one that is
not found, 2 for bad usage. The command's own status is passed through otherwise.
"""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_LAUNCHER = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


class RunasError(Exception):
    """A failure the user can act on: `message` names what is wrong and what to do."""

    def __init__(self, message: str, status: int = EXIT_LAUNCHER) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UsageError(RunasError):
    """Bad input detected before anything was started."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class BusCallError(Exception):
    """An error reply from a D-Bus call: its error name and message."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text
