"""Benchmark: stacked (batched-matmul) experts vs a Python loop over experts (Eq. 2), at SH size.

Setting (paper, Section 3.3 / Table 2): 1,558 regions, 60 % = 935 for training, d_e = 512
random features per branch (image, text), d_p = 15, d_r = 6 (lookup), N_sp = 8, N_dt = 2,
N_sh = 4 (34 experts per branch), eps = 0.01, three random targets, batch size 64, AdamW with
lr 3e-4, MSE loss (Eq. 8, λ = 1).

Prints, for the same UrbanMoE model built with ``expert_impl="stacked"`` and ``"loop"``: time
per training epoch and per full run of ``--epochs`` epochs, peak memory (each variant runs in
its own spawned process, so the process peak RSS from ``resource.getrusage`` is its own; on
CUDA ``torch.cuda.max_memory_allocated``), then the expert layer alone (forward + backward)
stacked vs loop.  Asserts nothing.

    python benchmarks/bench_experts.py [--epochs 100] [--device cpu|cuda] [--threads N]

"RSS setup" is the process peak RSS after importing torch and building data + model, before
training; "peak RSS" is the peak at the end.  On a machine shared with other jobs, pass
``--threads 1``: oversubscribed OpenMP threads make timings (the loop's most) erratic.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

import torch

from urbanmoe.models import (
    PAPER_LAYOUT,
    LookupRegionEmbedding,
    LoopExperts,
    StackedExperts,
    UrbanMoE,
    count_parameters,
)

N_REGIONS, N_TRAIN, D_E, D_P, D_R, BATCH, LR = 1558, 935, 512, 15, 6, 64, 3e-4
TASKS = ["carbon", "population", "light"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def train_variant(impl: str, epochs: int, device_name: str, threads: int | None) -> dict[str, Any]:
    """Train the SH-size model with one expert implementation; return timings and memory."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    torch.manual_seed(0)
    x = {
        "image": torch.randn(N_TRAIN, D_E, device=device),
        "text": torch.randn(N_TRAIN, D_E, device=device),
        "poi": torch.randn(N_TRAIN, D_P, device=device),
        "region_index": torch.randperm(N_REGIONS, device=device)[:N_TRAIN],
    }
    y = torch.randn(N_TRAIN, len(TASKS), device=device)
    model = UrbanMoE(
        {"image": D_E, "text": D_E},
        D_P,
        TASKS,
        PAPER_LAYOUT,
        d_r=D_R,
        region=LookupRegionEmbedding(N_REGIONS, D_R),
        expert_impl=impl,
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _peak_rss_mb()

    def epoch() -> float:
        _sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(N_TRAIN, device=device)
        for start in range(0, N_TRAIN, BATCH):
            idx = perm[start : start + BATCH]
            out = model({k: v[idx] for k, v in x.items()})
            loss = torch.nn.functional.mse_loss(out.pred, y[idx], reduction="sum") / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        return time.perf_counter() - t0

    warmup = epoch()  # not counted in the run below
    t0 = time.perf_counter()
    times = [epoch() for _ in range(epochs)]
    total = time.perf_counter() - t0
    result = {
        "impl": impl,
        "params": count_parameters(model),
        "warmup_s": warmup,
        "epoch_median_s": statistics.median(times),
        "epoch_mean_s": statistics.fmean(times),
        "total_s": total,
        "rss_before_train_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _child(queue: Any, *args: Any) -> None:
    queue.put(train_variant(*args))


def run_isolated(impl: str, epochs: int, device: str, threads: int | None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, impl, epochs, device, threads))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def time_layer(layer: torch.nn.Module, z: torch.Tensor, iters: int) -> float:
    """Median seconds of one forward + backward of the expert layer on z."""
    device = z.device
    times = []
    for i in range(iters + 5):
        layer.zero_grad(set_to_none=True)
        _sync(device)
        t0 = time.perf_counter()
        layer(z).square().mean().backward()
        _sync(device)
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def layer_flops(batch: int, n_experts: int, d_in: int, d_hidden: int, d_out: int) -> int:
    """Matmul FLOPs of one forward + backward of the expert layer, input without gradient.

    Forward 2·B·E·(d_in·h + h·o); backward: dW2 and dH (2·B·E·h·o each) and dW1 (2·B·E·d_in·h).
    Both implementations do exactly this work; elementwise ops are left out.
    """
    return 2 * batch * n_experts * (2 * d_in * d_hidden + 3 * d_hidden * d_out)


def gemm_rate(device: torch.device, n: int = 2048, iters: int = 10) -> float:
    """The machine's dense matmul rate (FLOP/s): median of ``iters`` n x n x n products.

    The ceiling any expert layer can reach here: if the loop already runs at a fraction f of
    it, no implementation of the same FLOPs can be more than 1/f times faster than the loop.
    """
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for i in range(iters + 2):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="epochs per training run")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0, ...")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--layer-iters", type=int, default=100, help="timed layer fwd+bwd passes")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, BATCH, 256, N_TRAIN],
                        help="batch sizes for the expert layer alone")
    parser.add_argument("--layer-only", action="store_true",
                        help="skip the full-model training runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print("== machine")
    print(
        f"python {platform.python_version()}  torch {torch.__version__}  "
        f"platform {platform.platform()}"
    )
    print(
        f"cpu count {os.cpu_count()}  torch threads {torch.get_num_threads()}  "
        f"device {args.device}"
        + (f" ({torch.cuda.get_device_name(args.device)})" if "cuda" in args.device else "")
    )
    print(
        f"== setting: SH size, {N_TRAIN}/{N_REGIONS} training regions, batch {BATCH}, "
        f"AdamW lr {LR}, layout {PAPER_LAYOUT.as_tuple()} -> {PAPER_LAYOUT.n_experts} experts "
        f"per branch, {args.epochs} epochs"
    )

    if not args.layer_only:
        train_both(args)
    layer_alone(args)


def train_both(args: argparse.Namespace) -> None:
    """The full SH-size model trained with each expert implementation, in its own process."""
    results = {
        impl: run_isolated(impl, args.epochs, args.device, args.threads)
        for impl in ("stacked", "loop")
    }
    print("\n== full model training (each variant in its own process)")
    head = f"{'impl':<8}{'params':>11}{'epoch med (s)':>15}{'epoch mean (s)':>16}"
    head += f"{'run total (s)':>15}{'RSS setup (MB)':>16}{'peak RSS (MB)':>15}"
    if "cuda" in args.device:
        head += f"{'CUDA peak (MB)':>16}"
    print(head)
    for r in results.values():
        line = (
            f"{r['impl']:<8}{r['params']:>11,}{r['epoch_median_s']:>15.4f}"
            f"{r['epoch_mean_s']:>16.4f}{r['total_s']:>15.2f}"
            f"{r['rss_before_train_mb']:>16.1f}{r['peak_rss_mb']:>15.1f}"
        )
        if "cuda_peak_mb" in r:
            line += f"{r['cuda_peak_mb']:>16.1f}"
        print(line)
    s, lp = results["stacked"], results["loop"]
    epoch_ratio = lp["epoch_median_s"] / s["epoch_median_s"]
    print(
        f"speed-up stacked vs loop, training epoch: x{epoch_ratio:.2f}"
        f"   full {args.epochs}-epoch run: x{lp['total_s'] / s['total_s']:.2f}"
    )


def layer_alone(args: argparse.Namespace) -> None:
    """The expert layer alone, stacked vs loop, beside the machine's dense matmul ceiling."""
    print("\n== expert layer alone: 34 experts, d_in 533 -> 128 -> 96, forward + backward")
    device = torch.device(args.device)
    torch.manual_seed(0)
    d_in = D_E + D_R + D_P
    stacked = StackedExperts(PAPER_LAYOUT.n_experts, d_in).to(device)
    loop = LoopExperts.from_stacked(stacked)
    peak = gemm_rate(device)
    print(f"dense matmul rate here (2048^3, median): {peak / 1e9:.1f} GFLOP/s")
    print(
        f"{'batch':>6}{'stacked (ms)':>14}{'loop (ms)':>12}{'loop/stacked':>14}"
        f"{'stacked GFLOP/s':>17}{'loop GFLOP/s':>14}{'ceiling':>9}{'max |diff|':>12}"
    )
    for batch in args.batches:
        z = torch.randn(batch, d_in, device=device)
        with torch.no_grad():
            diff = (stacked(z) - loop(z)).abs().max().item()
        ts = time_layer(stacked, z, args.layer_iters)
        tl = time_layer(loop, z, args.layer_iters)
        shape = stacked.shape
        flops = layer_flops(batch, stacked.n_experts, d_in, shape.d_hidden, shape.d_out)
        # ceiling: the loop/stacked ratio a layer running at the dense matmul rate would reach
        print(
            f"{batch:>6}{ts * 1e3:>14.3f}{tl * 1e3:>12.3f}{tl / ts:>13.2f}x"
            f"{flops / ts / 1e9:>17.1f}{flops / tl / 1e9:>14.1f}{peak * tl / flops:>8.1f}x"
            f"{diff:>12.2e}"
        )


if __name__ == "__main__":
    main()
