#!/usr/bin/env bash
# A local stand-in for the image's base (python:3.11-slim-bookworm) on a machine that reaches a
# Debian mirror but no image registry. Makes two images with podman or docker:
#   localhost/bookworm-base          debootstrap --variant=minbase bookworm, imported as is
#   localhost/python-bookworm:3.11   Debian's python3 in a venv at /opt/python, first on PATH
# then `IMAGE_BASE=localhost/python-bookworm:3.11 make image` builds the project's image on it.
# Usage: scripts/image-base.sh [MIRROR]   (default: the first deb URI of this machine's apt
# sources, else http://deb.debian.org/debian). Needs root and debootstrap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=$("$here/image-engine.sh")
mirror=${1:-$(grep -hoE '^(URIs:|deb) +http[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* \
  2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
base=localhost/bookworm-base
python=localhost/python-bookworm:3.11
command -v debootstrap >/dev/null || { echo "image-base: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

if ! "$engine" image exists "$base" 2>/dev/null && [ -z "$("$engine" images -q "$base" 2>/dev/null)" ]; then
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/urbanmoe-rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "image-base: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { echo "image-base: debootstrap failed, see $rootfs.log" >&2; exit 1; }
  tar -C "$rootfs" -c . | "$engine" import - "$base"
  rm -f "$rootfs.log"
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/urbanmoe-python.XXXXXX")
cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $base
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \\
    && rm -rf /var/lib/apt/lists/* \\
    && python3 -m venv /opt/python
ENV PATH=/opt/python/bin:\$PATH LANG=C.UTF-8
CMD ["python"]
CONTAINERFILE
"$engine" build -t "$python" "$ctx"
rm -rf "$ctx"
echo "image-base: $python is ready; build on it with IMAGE_BASE=$python make image"
