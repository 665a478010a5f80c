#!/usr/bin/env bash
# The debootstrap base image (Debian bookworm with Python 3.11) that stands in for
# python:3.11-slim-bookworm, which cannot be pulled here. Reused when the machine still has it.
# Used by .ci/image.sh (the operator image) and tests/cluster/images.sh (the e2e test images).
# Expects CONTAINERS_CONF & co. set as .ci/image.sh sets them.
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:3.11}

# The first Debian mirror the machine's apt uses (one-line or deb822 sources).
debian_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    local found
    found=$(cat "${files[@]}" 2>/dev/null | awk '
        /^deb[ \t]/ && / bookworm[ \t]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }
        /^URIs:/ { uri = $2 }
        /^Suites:/ && / bookworm( |$)/ && uri != "" { print uri; exit }
    ')
    echo "${found:-http://deb.debian.org/debian}"
}

if podman image exists "$BASE_IMAGE"; then
    echo "reusing $BASE_IMAGE from an earlier run"
else
    mirror=$(debian_mirror)
    echo "debootstrap bookworm from $mirror"
    rootfs=$(mktemp -d)
    # debootstrap mounts /proc and /sys in the rootfs while it works: never rm -rf through them.
    cleanup() {
        for mount in "$rootfs/dev/pts" "$rootfs/proc" "$rootfs/sys"; do
            if mountpoint -q "$mount"; then umount -l "$mount"; fi
        done
        rm -rf --one-file-system "$rootfs" "$rootfs.log"
    }
    trap cleanup EXIT
    # --include resolves dependencies itself: no chroot, no /proc, no apt inside the rootfs.
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -30 "$rootfs.log"; exit 1; }
    # What python:3.11-slim offers that the Dockerfile relies on: `python` on PATH.
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    # What the slim images leave out too: apt's caches, documentation, manuals, translations.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -c . | podman import \
        --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
    cleanup
    trap - EXIT
fi
