#!/usr/bin/env bash
# Install the Debian packages that tests/servers/ceph_rgw.py needs for a single-node
# Ceph RADOS Gateway (radosgw + one mon + one memstore OSD), and strace, which
# tests/e2e/test_shared_folder_race.py runs fsync under to hold a rename open. Idempotent:
# when every binary is already on PATH it returns at once without touching apt.
#
# Usage: bash tests/servers/install-ceph.sh   (as root, or with sudo available)
set -euo pipefail

packages=(radosgw ceph-mon ceph-osd ceph-common strace)
binaries=(radosgw radosgw-admin ceph-mon ceph-osd ceph ceph-authtool monmaptool strace)

missing=0
for bin in "${binaries[@]}"; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        missing=1
        break
    fi
done
if [[ $missing -eq 0 ]]; then
    echo "install-ceph: already installed ($(radosgw --version 2>/dev/null | head -n1))"
    exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
    sudo_cmd=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
# An apt that has never been updated knows no packages: update once, then install.
if ! "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${packages[@]}"; then
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
fi
echo "install-ceph: installed ($(radosgw --version | head -n1))"
