"""RemoteCLIP encoders through open_clip: the paper's e_i and e_t (Section 2.3.1, 2.3.3).

The paper encodes each region's satellite image i and its text description t with the frozen
RemoteCLIP (Liu et al., 2024): e_i = F_I(i), e_t = F_T(t), both in R^{d_e}. Here the open_clip
architecture of the same name is built without weights (``pretrained=None``: nothing downloads)
and the RemoteCLIP state dict is loaded strictly from a local file (docs/remoteclip.md). Both
encoders share the settings of ``features.remoteclip``; the caller passes that section in as
``settings["remoteclip"]`` (:func:`encoder_settings`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from urbanmoe.binaries import read_checkpoint
from urbanmoe.data.table import DataError, RegionDataset
from urbanmoe.data.tiles import read_tile
from urbanmoe.errors import ConfigError
from urbanmoe.features.base import register
from urbanmoe.io import sha256_file
from urbanmoe.runtime.seeding import resolve_device

ARCHS = ("ViT-B-32", "RN50", "ViT-L-14")
VERSION = 1
DEFAULTS: dict[str, Any] = {"arch": "ViT-B-32", "checkpoint": None, "allow_random_init": False,
                            "batch_size": 64, "device": "auto"}
log = logging.getLogger(__name__)
# read_tile returns 3-band tiles as B, G, R and 4+-band Sentinel-2 tiles as B02, B03, B04, B08:
# in both cases R, G, B are bands 2, 1, 0.
RGB_BANDS = [2, 1, 0]


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict from ``obj``: accepts ``{"state_dict": ...}`` and a ``module.`` prefix."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise DataError(f"{path}: not a state dict (a {type(obj).__name__}, expected a "
                        "non-empty dict of tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise DataError(f"{path}: not a state dict: entry {bad[0]!r} is not a tensor "
                        f"({len(bad)} such entries)")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The plain state dict in ``path`` (``torch.load`` with ``weights_only``), unwrapped."""
    return _unwrap(read_checkpoint(path, "a RemoteCLIP checkpoint", error=DataError), path)


def check_state_dict(sd: Mapping[str, torch.Tensor], model: torch.nn.Module, arch: str,
                path: Path) -> None:
    """Refuse, in one line, a state dict that does not fit ``model`` exactly."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} shape mismatches (e.g. {k!r}: "
                        f"{tuple(sd[k].shape)} in file vs {tuple(own[k].shape)})")
    if problems:
        raise DataError(f"{path}: not an open_clip {arch} state dict: {'; '.join(problems)} "
                        "(a checkpoint of another arch?)")


def load_remoteclip(arch: str, checkpoint: Path | None,
                    device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Callable, Any]:
    """(model, preprocess, tokenizer) of open_clip's ``arch`` with RemoteCLIP's weights.

    The architecture is built with ``pretrained=None`` (no download); with ``checkpoint`` given
    its state dict is loaded strictly (``weights_only``), else the weights stay random. Bad
    files raise :class:`DataError` naming the file and the problem.
    """
    import open_clip

    if arch not in ARCHS:
        raise ConfigError(f"features.remoteclip.arch: unknown {arch!r} (known: {list(ARCHS)})")
    path = Path(checkpoint) if checkpoint is not None else None
    sd = read_state_dict(path) if path is not None else None
    def quiet(rec: logging.LogRecord) -> bool:  # open_clip's "initialized randomly": ours below
        return "No pretrained weights loaded" not in rec.getMessage()

    logging.getLogger().addFilter(quiet)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    finally:
        logging.getLogger().removeFilter(quiet)
    if path is not None and sd is not None:
        check_state_dict(sd, model, arch, path)
        model.load_state_dict(sd, strict=True)
        log.info("remoteclip: %s weights from %s", arch, path)
    else:
        log.warning("remoteclip: %s with RANDOM weights (allow_random_init)", arch)
    tokenizer = open_clip.get_tokenizer(arch)
    return model.to(resolve_device(device)).eval(), preprocess, tokenizer


def to_rgb_image(tile: np.ndarray, source: Path | str = "image tile") -> Image.Image:
    """uint8 RGB PIL image of a :func:`read_tile` array (reflectance in [0, 1], clipped)."""
    if tile.shape[0] < 3:
        raise DataError(f"{source}: {tile.shape[0]} bands; RemoteCLIP needs R, G, B")
    rgb = np.clip(tile[RGB_BANDS], 0.0, 1.0).transpose(1, 2, 0)
    return Image.fromarray(np.round(rgb * 255.0).astype(np.uint8))


class _RemoteCLIP:
    """Shared settings, lazy model loading and identity of the two encoders; each is one tower
    over one column of the dataset (the ``attribute`` of ``RegionDataset`` holding it), a batch
    of which ``embed`` encodes."""

    modality = ""
    column = ""
    attribute = ""
    unit = ""

    def __init__(self, arch: str = "ViT-B-32", checkpoint: str | Path | None = None,
                 allow_random_init: bool = False, batch_size: int = 64,
                 device: str = "auto") -> None:
        self.arch = arch
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.allow_random_init = allow_random_init
        self.batch_size = batch_size
        self.device = device
        self._sha: str | None = None
        self._loaded: tuple[torch.nn.Module, Callable, Any] | None = None
        if self.checkpoint is None and not allow_random_init:
            raise DataError(
                f"features.{self.modality}.encoder: remoteclip: features.remoteclip.checkpoint is "
                "null; point it at a RemoteCLIP checkpoint (docs/remoteclip.md), or set "
                "features.remoteclip.allow_random_init=true for smoke runs (random features)")

    def identity(self) -> dict[str, Any]:
        """Arch, checkpoint sha256 (or ``random-init``) and version: the feature-cache key."""
        if self._sha is None:
            if self.checkpoint is None:
                self._sha = "random-init"
            elif not self.checkpoint.is_file():
                raise DataError(f"{self.checkpoint}: RemoteCLIP checkpoint: file not found")
            else:
                self._sha = sha256_file(self.checkpoint)
        return {"encoder": "remoteclip", "arch": self.arch, "checkpoint_sha256": self._sha,
                "version": VERSION}

    def _model(self) -> tuple[torch.nn.Module, Callable, Any]:
        if self._loaded is None:
            self._loaded = load_remoteclip(self.arch, self.checkpoint, self.device)
        return self._loaded

    def embed(self, items: list[Any], idx: range) -> torch.Tensor:
        """Raw embeddings of ``items[i]`` for ``i`` in ``idx`` (one tower)."""
        raise NotImplementedError

    def encode(self, ds: RegionDataset, progress: bool = True) -> np.ndarray:
        """L2-normalised embeddings of every region's item, in batches of ``batch_size``."""
        items = getattr(ds, self.attribute)
        if items is None:
            raise DataError(f"{ds.table_path}: column {self.column!r}: missing; "
                            f"no {self.modality} modality")
        out = []
        with torch.inference_mode(), tqdm(total=len(items), unit=self.unit,
                                          desc=f"{ds.name} {self.modality} remoteclip",
                                          disable=not progress) as bar:
            for start in range(0, len(items), self.batch_size):
                idx = range(start, min(start + self.batch_size, len(items)))
                z = self.embed(items, idx).float()
                out.append(torch.nn.functional.normalize(z, dim=-1).cpu().numpy())
                bar.update(len(idx))
        return np.concatenate(out).astype(np.float32)


class RemoteCLIPImageEncoder(_RemoteCLIP):
    """e_i = F_I(i) of Section 2.3.1: RemoteCLIP's image tower on each tile's RGB bands."""

    modality, column, attribute, unit = "image", "image_path", "image_paths", "tile"

    def embed(self, items: list[Any], idx: range) -> torch.Tensor:
        model, preprocess, _ = self._model()
        x = torch.stack([preprocess(to_rgb_image(read_tile(items[i]), items[i])) for i in idx])
        return model.encode_image(x.to(next(model.parameters()).device))


class RemoteCLIPTextEncoder(_RemoteCLIP):
    """e_t = F_T(t) of Section 2.3.3: RemoteCLIP's text tower (context length truncation)."""

    modality, column, attribute, unit = "text", "text", "texts", "text"

    def embed(self, items: list[Any], idx: range) -> torch.Tensor:
        model, _, tokenizer = self._model()
        return model.encode_text(tokenizer([items[i] for i in idx]).to(
            next(model.parameters()).device))


def _settings(settings: Mapping[str, Any], modality: str) -> dict[str, Any]:
    if "remoteclip" not in settings:
        raise ConfigError(f"features.{modality}.encoder: remoteclip: the features.remoteclip "
                         "section was not passed along (use features.base.encoder_settings)")
    return {**DEFAULTS, **settings["remoteclip"]}  # unknown keys: the schema refuses them


@register("image", "remoteclip")
def _build_image(settings: dict[str, Any]) -> RemoteCLIPImageEncoder:
    return RemoteCLIPImageEncoder(**_settings(settings, "image"))


@register("text", "remoteclip")
def _build_text(settings: dict[str, Any]) -> RemoteCLIPTextEncoder:
    return RemoteCLIPTextEncoder(**_settings(settings, "text"))
