#!/usr/bin/env bash
# Resume the workflow after Snakemake was killed (kill -9, a lost terminal, a node going down):
#   scripts/resume.sh [-d WORKDIR] [snakemake arguments...]       (make resume CORES=N)
# 1. refuses if a Snakemake is still running in WORKDIR (it would be unlocked under its feet);
# 2. stops the jobs the killed Snakemake left running in WORKDIR (urbanmoe and papermill
#    processes whose working directory is WORKDIR, and where SLURM answers, the user's queued or
#    running jobs whose working directory is WORKDIR), so that none writes an output after the
#    rerun has made it again;
# 3. removes the stale lock (snakemake --unlock) and reruns with --rerun-incomplete, which
#    remakes the outputs of the jobs that were cut short and everything after them.
# Outputs are written atomically (a temporary beside the target, then a rename), so a cut-short
# job leaves no half-written result: at worst a hidden .tmp-* folder, which the rerun replaces.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$PWD
if [ "${1:-}" = "-d" ]; then work=$2; shift 2; fi
[ -d "$work" ] || { echo "resume: $work: no such folder" >&2; exit 1; }
work=$(cd "$work" && pwd -P)
snakemake=$(command -v snakemake || echo "$root/.venv/bin/snakemake")
snakefile=$root/Snakefile

cwd_is_work() { [ "$(readlink "/proc/$1/cwd" 2>/dev/null)" = "$work" ]; }
cmdline() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null; }

# 1. a live Snakemake in WORKDIR
for p in $(pgrep -f 'snakemake' || true); do
  [ "$p" = "$$" ] && continue
  cwd_is_work "$p" || continue
  case " $(cmdline "$p")" in
    *"/snakemake "*|*" snakemake "*)  # bin/snakemake, or python -m snakemake
      echo "resume: Snakemake (pid $p) is still running in $work; stop it first or let it finish" >&2
      exit 1 ;;
  esac
done

# 2. the jobs it left behind: its SLURM jobs (the submitting user's, working in WORKDIR) ...
if command -v squeue >/dev/null && squeue -h >/dev/null 2>&1; then
  mapfile -t jobs < <(squeue -h -u "$(id -un)" -o '%i %Z' | awk -v w="$work" '$2 == w {print $1}')
  if [ ${#jobs[@]} -gt 0 ]; then
    echo "resume: cancelling the SLURM jobs left by the killed run: ${jobs[*]}"
    scancel "${jobs[@]}"
  fi
fi
# ... and its local job processes
left=()
for p in $(pgrep -f 'urbanmoe|papermill' || true); do
  [ "$p" = "$$" ] && continue
  cwd_is_work "$p" && left+=("$p")
done
if [ ${#left[@]} -gt 0 ]; then
  echo "resume: stopping ${#left[@]} job process(es) left by the killed run: ${left[*]}"
  kill -TERM "${left[@]}" 2>/dev/null || true
  for _ in $(seq 20); do
    alive=0; for p in "${left[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.5
  done
  kill -KILL "${left[@]}" 2>/dev/null || true
fi

# 3. unlock, then rerun what was cut short and what follows it
"$snakemake" -s "$snakefile" -d "$work" --unlock >/dev/null
exec "$snakemake" -s "$snakefile" -d "$work" --rerun-incomplete "$@"
