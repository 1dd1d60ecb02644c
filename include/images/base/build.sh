#!/usr/bin/env bash
# Makes the base image every deployflow Dockerfile starts FROM.
#
# Where a registry can be reached, the official Python image is pulled and
# tagged as the base. Where none can (air-gapped sites, and the machines this
# project is developed on), a Debian root file system is made with debootstrap
# and `docker import`ed. Either way the result is tagged $BASE_IMAGE.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-deployflow/base:bookworm}
OFFICIAL_IMAGE=${OFFICIAL_IMAGE:-python:3.11-slim-bookworm}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the sample service's tests and the stack's images need, so image builds
# do not have to reach a package mirror for the common case.
PACKAGES=python3,python3-pytest,python3-pytest-cov,python3-coverage,python3-requests,ca-certificates

log() { printf '[base-image] %s\n' "$*" >&2; }

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ]; then
  log "$BASE_IMAGE already present (FORCE=1 rebuilds it)"
  exit 0
fi

start=$(date +%s)
if [ "${SKIP_PULL:-0}" != 1 ] && timeout 60 docker pull -q "$OFFICIAL_IMAGE" >/dev/null 2>&1; then
  docker tag "$OFFICIAL_IMAGE" "$BASE_IMAGE"
  log "pulled $OFFICIAL_IMAGE and tagged it $BASE_IMAGE"
  exit 0
fi

log "no registry base can be pulled: building $BASE_IMAGE from Debian $SUITE with debootstrap"
# Each way out ends with one line that says what to do (the Makefile's check of prerequisites comes first).
command -v debootstrap >/dev/null || { log "building $BASE_IMAGE needs debootstrap: apt-get install debootstrap"; exit 1; }
[ "$(id -u)" = 0 ] || { log "building $BASE_IMAGE with debootstrap needs root: run 'make images' once as root (or pull $OFFICIAL_IMAGE and tag it $BASE_IMAGE)"; exit 1; }

rootfs=$(mktemp -d /tmp/deployflow-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >/tmp/deployflow-debootstrap.log 2>&1 \
  || { tail -20 /tmp/deployflow-debootstrap.log >&2; log "debootstrap failed (full log: /tmp/deployflow-debootstrap.log)"; exit 1; }

# Slim the tree the way the official Debian images do.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*
printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$rootfs/etc/apt/sources.list"
# Containers never need to start services at install time.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d" && chmod +x "$rootfs/usr/sbin/policy-rc.d"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1' \
  --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE")
log "built $BASE_IMAGE in $(( $(date +%s) - start )) s, $(( size / 1024 / 1024 )) MiB"
