#!/usr/bin/env bash
# Build the project's image with docker or podman (scripts/image-engine.sh chooses), tagged as
# config/config.yaml's workflow.container names it; or turn it into an apptainer .sif.
#   scripts/image.sh build     (make image)       IMAGE_BASE=... overrides the Dockerfile's base;
#                                                  IMAGE_HOST_PIP=1 lends the build this machine's
#                                                  pip set-up (podman only; see below)
#   scripts/image.sh sif [OUT] (make image-sif)   OUT defaults to urbanmoe.sif; needs apptainer
#   scripts/image.sh tag                          print the tag
# IMAGE_HOST_PIP=1 is for machines where pip reaches its packages only through local settings:
# the host's pip configuration (index URLs, find-links, constraints, certificate bundle) is
# copied into /etc/pip.conf of each build step, and the local folders it names are mounted
# read-only at the same paths. Nothing of it stays in the image.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here="$root/scripts"

tag() {
  local ref
  ref=$(sed -nE 's/^ *container: *"?([^" #]+)"?.*/\1/p' "$root/config/config.yaml" | head -n 1)
  [ -n "$ref" ] || { echo "image: config/config.yaml: workflow.container is not set" >&2; exit 1; }
  case "$ref" in
    docker://*) echo "${ref#docker://}" ;;
    docker-daemon://*) echo "${ref#docker-daemon://}" ;;
    *) echo "urbanmoe/urbanmoe:$(sed -nE 's/^version = "(.*)"/\1/p' "$root/pyproject.toml")" ;;
  esac
}

host_pip_flags() {  # prints build flags, one per line; writes a pip.conf under $1
  local dir=$1 py key value path
  py=$(command -v python3.11 || command -v python3)
  {
    echo "[global]"
    "$py" -m pip config list 2>/dev/null | sed -nE "s/^global\.([a-z-]+)='(.*)'$/\1 \2/p" |
      while read -r key value; do
        case "$key" in
          cert) cp "$value" "$dir/ca.crt"; echo "cert = /opt/host-pip/ca.crt" ;;
          constraint) cp "$value" "$dir/constraints.txt"; echo "constraint = /opt/host-pip/constraints.txt" ;;
          *) echo "$key = $value" ;;
        esac
      done
  } > "$dir/pip.conf"
  echo "--volume=$dir:/opt/host-pip:ro"
  echo "--volume=$dir/pip.conf:/etc/pip.conf:ro"
  # local folders named by find-links and file:// index URLs, mounted at the same paths
  grep -oE '(file://)?/[^ ]+' "$dir/pip.conf" | grep -v '^/opt/host-pip' | sed 's#^file://##' |
    while read -r path; do
      [ "$(basename "$path")" = simple ] && path=$(dirname "$path")
      [ -e "$path" ] && echo "--volume=$path:$path:ro"
    done | sort -u
}

build() {
  local engine image flags=()
  engine=$("$here/image-engine.sh")
  image=$(tag)
  [ -n "${IMAGE_BASE:-}" ] && flags+=("--build-arg" "BASE_IMAGE=$IMAGE_BASE")
  if [ "${IMAGE_HOST_PIP:-0}" = 1 ]; then
    [ "$engine" = podman ] || { echo "image: IMAGE_HOST_PIP=1 needs podman (build-time mounts); $engine has none" >&2; exit 1; }
    pipdir=$(mktemp -d "${TMPDIR:-/tmp}/urbanmoe-hostpip.XXXXXX")
    trap 'rm -rf "$pipdir"' EXIT
    mapfile -t -O "${#flags[@]}" flags < <(host_pip_flags "$pipdir")
  fi
  echo "image: $engine build -t $image ${flags[*]} $root"
  local start=$SECONDS
  if ! "$engine" build -t "$image" "${flags[@]}" "$root"; then
    [ -z "${IMAGE_BASE:-}" ] && echo "image: the build failed; where the base image cannot be" \
      "pulled (no registry), make image-base, then IMAGE_BASE=localhost/python-bookworm:3.11" \
      "make image" >&2
    exit 1
  fi
  echo "image: built $image in $((SECONDS - start)) s"
  "$engine" image inspect "$image" --format '{{.Size}}' |
    awk -v i="$image" '{printf "image: %s is %.2f GB\n", i, $1 / 1e9}'
}

sif() {
  local out=${1:-urbanmoe.sif} engine image archive
  command -v apptainer >/dev/null || command -v singularity >/dev/null ||
    { echo "image: apptainer (or singularity) is not installed: cannot write $out" >&2; exit 1; }
  engine=$("$here/image-engine.sh")
  image=$(tag)
  archive=$(mktemp "${TMPDIR:-/tmp}/urbanmoe-image.XXXXXX.tar")
  trap 'rm -f "$archive"' EXIT
  "$engine" save -o "$archive" "$image"
  "$(command -v apptainer || command -v singularity)" build --force "$out.tmp" "docker-archive://$archive"
  mv "$out.tmp" "$out"
  echo "image: wrote $out; set workflow.container: $out (a local path) to run the workflow in it"
}

case "${1:-build}" in
  build) build ;;
  sif) sif "${2:-}" ;;
  tag) tag ;;
  *) echo "usage: scripts/image.sh [build|sif [OUT]|tag]" >&2; exit 2 ;;
esac
