"""UrbanCLIP, the "UrbanCLIP (ST)" and "UrbanCLIP (MT)" rows of Table 2 (Appendix A).

UrbanCLIP (Yan et al., WWW 2024) fine-tunes a CLIP-style model on pairs of a region's satellite
image and its text description with the symmetric InfoNCE loss, then predicts the indicators from
the image embedding with a regression head. Here:

* the model is any open_clip architecture, built offline (``pretrained=None``, nothing
  downloads): by default ``urbanmoe-tiny``, a small ViT and text transformer that urbanmoe
  registers from ``resources/open_clip/urbanmoe-tiny.json`` for CPU runs; its weights are random
  unless ``baselines.urbanclip.checkpoint`` names a local open_clip state dict (read with
  ``weights_only``, strictly checked against the architecture);
* images are each tile's R, G, B bands, linearly stretched so that the training tiles' 99th
  percentile is white (Sentinel-2 reflectance is dark: see :func:`_rgb`), then put through the
  model's own evaluation preprocessing as tensors (resize to its image size, its mean and std;
  no augmentation, so that runs are deterministic); texts are ``ds.texts`` through
  ``open_clip.get_tokenizer(arch)`` (the bundled SimpleTokenizer for ``urbanmoe-tiny``);
* fine-tuning uses open_clip's ``ClipLoss`` (symmetric InfoNCE, Eq. 1 of UrbanCLIP) on the
  training regions only (no labels), seeded shuffling, AdamW with a warm-up then cosine decay
  (``OneCycleLR``; without the warm-up a random-init model stays at the chance loss), the
  learnable temperature clamped to at most 100 as in CLIP. UrbanCLIP's second term, the CoCa
  captioning loss, is left out: a text decoder over the 49k-token vocabulary would multiply the
  CPU cost of every step, and the representation the head reads is the contrastive one either
  way;
* features are the L2-normalised image embedding concatenated with the L2-normalised text
  embedding (UrbanCLIP's head reads the image embedding alone; ours gets both, as every other
  multi-modal baseline's head does). The shared head (``baselines/heads.py``) is then trained on
  them, once per task for ST and once for all tasks for MT.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from urbanmoe.data.tiles import load_tiles
from urbanmoe.errors import ConfigError, DataError
from urbanmoe.features.remoteclip import RGB_BANDS, check_state_dict, read_state_dict
from urbanmoe.models.registry import Representation
from urbanmoe.training.prepare import Prepared

TINY = "urbanmoe-tiny"
WEIGHT_DECAY = 0.1  # AdamW, as in CLIP fine-tuning (open_clip's training default is 0.2)
WARMUP = 0.1  # share of the steps the learning rate warms up over, then cosine decay
log = logging.getLogger(__name__)


def register_configs() -> None:
    """Make urbanmoe's open_clip model configs (``resources/open_clip/*.json``) known."""
    import open_clip

    if TINY not in open_clip.list_models():
        with resources.as_file(resources.files("urbanmoe") / "resources" / "open_clip") as p:
            open_clip.add_model_config(Path(p))


def build_model(arch: str, checkpoint: str | Path | None,
                seed: int) -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) of open_clip's ``arch``, built offline.

    Weights are random (drawn from ``seed``, the global RNG is left as it was) or, with
    ``checkpoint``, loaded strictly from that local state dict; a file that is not a state dict
    of ``arch`` raises :class:`DataError` in one line.
    """
    import open_clip

    register_configs()
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ConfigError(f"baselines.urbanclip.arch: unknown open_clip architecture {arch!r} "
                         f"(e.g. {TINY!r}, 'ViT-B-32')")
    text_cfg = cfg.get("text_cfg", {})
    if text_cfg.get("hf_model_name") or text_cfg.get("hf_tokenizer_name"):
        raise ConfigError(f"baselines.urbanclip.arch: {arch} needs a Hugging Face text model or "
                         "tokenizer (a download); pick an arch with open_clip's own text tower")
    if "multimodal_cfg" in cfg:
        raise ConfigError(f"baselines.urbanclip.arch: {arch} is a CoCa model; the captioning "
                         "term is left out, use its CLIP counterpart")
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and not path.is_file():
        raise DataError(f"{path}: baselines.urbanclip.checkpoint: file not found")
    sd = read_state_dict(path) if path is not None else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(arch, pretrained=None)
    if path is not None and sd is not None:
        check_state_dict(sd, model, arch, path)
        model.load_state_dict(sd, strict=True)
        log.info("urbanclip: %s weights from %s", arch, path)
    return model, open_clip.get_tokenizer(arch)


def _encode(model: torch.nn.Module, images: torch.Tensor,
            tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and text embeddings of one batch."""
    return (model.encode_image(images, normalize=True),
            model.encode_text(tokens, normalize=True))


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
    opt = torch.optim.AdamW(params, lr=s["lr"], weight_decay=WEIGHT_DECAY)
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
            z_img, z_txt = _encode(model, *batch(idx))
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


def _rgb(tiles: np.ndarray, train: np.ndarray) -> np.ndarray:
    """R, G, B bands in [0, 1], linearly stretched so the training tiles' 99th percentile is 1.

    Sentinel-2 reflectance is dark (mostly below 0.3): unstretched, every tile sits far below
    CLIP's mean colour and a random-init model maps them all to almost the same embedding.
    8-bit RGB tiles have their 99th percentile near 1 and are left almost as they are.
    """
    rgb = tiles[:, RGB_BANDS]
    white = max(float(np.percentile(rgb[train], 99)), 1e-6)
    return np.clip(rgb / white, 0.0, 1.0).astype(np.float32)


def _preprocess(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's evaluation preprocessing on (B, 3, H, W) tensors: its size, mean and std."""
    import open_clip

    cfg = open_clip.get_model_preprocess_cfg(model)
    size = tuple(cfg["size"]) if isinstance(cfg["size"], tuple | list) else (cfg["size"],) * 2
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)

    def apply(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != size:  # square tiles: resize = open_clip's resize + crop
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        return (x - mean) / std

    return apply


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
    tiles = load_tiles(ds, b["image_size"], progress)
    if tiles.shape[1] < 3:
        raise DataError(f"{ds.table_path}: {tiles.shape[1]}-band tiles; UrbanCLIP needs R, G, B")
    rgb, preprocess = torch.from_numpy(_rgb(tiles, train)), _preprocess(model)
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
            out.append(torch.cat(_encode(model, *batch(idx)), dim=1).float().cpu().numpy())
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    source = "random init" if s["checkpoint"] is None else f"from {s['checkpoint']}"
    return Representation(features=np.concatenate(out).astype(np.float32), n_params=n_params,
                          loss_history=history, note=f"open_clip {s['arch']}, {source}")
