"""UrbanCLIP, the "UrbanCLIP (ST)" and "UrbanCLIP (MT)" rows of Table 2 (Appendix A).

UrbanCLIP (Yan et al., WWW 2024) fine-tunes a CLIP-style model on pairs of a region's satellite
image and its text description with the symmetric InfoNCE loss, then predicts the indicators from
the image embedding with a regression head. The model and its inputs are here (the fine-tuning
and the features: ``training/baselines/urbanclip.py``):

* the model is any open_clip architecture, built offline (``pretrained=None``, nothing
  downloads): by default ``urbanmoe-tiny``, a small ViT and text transformer that urbanmoe
  registers from ``resources/open_clip/urbanmoe-tiny.json`` for CPU runs; its weights are random
  unless ``baselines.urbanclip.checkpoint`` names a local open_clip state dict (read with
  ``weights_only``, strictly checked against the architecture);
* images are each tile's R, G, B bands, linearly stretched so that the training tiles' 99th
  percentile is white (Sentinel-2 reflectance is dark: see :func:`rgb_tiles`), then put through
  the model's own evaluation preprocessing as tensors (resize to its image size, its mean and
  std; no augmentation, so that runs are deterministic); texts are ``ds.texts`` through
  ``open_clip.get_tokenizer(arch)`` (the bundled SimpleTokenizer for ``urbanmoe-tiny``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from urbanmoe.errors import ConfigError, DataError
from urbanmoe.features.remoteclip import RGB_BANDS, check_state_dict, read_state_dict

TINY = "urbanmoe-tiny"
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


def embed_pair(model: torch.nn.Module, images: torch.Tensor,
            tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and text embeddings of one batch."""
    return (model.encode_image(images, normalize=True),
            model.encode_text(tokens, normalize=True))


def rgb_tiles(tiles: np.ndarray, train: np.ndarray) -> np.ndarray:
    """R, G, B bands in [0, 1], linearly stretched so the training tiles' 99th percentile is 1.

    Sentinel-2 reflectance is dark (mostly below 0.3): unstretched, every tile sits far below
    CLIP's mean colour and a random-init model maps them all to almost the same embedding.
    8-bit RGB tiles have their 99th percentile near 1 and are left almost as they are.
    """
    rgb = tiles[:, RGB_BANDS]
    white = max(float(np.percentile(rgb[train], 99)), 1e-6)
    return np.clip(rgb / white, 0.0, 1.0).astype(np.float32)


def preprocessing(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
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
