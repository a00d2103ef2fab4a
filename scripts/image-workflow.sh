#!/usr/bin/env bash
# Run the tiny configuration (.test/config) end to end inside the project's image: the work
# tree is copied to OUT/tree (tracked and untracked, not ignored files, with .git) and
# bind-mounted with the work folder OUT/work; every rule runs in the image, as uid 1000, with
# no network. What lands in OUT/work (results/, paper_figures/, mlflow.db) is the run's.
#   scripts/image-workflow.sh OUT [snakemake arguments...]      (CORES=2 by default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: scripts/image-workflow.sh OUT [snakemake arguments...]" >&2; exit 2; }
out=$(mkdir -p "$1" && cd "$1" && pwd); shift
engine=$("$root/scripts/image-engine.sh")
image=$("$root/scripts/image.sh" tag)
"$engine" image inspect "$image" >/dev/null 2>&1 ||
  { echo "image-workflow: image $image is not built (make image)" >&2; exit 1; }

rm -rf "$out/tree" "$out/work"
mkdir -p "$out/tree" "$out/work"
(cd "$root" && git ls-files -z -co --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -c) | tar -C "$out/tree" -x
cp -a "$root/.git" "$out/tree/.git"
cp -r "$root/.test/config" "$out/work/config"
chown -R 1000:1000 "$out/tree" "$out/work"

start=$SECONDS
"$engine" run --rm --network none --user 1000:1000 \
  --volume "$out/tree:/data/tree" --volume "$out/work:/data/work" --workdir /data/work "$image" \
  snakemake -s /data/tree/Snakefile -d /data/work --cores "${CORES:-2}" "$@"
echo "image-workflow: the tiny workflow ran in $image in $((SECONDS - start)) s"
