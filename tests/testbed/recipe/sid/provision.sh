#!/bin/bash
# sid's own provisioning, run before ../common/provision.sh (see docs/testbed.md, "sid").
set -euo pipefail

# sid's systemd ships its PAM files in /usr/lib/pam.d, which Debian's libpam does not read
# (yet): "PAM (systemd-user) /usr/lib/pam.d is not supported on this system". Without
# /etc/pam.d/systemd-user, user@UID.service gets the `other` stack, no pam_systemd session,
# and its start times out. Copy what /etc/pam.d lacks (measured 2026-12-01).
for file in /usr/lib/pam.d/*; do
    if [ -e "$file" ] && [ ! -e "/etc/pam.d/${file##*/}" ]; then
        cp "$file" /etc/pam.d/
    fi
done

# The host's systemd-nspawn (252) gives the container its own boot ID by bind-mounting a
# file it has already deleted over /proc/sys/kernel/random/boot_id. systemd >= 258 gives
# sandboxed services (logind among them) a fresh /proc and copies nspawn's submounts into
# it, which fails for a deleted file: logind then sees the kernel's boot ID, and refuses
# pam_systemd's CreateSession ("JSON field 'PID' refers to non-local PID", the caller's
# org.varlink.service.InvalidParameter), so user@UID.service fails ("$XDG_RUNTIME_DIR is
# not set"). systemd#40135; newer nspawn keeps the file (systemd PR 41333). Back the same boot ID
# by a file that exists, early at every boot, before logind starts. (Not named runas-*:
# the tests take such units for leftovers of their own.)
cat > /etc/systemd/system/nspawn-boot-id.service <<'UNIT'
[Unit]
Description=Back nspawn's boot ID by a file that services' own /proc can show (systemd#40135)
DefaultDependencies=no
ConditionVirtualization=container
Before=sysinit.target systemd-logind.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -euc 'target=/proc/sys/kernel/random/boot_id; file=/run/proc-sys-kernel-random-boot-id; \
    grep -q "//deleted $target " /proc/self/mountinfo || exit 0; \
    cat $target > $file; chmod 0444 $file; \
    while grep -q " $target " /proc/self/mountinfo; do umount $target; done; \
    mount --bind -o ro $file $target'

[Install]
WantedBy=sysinit.target
UNIT
systemctl daemon-reload
systemctl enable --now nspawn-boot-id.service
systemctl restart systemd-logind.service  # this boot's logind still has the kernel's boot ID

# The container's cgroup2 tree has no controllers: the host binds them all to cgroup v1.
# Rootless podman on cgroup2 with the systemd manager asks for a pids limit (2048) by
# default, and crun then fails: "controller `pids` is not available". No default limit.
mkdir -p /etc/containers/containers.conf.d
printf '[containers]\npids_limit = 0\n' > /etc/containers/containers.conf.d/10-runas-testbed.conf
