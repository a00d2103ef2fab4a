"""UrbanCLIP's fitting, the "UrbanCLIP (ST)" and "UrbanCLIP (MT)" rows of Table 2 (Appendix A).

The model and its inputs are ``models/baselines/urbanclip.py``'s. Here:

* fine-tuning uses open_clip's ``ClipLoss`` (symmetric InfoNCE, Eq. 1 of UrbanCLIP) on the
  training regions only (no labels), seeded shuffling, AdamW with a warm-up then cosine decay
  (``OneCycleLR``; without the warm-up a random-init model stays at the chance loss), the
  learnable temperature clamped to at most 100 as in CLIP. UrbanCLIP's second term, the CoCa
  captioning loss, is left out: a text decoder over the 49k-token vocabulary would multiply the
  CPU cost of every step, and the representation the head reads is the contrastive one either
  way;
* features are the L2-normalised image embedding concatenated with the L2-normalised text
  embedding (UrbanCLIP's head reads the image embedding alone; ours gets both, as every other
  multi-modal baseline's head does). The shared head (``models/baselines/heads.py``) is then
  trained on them, once per task for ST and once for all tasks for MT.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from urbanmoe.data.tiles import load_tiles
from urbanmoe.errors import DataError
from urbanmoe.models.baselines.urbanclip import build_model, embed_pair, preprocessing, rgb_tiles
from urbanmoe.training.optim import adam
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation

WEIGHT_DECAY = 0.1  # AdamW, as in CLIP fine-tuning (open_clip's training default is 0.2)
WARMUP = 0.1  # share of the steps the learning rate warms up over, then cosine decay


def _contrastive_fit(model: torch.nn.Module, batch: Callable[[np.ndarray], tuple],
                     train: np.ndarray, s: dict[str, Any], seed: int,
                     progress: bool) -> list[float]:
    """Fine-tune ``model`` with ClipLoss on the ``train`` rows; the mean loss per epoch."""
    from open_clip import ClipLoss

    if len(train) < 2:
        raise DataError(f"UrbanCLIP: {len(train)} training regions; the contrastive loss "
                         "needs at least 2")
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adam(params, lr=s["lr"], weight_decay=WEIGHT_DECAY)
    per_epoch = math.ceil(len(train) / s["batch_size"]) - (len(train) % s["batch_size"] == 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=s["lr"], total_steps=s["epochs"] * per_epoch, pct_start=WARMUP,
        cycle_momentum=False)
    loss_fn = ClipLoss()
    history = []
    model.train()
    for _ in tqdm(range(s["epochs"]), desc="urbanclip", unit="epoch", disable=not progress):
        order = train[torch.randperm(len(train), generator=gen).numpy()]
        total, seen = 0.0, 0
        for start in range(0, len(order), s["batch_size"]):
            idx = order[start:start + s["batch_size"]]
            if len(idx) < 2:  # a lone pair has no negatives
                continue
            z_img, z_txt = embed_pair(model, *batch(idx))
            loss = loss_fn(z_img, z_txt, model.logit_scale.exp())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, math.log(100.0))
            total += loss.item() * len(idx)
            seen += len(idx)
        history.append(total / seen)
    return history


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: str | torch.device,
          progress: bool = True) -> Representation:
    """Fine-tune on the training regions' image-text pairs; embed every region (table order)."""
    ds, s = prep.ds, b["urbanclip"]
    texts, paths = ds.texts, ds.image_paths
    if texts is None or paths is None:
        missing = " and ".join(n for n, v in (("text", texts), ("image_path", paths)) if v is None)
        raise DataError(f"UrbanCLIP needs image-text pairs; {ds.name} has no {missing} column")
    dev = torch.device(device)
    model, tokenizer = build_model(s["arch"], s["checkpoint"], seed)
    model = model.to(dev)
    train = np.asarray(prep.split.train)
    tiles = load_tiles(ds, b["image_size"], progress, b.get("cache_dir"))
    if tiles.shape[1] < 3:
        raise DataError(f"{ds.table_path}: {tiles.shape[1]}-band tiles; UrbanCLIP needs R, G, B")
    rgb, preprocess = torch.from_numpy(rgb_tiles(tiles, train)), preprocessing(model)
    tokens = tokenizer(texts)

    def batch(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(idx)
        return preprocess(rgb[rows]).to(dev), tokens[rows].to(dev)

    history = _contrastive_fit(model, batch, train, s, seed, progress)
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(ds), s["batch_size"]):
            idx = np.arange(start, min(start + s["batch_size"], len(ds)))
            out.append(torch.cat(embed_pair(model, *batch(idx)), dim=1).float().cpu().numpy())
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    source = "random init" if s["checkpoint"] is None else f"from {s['checkpoint']}"
    return Representation(features=np.concatenate(out).astype(np.float32), n_params=n_params,
                          loss_history=history, note=f"open_clip {s['arch']}, {source}")
