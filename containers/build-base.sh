#!/usr/bin/env bash
# Build the offline base image, tao-base:bookworm: Debian bookworm (minbase) with Python 3.11,
# made with debootstrap from a Debian mirror and `docker import`ed, for machines that reach a
# Debian mirror and PyPI but no image registry. Python 3.11 matches the wheelhouse (cp311).
# Skipped when the image exists already (FORCE=1 rebuilds it). Needs root and debootstrap.
#
# Environment: TAO_BASE_IMAGE (the tag), TAO_DEBIAN_MIRROR, FORCE.
set -euo pipefail
source "$(dirname "$0")/common.sh"

base_image=${TAO_BASE_IMAGE:-tao-base:bookworm}
mirror=${TAO_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${FORCE:-0}" != 1 ] && "$DOCKER" image inspect "$base_image" >/dev/null 2>&1; then
    log "$base_image exists (FORCE=1 rebuilds it)"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"

start=$(now)
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/tao-rootfs.XXXXXX")
# --one-file-system: should debootstrap fail with /proc or /sys still mounted in the tree,
# those are left alone.
trap 'rm -rf --one-file-system "$rootfs"' EXIT
log "debootstrap bookworm into $rootfs from $mirror (about 2 minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "$mirror" >&2

# Slim: package caches and lists (run apt-get update before an apt-get install in a derived
# image), documentation, locales, logs and bytecode caches.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/info/* \
       "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* \
       "$rootfs"/var/cache/debconf/*-old
find "$rootfs"/usr/lib/python3* -name __pycache__ -type d -prune -exec rm -rf {} +
# Docker bind-mounts its own resolv.conf and hostname at run time.
: >"$rootfs/etc/resolv.conf"
echo tao >"$rootfs/etc/hostname"

log "importing $(du -sh "$rootfs" | cut -f1) as $base_image"
# `docker import` sets no environment: PATH and LANG are given here.
tar --numeric-owner -C "$rootfs" -cf - . | "$DOCKER" import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' \
    -m "debootstrap --variant=minbase bookworm + python3 python3-venv python3-pip ca-certificates" \
    - "$base_image" >&2
"$DOCKER" run --rm "$base_image" python3 -c 'import sys, venv; print("Python", sys.version.split()[0])' >&2
log "built $base_image: $(("$("$DOCKER" image inspect -f '{{.Size}}' "$base_image")" / 1000000)) MB, in $(elapsed "$start") s"
