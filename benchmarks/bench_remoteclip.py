"""Benchmark: RemoteCLIP encoders (Section 2.3: e_i, e_t) throughput, random-init weights.

Writes ``--images`` random 224 px RGB PNG tiles and ``--texts`` region-like descriptions into a
temporary dataset, then times :class:`RemoteCLIPImageEncoder` and :class:`RemoteCLIPTextEncoder`
end to end (tile reading, preprocessing, tokenising, forward, normalising) after one warm-up
batch, plus the image and text towers alone on ready tensors. Random-init weights cost the same
as RemoteCLIP's; nothing downloads. Prints images/s, texts/s and machine info. Asserts nothing.

    python benchmarks/bench_remoteclip.py [--images 64] [--texts 256] [--batch-size 64]
        [--arch ViT-B-32] [--device cpu|cuda|auto] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from PIL import Image

from urbanmoe.data.table import RegionDataset, load_dataset
from urbanmoe.features.remoteclip import RemoteCLIPImageEncoder, RemoteCLIPTextEncoder

WORDS = ["residential", "commercial", "park", "school", "hospital", "restaurant", "metro",
         "office", "river", "road", "dense", "sparse", "green", "industrial", "shopping", "mall",
         "hotel", "bank", "university"]


def write_dataset(root: Path, n_images: int, n_texts: int, seed: int = 0) -> Path:
    """A dataset of max(n_images, n_texts) regions; tiles cycle over ``n_images`` PNGs."""
    rng = np.random.default_rng(seed)
    (root / "tiles").mkdir(parents=True)
    for i in range(n_images):
        arr = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"tiles/t{i:04d}.png")
    n = max(n_images, n_texts)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(20, 60)))) for _ in range(n)]
    pd.DataFrame({"region_id": [f"r{i}" for i in range(n)], "y": rng.random(n),
                  "text": texts, "image_path": [f"tiles/t{i % n_images:04d}.png" for i in range(n)]}
                 ).to_csv(root / "regions.csv", index=False)
    (root / "dataset.yaml").write_text(yaml.safe_dump(
        {"name": "BENCH", "table": "regions.csv", "targets": {"y": {"transform": "none"}}}))
    return root


def _first(root: Path, n: int) -> RegionDataset:
    """The dataset at ``root`` cut to its first ``n`` regions."""
    ds = load_dataset(root)
    ds.table = ds.table.iloc[:n]
    return ds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--arch", default="ViT-B-32", choices=["ViT-B-32", "RN50", "ViT-L-14"])
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kw = {"arch": args.arch, "allow_random_init": True, "batch_size": args.batch_size,
          "device": args.device}
    img_enc, txt_enc = RemoteCLIPImageEncoder(**kw), RemoteCLIPTextEncoder(**kw)
    t0 = time.perf_counter()
    txt_enc._loaded = img_enc._loaded = img_enc._model()  # one model for both towers
    model, preprocess, tokenizer = img_enc._loaded
    device = next(model.parameters()).device
    n_params = sum(p.numel() for p in model.parameters())
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"model: {args.arch}, {n_params / 1e6:.1f} M parameters, random init, "
          f"built in {time.perf_counter() - t0:.1f} s; batch size {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "BENCH", args.images, args.texts)
        img_ds, txt_ds = _first(root, args.images), _first(root, args.texts)
        for name, enc, n in (("images", img_enc, args.images), ("texts", txt_enc, args.texts)):
            enc.encode(_first(root, min(n, args.batch_size)), progress=False)  # warm-up
            _sync(device)
            t = time.perf_counter()
            out = enc.encode(img_ds if name == "images" else txt_ds, progress=False)
            _sync(device)
            dt = time.perf_counter() - t
            print(f"{name}: {n / dt:8.1f} {name}/s end to end ({n} in {dt:.2f} s; "
                  f"output {out.shape[0]} x {out.shape[1]})")
        x = torch.stack([preprocess(Image.open(p)) for p in img_ds.image_paths[: args.batch_size]])
        tok = tokenizer(txt_ds.texts[: args.batch_size])
        with torch.inference_mode():
            for name, fn, inp in (("image tower", model.encode_image, x),
                                  ("text tower", model.encode_text, tok)):
                inp = inp.to(device)
                fn(inp)
                _sync(device)
                t = time.perf_counter()
                fn(inp)
                _sync(device)
                dt = time.perf_counter() - t
                print(f"{name} alone: {len(inp) / dt:8.1f} items/s (one batch of {len(inp)})")


if __name__ == "__main__":
    main()
