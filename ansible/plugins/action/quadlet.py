# -*- coding: utf-8 -*-
# Copyright: runas-podman contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of runas_podman.podman_users.quadlet: `src` is a file on the
controller; its text goes to the module as `content` (the module validates and installs)."""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # not used
        args = dict(self._task.args)
        src = args.pop("src", None)
        if src is not None:
            if args.get("content") is not None:
                result.update(failed=True, msg="parameters are mutually exclusive: content|src")
                return result
            try:
                path = self._find_needle("files", src)
                with open(path, "rb") as source:
                    args["content"] = to_text(source.read(), errors="surrogate_or_strict")
            except (AnsibleError, OSError, UnicodeError) as error:
                result.update(failed=True, msg="src %s: %s" % (src, to_text(error)))
                return result
            if not args.get("name"):
                args["name"] = os.path.basename(src)
        result.update(self._execute_module(module_args=args, task_vars=task_vars))
        return result
