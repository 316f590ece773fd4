"""The console scripts `runas-podman` and `runas`.

`--version` alone is answered here, before Click or anything else is imported, with the
same line Click's version option prints; every other command line goes to the Click
layer (cli.py, runas_cli.py) unchanged.
"""

from __future__ import annotations

import os
import sys

from runas_podman import __version__

TYPE_CHECKING = False  # `typing` alone costs ~5 ms of a --version in the testbed
if TYPE_CHECKING:
    from typing import NoReturn


def _answer_version(prog: str) -> None:
    """Exit after printing the version if that is all the command line asks."""
    if sys.argv[1:] != ["--version"]:
        return
    try:
        os.write(1, f"{prog}, version {__version__}\n".encode())
    except OSError:
        return  # no stdout: the Click layer answers as it always did
    sys.exit(0)


def runas_podman() -> NoReturn:
    _answer_version("runas-podman")
    from runas_podman.cli.runas_podman import main

    main()


def runas() -> NoReturn:
    _answer_version("runas")
    from runas_podman.cli.runas import main

    main()
