#!/bin/bash
# Provisions a freshly booted testbed tree, every suite (after the suite's own
# provision.sh, if any). Runs inside it as root, once per recipe (the driver records a
# stamp); idempotent all the same.
set -euo pipefail

# Service user for podman (uid 1000, subuid/subgid range from useradd) and an
# unprivileged login user that has no rights (uid 1001), for access-denied tests.
id test >/dev/null 2>&1 || useradd --create-home --shell /bin/bash test
id alice >/dev/null 2>&1 || useradd --create-home --shell /bin/bash alice
grep -q '^test:' /etc/subuid || usermod --add-subuids 100000-165535 --add-subgids 100000-165535 test
loginctl enable-linger test

# On a hybrid cgroup layout (bookworm and trixie on these hosts: nspawn's choice), podman
# warns about cgroup v1 on every call, and Quadlet's --cgroups=split cannot work for
# rootless crun. A unified (cgroup2) container (sid) needs neither.
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    for manager in system user; do
        mkdir -p "/etc/systemd/$manager.conf.d"
        printf '[Manager]\nDefaultEnvironment=PODMAN_IGNORE_CGROUPSV1_WARNING=1\n' \
            > "/etc/systemd/$manager.conf.d/10-runas-testbed.conf"
    done
    # Quadlet runs containers with --cgroups=split, which rootless crun cannot do on the
    # hybrid (v1) layout: a drop-in for every user's .container files turns cgroups back
    # to podman's default (the last --cgroups wins). Real cgroup v2 hosts need none.
    mkdir -p /etc/containers/systemd/users/container.d
    printf '[Container]\nPodmanArgs=--cgroups=enabled\n' \
        > /etc/containers/systemd/users/container.d/10-testbed-cgroup-v1.conf
fi

# The testbed shares the host's network, so it is online from the start; but nothing
# pulls network-online.target in, and Quadlet units wait up to 90 s for it
# (podman-user-wait-network-online.service). Reach it at boot, as a networked host does.
systemctl add-wants multi-user.target network-online.target
systemctl start network-online.target  # this boot too: provisioning shares it with the tests

# nspawn creates /dev/net/tun with mode 0600: rootless pasta needs to open it.
echo 'z /dev/net/tun 0666 - - -' > /etc/tmpfiles.d/runas-testbed-tun.conf
chmod 0666 /dev/net/tun
systemctl daemon-reexec
systemctl restart user@1000.service

# Python environment for the project (installed editable from /src by the driver).
if [ ! -x /opt/runas-podman/venv/bin/python ]; then
    python3 -m venv /opt/runas-podman/venv
fi
/opt/runas-podman/venv/bin/pip install --quiet --no-index --find-links /opt/wheelhouse \
    -r /opt/wheelhouse/requirements.txt

# A local image: no registry is reachable. busybox-static plus applet links.
if ! runuser -u test -- env XDG_RUNTIME_DIR=/run/user/1000 HOME=/home/test \
        podman image exists localhost/busybox; then
    image=$(mktemp -d /var/tmp/busybox-image.XXXXXX)
    mkdir -p "$image/rootfs/bin"
    cp /bin/busybox "$image/rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$image/rootfs/bin/$applet"
    done
    tar -C "$image/rootfs" -cf "$image/busybox.tar" .
    chmod -R a+rX "$image"
    (cd /home/test && runuser -u test -- env XDG_RUNTIME_DIR=/run/user/1000 HOME=/home/test \
        podman import --quiet "$image/busybox.tar" localhost/busybox >/dev/null)
    rm -rf "$image"
fi
