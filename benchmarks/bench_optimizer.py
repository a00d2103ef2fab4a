"""Benchmark: one optimizer step over UrbanMoE's parameters at the paper's sizes, for torch's
three AdamW implementations (per-tensor loop, foreach, fused), and how far their updates drift
apart. Asserts nothing.

    python benchmarks/bench_optimizer.py [--steps 50] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from urbanmoe.models import PAPER_LAYOUT, LookupRegionEmbedding, UrbanMoE

TASKS = ["carbon", "population", "light"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = UrbanMoE({"image": 512, "text": 512}, 15, TASKS, PAPER_LAYOUT,
                     region=LookupRegionEmbedding(1558, 6)).to(dev)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    grads = [{k: torch.randn(v.shape, generator=gen).to(dev) for k, v in start.items()}
             for _ in range(4)]
    n = sum(v.numel() for v in start.values())
    print(f"{n:,} parameters in {len(start)} tensors, {args.threads} thread(s), {dev}")
    finals = {}
    for name, kw in (("per-tensor loop (torch default on CPU)", {}),
                     ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        params = {k: torch.nn.Parameter(v.clone()) for k, v in start.items()}
        opt = torch.optim.AdamW(params.values(), lr=5e-4, weight_decay=0.01, **kw)
        times = []
        for i in range(args.steps + 1):
            for k, p in params.items():
                p.grad = grads[i % len(grads)][k]
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        finals[name] = torch.cat([p.detach().flatten() for p in params.values()])
        med = sorted(times[1:])[len(times[1:]) // 2]
        print(f"{name:40s} {med * 1000:8.2f} ms/step (median of {args.steps})")
    ref = finals["per-tensor loop (torch default on CPU)"]
    for name, vec in finals.items():
        print(f"after {args.steps + 1} steps, {name}: max |Δ| to the default "
              f"{float((vec - ref).abs().max()):.2e} (parameters ~{float(ref.abs().mean()):.2e})")


if __name__ == "__main__":
    main()
