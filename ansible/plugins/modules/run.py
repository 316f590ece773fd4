#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: runas-podman contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: run
short_description: Run a one-shot command or podman as a service user, with secrets as fds
description:
  - Runs C(runas-podman exec) (O(command)) or C(runas-podman podman) (O(podman)) on the target.
    The command runs as O(user) in a transient unit of the system manager (C(User=)) or of
    USER's own manager (O(via)), and the task waits for it and returns its exit status and
    output.
  - Secrets reach the command as file descriptors, never as a file, an argument or an
    environment variable. O(open_file) names files on the target that the manager opens
    (C(--open-file)). O(secrets) are values from the play, C(no_log) by the module's own
    argument spec (nothing else to mark); the module writes each into a pipe and
    passes the pipe's read end (C(--pass-fd)), so the value exists only in memory and in
    the pipe.
  - The command sees the fds from 3 on, O(secrets) first, then O(open_file), each in the
    order given, with C(LISTEN_FDS) and C(LISTEN_FDNAMES) set (RV(fds) lists them). For
    C(podman run), runas-podman forwards them into the container and sets
    C(LISTEN_FDNAMES) there.
  - O(secrets) need Ansible's pipelining (C(ANSIBLE_PIPELINING=true) or C(ansible_pipelining=true)).
    Without it Ansible writes every module's arguments into a temporary file on the target,
    and the action plugin of this module refuses to send secrets that way.
  - Like M(ansible.builtin.command), the task reports C(changed) whenever the command ran;
    use C(changed_when) for commands that only read.
version_added: 0.1.0
author:
  - runas-podman contributors (@runas-podman)
requirements:
  - The C(runas_podman) Python package (runas-podman, Python 3.11 or later) importable by
    the target's C(ansible_python_interpreter); the module runs it as
    C(python -m runas_podman), the same package's command line.
  - systemd 257 or later for O(secrets) through C(ExtraFileDescriptors) (runas-podman relays
    them itself on older managers, see its docs/secrets.md).
options:
  user:
    description:
      - The service user to run as, a name or a numeric uid.
    type: str
    required: true
  via:
    description:
      - C(system) runs the unit on PID 1 with C(User=); the manager opens O(open_file) as root,
        so a path must be controlled by root only (see docs/secrets.md of runas-podman).
      - C(user) runs it on USER's own manager, which opens O(open_file) with USER's rights.
    type: str
    choices: [system, user]
    default: system
  command:
    description:
      - The command and its arguments (C(runas-podman exec -u USER -- COMMAND...)).
      - Exactly one of O(command) and O(podman).
    type: list
    elements: str
  podman:
    description:
      - The arguments of podman (C(runas-podman podman -u USER -- ARGS...)), such as
        C([run, --rm, localhost/busybox, sh, -c, "cat <&3"]).
    type: list
    elements: str
  secrets:
    description:
      - Values passed as pipes, each one fd.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The fd's name in C(LISTEN_FDNAMES); printable, no C(:) or spaces.
        type: str
        required: true
      value:
        description:
          - The secret. Never logged, never written to a file.
        type: str
        required: true
  open_file:
    description:
      - Files on the target that the manager opens for the command (C(--open-file PATH:NAME:FLAGS)).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - Absolute path on the target.
        type: path
        required: true
      name:
        description:
          - The fd's name; default the file's name.
        type: str
      flags:
        description:
          - How the manager opens it.
        type: list
        elements: str
        choices: [read-only, append, truncate, graceful]
        default: []
  properties:
    description:
      - Unit properties, C(systemctl set-property) syntax (C(-p NAME=VALUE)), such as C(MemoryMax=1G).
    type: list
    elements: str
    default: []
  environment:
    description:
      - Environment variables for the command (C(--setenv NAME=VALUE)). They are part of the
        unit, visible to C(systemctl show), so not for secrets.
    type: dict
    default: {}
  chdir:
    description:
      - Working directory of the command (C(--working-directory); C(~) is USER's home).
    type: str
  unit:
    description:
      - The unit's name. Default C(runas-podman-ansible-RANDOM.service).
    type: str
  stdin:
    description:
      - Text given to the command on its standard input, as it is. Default an empty input.
    type: str
attributes:
  check_mode:
    support: partial
    description: Check mode is supported, the command is not.
    details: >-
      In check mode the command does not run and the task is skipped, like M(ansible.builtin.command);
      set C(check_mode=false) on a task whose command only reads.
  diff_mode:
    support: none
    description: A command has no before and after.
notes:
  - The task's output (RV(stdout), RV(stderr)) is censored like any task's, so a secret the
    command prints shows as C(********); better not to print it at all.
  - The fds, the rules for O(open_file) paths and the threat model are in docs/secrets.md of runas-podman.
seealso:
  - module: runas_podman.podman_users.quadlet
"""

EXAMPLES = r"""
- name: A database migration that reads the password from fd 3 (a pipe)
  runas_podman.podman_users.run:
    user: web
    podman: [run, --rm, localhost/app, /app/migrate, --password-fd, "3"]
    secrets:
      - name: db
        value: "{{ vault_db_password }}"

- name: A root-only file on the target, opened by PID 1 for the command
  runas_podman.podman_users.run:
    user: web
    command: [sh, -c, "sha256sum <&3"]
    open_file:
      - path: /etc/runas-podman/secrets/api-token
        name: token
        flags: [read-only]

- name: Through the user's own manager, with a memory limit; only reads, so never changed
  runas_podman.podman_users.run:
    user: web
    via: user
    properties: [MemoryMax=256M]
    podman: [image, exists, localhost/app]
  register: image
  changed_when: false
  failed_when: image.rc not in [0, 1]
"""

RETURN = r"""
rc:
  description: The command's exit status (C(runas-podman) passes it through; 125 and up for its own failures, see docs/cli.md).
  returned: when the command ran
  type: int
  sample: 0
stdout:
  description: The command's standard output, without its last newline (as M(ansible.builtin.command) returns it).
  returned: when the command ran
  type: str
stderr:
  description: The command's standard error, and runas-podman's one-line error if it failed to launch.
  returned: when the command ran
  type: str
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when the command ran
  type: list
  elements: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when the command ran
  type: list
  elements: str
unit:
  description: The transient unit the command ran in.
  returned: always
  type: str
  sample: runas-podman-ansible-5f2a9c1e0b7d.service
cmd:
  description: The runas-podman command line that ran (fd numbers, never secret values).
  returned: always
  type: list
  elements: str
fds:
  description: The fds the command got, in order.
  returned: always
  type: list
  elements: dict
  contains:
    fd:
      description: The fd number in the command.
      type: int
    name:
      description: Its name in C(LISTEN_FDNAMES).
      type: str
    source:
      description: C(secret) (a pipe) or C(file).
      type: str
  sample: [{fd: 3, name: db, source: secret}]
"""

import os
import sys
import threading

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runas_podman.podman_users.plugins.module_utils.runas import (
    require_package,
)


def open_file_spec(entry):
    """PATH[:NAME[:FLAGS]] as --open-file reads it (':' in PATH as \\x3a, '\\' as '\\\\')."""
    path = entry["path"].replace("\\", "\\\\").replace(":", "\\x3a")
    spec = path
    if entry.get("name") or entry.get("flags"):
        spec += ":" + (entry.get("name") or "")
    if entry.get("flags"):
        spec += ":" + ",".join(entry["flags"])
    return spec


def write_secret(fd, value):
    """Write `value` into the pipe, then close it (EOF for the reader). A reader that never
    reads more than the pipe holds ends it with EPIPE once the module closes its read end."""
    try:
        view = memoryview(value)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass
    finally:
        os.close(fd)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            user=dict(type="str", required=True),
            via=dict(type="str", choices=["system", "user"], default="system"),
            command=dict(type="list", elements="str"),
            podman=dict(type="list", elements="str"),
            # The list is not no_log: its names would be masked in every output; the values are.
            secrets=dict(type="list", elements="dict", default=[], no_log=False, options=dict(
                name=dict(type="str", required=True),
                value=dict(type="str", required=True, no_log=True),
            )),
            open_file=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                name=dict(type="str"),
                flags=dict(type="list", elements="str", default=[],
                           choices=["read-only", "append", "truncate", "graceful"]),
            )),
            properties=dict(type="list", elements="str", default=[]),
            environment=dict(type="dict", default={}),
            chdir=dict(type="str"),
            unit=dict(type="str"),
            stdin=dict(type="str"),
        ),
        mutually_exclusive=[["command", "podman"]],
        required_one_of=[["command", "podman"]],
        supports_check_mode=True,
    )
    require_package(module)
    params = module.params
    unit = params["unit"] or "runas-podman-ansible-%s.service" % os.urandom(6).hex()
    verb, argv = ("podman", params["podman"]) if params["podman"] is not None else ("exec", params["command"])
    cmd = [sys.executable, "-m", "runas_podman", verb, "-u", params["user"], "--via", params["via"],
           "--unit", unit, "--quiet", "--no-ask-password"]
    for prop in params["properties"]:
        cmd += ["-p", prop]
    for key, value in sorted(params["environment"].items()):
        cmd += ["--setenv", "%s=%s" % (key, value)]
    if params["chdir"]:
        cmd += ["--working-directory", params["chdir"]]
    fds = []
    for entry in params["open_file"]:
        cmd += ["--open-file", open_file_spec(entry)]
    pipes, writers = [], []
    try:
        for secret in params["secrets"]:
            read_end, write_end = os.pipe()
            pipes.append((read_end, write_end, secret["value"].encode("utf-8")))
            cmd += ["--pass-fd", "%d:%s" % (read_end, secret["name"])]
        # The order the command sees them in: --pass-fd first, then --open-file.
        for number, secret in enumerate(params["secrets"]):
            fds.append(dict(fd=3 + number, name=secret["name"], source="secret"))
        for entry in params["open_file"]:
            name = entry.get("name") or entry["path"].rstrip("/").rsplit("/", 1)[-1]
            fds.append(dict(fd=3 + len(fds), name=name, source="file"))
        cmd += ["--"] + list(argv)
        result = dict(changed=False, unit=unit, cmd=cmd, fds=fds)
        if module.check_mode:
            for _read_end, write_end, _value in pipes:
                os.close(write_end)  # nothing is written: the command does not run
            module.exit_json(skipped=True, msg="not run in check mode", **result)
        if not params["stdin"]:  # the command reads an empty input, not the module's
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
        for _read_end, write_end, value in pipes:
            writer = threading.Thread(target=write_secret, args=(write_end, value), daemon=True)
            writer.start()
            writers.append(writer)
        rc, stdout, stderr = module.run_command(
            cmd,
            data=params["stdin"],
            binary_data=True,
            pass_fds=[read_end for read_end, _w, _v in pipes],
        )
    finally:
        for read_end, _w, _v in pipes:
            os.close(read_end)  # a writer still blocked on a full pipe gets EPIPE now
    for writer in writers:
        writer.join(5)
    stdout, stderr = stdout.rstrip("\r\n"), stderr.rstrip("\r\n")  # as ansible.builtin.command
    result.update(
        changed=True, rc=rc, stdout=stdout, stderr=stderr,
        stdout_lines=stdout.splitlines(), stderr_lines=stderr.splitlines(),
    )
    if rc != 0:
        last = (stderr.strip().splitlines() or ["no message on stderr"])[-1]
        module.fail_json(msg="non-zero return code %d: %s" % (rc, last), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
