#!/usr/bin/env bash
# Make rootful podman work inside a restricted sandbox (a container without cgroup v2
# delegation or the right to raise ulimits): runc instead of crun, cgroupfs, file events and
# ulimits that fit under the sandbox's own. Writes /etc/containers/containers.conf (root).
# Only needed where `podman run --rm IMAGE true` fails with "setrlimit RLIMIT_NOFILE" or
# "cgroups in hybrid mode not supported"; a normal machine needs none of it.
set -euo pipefail
conf=/etc/containers/containers.conf
if [ -f "$conf" ] && grep -q '^runtime = "runc"' "$conf"; then
  echo "podman-sandbox: $conf already set"
  exit 0
fi
command -v runc >/dev/null || { echo "podman-sandbox: runc is not installed (apt-get install runc)" >&2; exit 1; }
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] && nproc=32768
nofile=$(( nofile < 20000 ? nofile : 20000 )); nproc=$(( nproc < 32768 ? nproc : 32768 ))
mkdir -p /etc/containers
tmp=$(mktemp "$conf.XXXXXX")
cat > "$tmp" <<CONF
# Written by scripts/podman-sandbox.sh: rootful podman inside a restricted sandbox.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
[ -f "$conf" ] && cp "$conf" "$conf.before-urbanmoe"
mv "$tmp" "$conf"
echo "podman-sandbox: wrote $conf (nofile=$nofile, nproc=$nproc)"
