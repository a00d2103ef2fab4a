"""Encoders behind one interface, and the per-dataset feature cache.

An encoder turns one modality of a dataset into an (N, d) float32 matrix aligned with the region
table (Section 2.3: e_i from the image, e_t from the text). Offline encoders need no download;
RemoteCLIP plugs in as another encoder with the same interface. Results are cached per dataset,
modality and encoder configuration as an embeddings table keyed by ``region_id`` — the same format
a dataset may ship precomputed embeddings in (docs/data.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from urbanmoe.binaries import read_cached
from urbanmoe.config import config_hash
from urbanmoe.data.table import ID, RegionDataset, read_embeddings
from urbanmoe.errors import ConfigError
from urbanmoe.io import atomic_path, safe_name, sha256_file, write_json

log = logging.getLogger(__name__)

MODALITIES = ("image", "text")
LOCATION = "location"  # computed from the coordinates (features/location.py)


class Encoder(Protocol):
    """Turns one modality of a dataset into features."""

    modality: str

    def identity(self) -> dict[str, Any]:
        """What determines the output besides the data (name and settings): the cache key."""
        ...

    def encode(self, ds: RegionDataset, progress: bool = True) -> np.ndarray:
        """(N, d) float32 features in table order."""
        ...


_REGISTRY: dict[tuple[str, str], Callable[[dict[str, Any]], Encoder]] = {}


def register(modality: str, name: str) -> Callable:
    """Class decorator: make an encoder buildable from ``features.<modality>.encoder: name``."""

    def deco(factory: Callable[[dict[str, Any]], Encoder]) -> Callable[[dict[str, Any]], Encoder]:
        _REGISTRY[(modality, name)] = factory
        return factory

    return deco


def build_encoder(modality: str, settings: dict[str, Any]) -> Encoder:
    """The encoder that ``features.<modality>`` configures."""
    from urbanmoe.features import image, remoteclip, text  # noqa: F401  (registration)

    key = (modality, settings["encoder"])
    if key not in _REGISTRY:
        known = sorted(n for m, n in _REGISTRY if m == modality)
        raise ConfigError(f"features.{modality}.encoder: unknown {key[1]!r} (known: {known})")
    return _REGISTRY[key](settings)


def encoder_settings(features: Mapping[str, Any], modality: str) -> dict[str, Any]:
    """``features.<modality>``, with ``features.remoteclip`` attached when it selects RemoteCLIP
    (one checkpoint serves both the image and the text encoder)."""
    # only raw images and texts are encoded, relations profiled and positions encoded; feature
    # groups and embeddings need no settings
    if modality == LOCATION:
        return dict(features[LOCATION])
    if modality not in MODALITIES:
        return {"relations": dict(features["relations"])}  # a relation's row profile
    out = dict(features[modality])
    if out.get("encoder") == "remoteclip":
        out["remoteclip"] = dict(features.get("remoteclip") or {})
    return out


def has_modality(ds: RegionDataset, modality: str) -> bool:
    """Whether the dataset carries this modality: precomputed embeddings, a tabular feature
    group (``data/groups.py``), a relation's row profile (``features/relations.py``), raw
    images or texts, or coordinates for the location encoding (``features/location.py``)."""
    if (ds.meta.get("embeddings") or {}).get(modality) or modality in ds.feature_groups:
        return True
    if modality == LOCATION:
        return ds.coords is not None
    if modality in ds.relations:
        return True
    return {"image": ds.image_paths, "text": ds.texts}.get(modality) is not None


def write_embeddings(path: Path, ids: np.ndarray, features: np.ndarray) -> None:
    """Write an embeddings table (region_id, e000, e001, ...) atomically as Parquet."""
    cols = {f"e{j:03d}": features[:, j] for j in range(features.shape[1])}
    df = pd.DataFrame({ID: ids, **cols})
    with atomic_path(Path(path), "cache") as tmp:
        df.to_parquet(tmp, index=False)


def cache_file(ds: RegionDataset, encoder: Encoder, cache_dir: Path) -> Path:
    """Cache path: dataset name, modality and a hash of (table bytes, encoder identity)."""
    key = config_hash({"table": sha256_file(ds.table_path), "encoder": encoder.identity()})
    name = safe_name(ds.name)  # e.g. a transfer pair "SH->BJ" -> "SH-_BJ"
    return Path(cache_dir) / f"{name}-{encoder.modality}-{key}.parquet"


def modality_features(
    ds: RegionDataset,
    modality: str,
    settings: dict[str, Any],
    cache_dir: Path | None,
    progress: bool = True,
) -> np.ndarray | None:
    """Features of one modality: precomputed if the dataset ships them, the transformed columns
    of a tabular feature group, a relation's row profile, else encoded (cached).

    Returns None when the dataset has no such modality.
    """
    shipped = ds.embedding(modality)
    if shipped is not None:
        return shipped
    if modality in ds.feature_groups:
        return ds.feature_groups[modality].matrix(ds.table)
    if modality in ds.relations:
        from urbanmoe.features.relations import relation_profile

        return relation_profile(ds, modality, settings["relations"])
    if modality == LOCATION:
        from urbanmoe.features.location import location_features

        return None if ds.coords is None else location_features(ds.coords, settings)
    if not has_modality(ds, modality):
        return None
    return _encode_cached(ds, build_encoder(modality, settings), cache_dir, progress)[0]


def _encode_cached(ds: RegionDataset, encoder: Encoder, cache_dir: Path | None,
                   progress: bool) -> tuple[np.ndarray, Path | None]:
    """Encode through the cache (read it if present, else encode and write it)."""
    path = cache_file(ds, encoder, cache_dir) if cache_dir is not None else None
    cached = None if path is None else read_cached(path, lambda p: read_embeddings(p, ds.ids))
    if cached is not None:
        log.info("features: %s %s from cache %s", ds.name, encoder.modality, path)
        return cached, path
    if encoder.modality == "image" and ds.image_paths is not None:
        from urbanmoe.data.tiles import check_tiles  # rasterio loads only for tiles

        check_tiles(ds.image_paths, progress, ds.name)  # every header before any pixel
    feats = encoder.encode(ds, progress=progress).astype(np.float32)
    if path is not None:
        write_embeddings(path, ds.ids, feats)
    return feats, path


def extract_all(ds: RegionDataset, settings: dict[str, Any], out_dir: Path,
                progress: bool = True) -> dict[str, str]:
    """Encode every modality the dataset has into ``out_dir`` (a feature cache folder).

    Files are named as the cache names them, so ``features.cache_dir=out_dir`` makes training
    read them; ``manifest.json`` lists them with the table checksum.
    """
    out_dir = Path(out_dir)
    files: dict[str, str] = {}
    for modality in MODALITIES:
        if not has_modality(ds, modality) or ds.embedding(modality) is not None:
            continue
        encoder = build_encoder(modality, encoder_settings(settings, modality))
        _, path = _encode_cached(ds, encoder, out_dir, progress)
        files[modality] = path.name  # type: ignore[union-attr]  (out_dir is given)
    write_json(out_dir / "manifest.json", {"dataset": ds.name, "files": files,
                                           "table_sha256": sha256_file(ds.table_path)})
    return files


def poi_vector(ds: RegionDataset) -> np.ndarray | None:
    """The POI vector p of Section 2.3.2: log1p counts per category (standardised at training)."""
    cols = ds.poi_columns
    if not cols:
        return None
    return np.log1p(ds.table[cols].to_numpy(dtype=np.float64)).astype(np.float32)
