# -*- coding: utf-8 -*-
# Copyright: runas-podman contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules of runas_podman.podman_users share: the import of the project's package.

The modules do nothing themselves: every step is the runas_podman package's own
(service_user.setup, doctor.run_checks, quadlet.install, the runas-podman CLI). This file
only imports it, with a message that says how to make it importable when it is not.
"""

from __future__ import annotations

import asyncio
import traceback

try:
    from runas_podman.core.errors import BusCallError, RunasError
except ImportError:
    HAS_RUNAS_PODMAN = False
    RUNAS_PODMAN_IMPORT_ERROR = traceback.format_exc()

    class RunasError(Exception):  # type: ignore[no-redef]
        """Stands in for the package's error so that `except` clauses still compile."""

        message = ""
        status = 125

    class BusCallError(Exception):  # type: ignore[no-redef]
        """Stands in for the package's D-Bus error."""

        name = ""
        text = ""

else:
    HAS_RUNAS_PODMAN = True
    RUNAS_PODMAN_IMPORT_ERROR = None

PACKAGE_HINT = (
    "The module imports the runas_podman package on the target: point ansible_python_interpreter "
    "at the Python it is installed for (e.g. /opt/runas-podman/venv/bin/python), or pip install "
    "runas-podman for the target's Python (3.11 or later)."
)


def require_package(module):
    """Fail the module with a clear message unless runas_podman imports on the target."""
    if not HAS_RUNAS_PODMAN:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(
            msg=missing_required_lib("runas-podman", reason="to manage service users", url=None)
            + " " + PACKAGE_HINT,
            exception=RUNAS_PODMAN_IMPORT_ERROR,
        )


def error_text(error):
    """The one-line message of a package error (RunasError.message, BusCallError's text)."""
    if isinstance(error, RunasError):
        return error.message
    if isinstance(error, BusCallError):
        return "%s: %s" % (error.name, error.text)
    return str(error)


def run(coroutine):
    """Run one of the package's coroutines to its end (the modules are synchronous)."""
    return asyncio.run(coroutine)
