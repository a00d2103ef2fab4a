#!/usr/bin/env bash
# The GPU check, in one go (about 10 minutes on one data-centre GPU), on a machine with CUDA:
#   1. the expert layer stacked (one batched GEMM) vs a Python loop over experts, on the GPU
#      (benchmarks/bench_experts.py --device cuda; the target is stacked >= 5x loop);
#   2. one UrbanMoE training run on synthetic SH at the paper's settings, timed
#      (benchmarks/bench_train.py --set train.device=cuda);
#   3. the tiny workflow (.test/config) with the gpu profile's resources (workflow.gpus=1, at
#      most one training job per GPU), run in the current environment rather than apptainer.
# Every figure is printed with the device's name; the whole log also goes to OUT/gpu_check.log.
#   benchmarks/gpu_check.sh [OUT]        (OUT defaults to .cache/gpu_check; PYTHON=... to choose)
# Refuses in one line where CUDA is absent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.cache/gpu_check}
py=${PYTHON:-}
if [ -z "$py" ]; then
  if [ -x "$root/.venv/bin/python" ]; then py=$root/.venv/bin/python; else py=$(command -v python3); fi
fi
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: no CUDA device ($py: torch.cuda.is_available() is False or torch is missing)" >&2
  exit 1
fi
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
bin=$(dirname "$py")
export PATH="$bin:$PATH" PYTHONUNBUFFERED=1
device=$("$py" -c 'import torch; print(torch.cuda.get_device_name(0))')
echo "gpu_check: $device, torch $("$py" -c 'import torch; print(torch.__version__)'), $(date -u +%FT%TZ)"

step() {  # step NAME COMMAND...: run, time, and say so with the device's name
  local name=$1 start=$SECONDS; shift
  echo; echo "== [$device] $name"
  if "$@"; then echo "== [$device] $name: done in $((SECONDS - start)) s"
  else echo "== [$device] $name: FAILED (exit $?) after $((SECONDS - start)) s"; fail=1; fi
}
fail=0
step "expert layer, stacked vs loop" \
  "$py" "$root/benchmarks/bench_experts.py" --device cuda --epochs 20 --layer-iters 200
step "UrbanMoE on synthetic SH, paper settings" \
  "$py" "$root/benchmarks/bench_train.py" --seeds 0 --set train.device=cuda
rm -rf "$out/tiny"; mkdir -p "$out/tiny"; cp -r "$root/.test/config" "$out/tiny/config"
step "tiny workflow, gpu resources" \
  "$bin/snakemake" -s "$root/Snakefile" -d "$out/tiny" --cores "$(nproc)" \
  --resources gpu=1 --config "workflow={gpus: 1}"
grep -h '"device"' "$out"/tiny/results/runs/DC/*/urbanmoe/seed0/metrics.json 2>/dev/null | head -n 2
exit "$fail"
