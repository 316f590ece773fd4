#!/bin/bash
# Compile selinux/runas_podman.te and package it with runas_podman.fc (file contexts)
# into runas_podman.pp; installs nothing.
#   selinux/build.sh [--install-deps] [OUTDIR]
# OUTDIR receives runas_podman.mod and runas_podman.pp (created if missing). Without it,
# the build goes to a temporary directory that is removed afterwards (a syntax check).
# --install-deps: apt-get install checkpolicy/semodule-utils if the tools are missing.
# Load the result with: semodule -i OUTDIR/runas_podman.pp
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ ${1-} == --install-deps ]]; then
    shift
    if ! command -v checkmodule >/dev/null || ! command -v semodule_package >/dev/null; then
        apt-get install -y --no-install-recommends checkpolicy semodule-utils
    fi
fi

for tool in checkmodule semodule_package; do
    command -v "$tool" >/dev/null || {
        echo "build.sh: $tool not found (Debian: apt-get install checkpolicy semodule-utils;" \
            "Fedora: dnf install checkpolicy policycoreutils; or pass --install-deps)" >&2
        exit 127
    }
done

keep=0
if [[ $# -gt 0 ]]; then
    out=$1 keep=1
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

checkmodule -M -m -o "$out/runas_podman.mod" "$here/runas_podman.te"
semodule_package -o "$out/runas_podman.pp" -m "$out/runas_podman.mod" -f "$here/runas_podman.fc"
if ((keep)); then
    echo "built $out/runas_podman.pp"
else
    echo "runas_podman.te compiles and packages with runas_podman.fc (temporary output removed; give OUTDIR to keep it)"
fi
