# -*- coding: utf-8 -*-
# Copyright: runas-podman contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of runas_podman.podman_users.run: `secrets` only through pipelining.

Without pipelining, Ansible writes the module with its arguments into a file in the
target's remote_tmp (~/.ansible/tmp) and runs that: a secret value would be on the
target's disk, if only for the task's duration. With pipelining the module and its
arguments travel on the connection's stdin into the interpreter's memory.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

NEEDS_PIPELINING = (
    "secrets need pipelining: without it Ansible writes the module's arguments, secret "
    "values included, into a file on the target (remote_tmp). Set ANSIBLE_PIPELINING=true, "
    "pipelining = True in ansible.cfg ([connection]), or the variable ansible_pipelining: true "
    "(and no async for this task)"
)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # not used
        wrap_async = self._task.async_val and not self._connection.has_native_async
        if self._task.args.get("secrets") and not self._is_pipelining_enabled("new", wrap_async):
            result.update(failed=True, msg=NEEDS_PIPELINING)
            return result
        result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        return result
