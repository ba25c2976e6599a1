#!/usr/bin/env bash
# Makes a local Debian bookworm base image from Debian's archive, for building the Containerfile
# where no registry is reachable: `podman build --build-arg BASE_IMAGE=<the name printed>`.
# Trimmed as debian:bookworm-slim is (no manuals, translations or documentation but copyrights).
# Needs root, podman and debootstrap; does nothing if the image exists. Usage: container-base.sh [NAME]
set -euo pipefail
image=${1:-localhost/bookworm-slim:debootstrap}
if ! podman image exists "$image"; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  find "$root/usr/share/doc" -type f ! -name copyright -delete
  rm -rf "$root"/usr/share/{man,info,locale,lintian}/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
  tar -C "$root" -c . | podman import --quiet - "$image" >/dev/null
fi
echo "$image"
