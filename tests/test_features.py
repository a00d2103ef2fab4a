"""Offline encoders, the POI vector and the feature cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score

from urbanmoe.data.table import load_dataset
from urbanmoe.data.tiles import read_tile
from urbanmoe.features.base import build_encoder, cache_file, modality_features, poi_vector
from urbanmoe.features.image import tile_statistics

REAL_TILES = Path(__file__).resolve().parents[2] / "shared/data/urbanclip-toolkit/Beijing/tiles"


def test_image_stats_on_synthetic_tiles(synth_sh: Path, cfg: dict) -> None:
    ds = load_dataset(synth_sh)
    feats = modality_features(ds, "image", cfg["features"]["image"], None, progress=False)
    assert feats.shape[0] == len(ds) and feats.shape[1] > 20 and np.isfinite(feats).all()
    # the tile statistics carry the urban factors: a linear model on them predicts population
    y = np.log1p(ds.table["population"].to_numpy())
    r2 = cross_val_score(Ridge(alpha=1.0), feats, y, cv=3, scoring="r2")
    assert r2.mean() > 0.3, r2


def test_text_encoder_is_seeded_and_normalised(synth_sh: Path, cfg: dict) -> None:
    ds = load_dataset(synth_sh)
    enc = build_encoder("text", cfg["features"]["text"])
    a, b = enc.encode(ds, progress=False), enc.encode(ds, progress=False)
    assert a.shape == (len(ds), cfg["features"]["text"]["dim"])
    assert np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_cache_is_written_once_and_read_back(synth_sh: Path, cfg: dict, tmp_path: Path) -> None:
    ds = load_dataset(synth_sh)
    settings = cfg["features"]["text"]
    path = cache_file(ds, build_encoder("text", settings), tmp_path)
    first = modality_features(ds, "text", settings, tmp_path, progress=False)
    assert path.exists()
    stamp = path.stat().st_mtime_ns
    second = modality_features(ds, "text", settings, tmp_path, progress=False)
    assert np.array_equal(first, second) and path.stat().st_mtime_ns == stamp
    other = cache_file(ds, build_encoder("text", {**settings, "dim": 8}), tmp_path)
    assert other != path  # settings are part of the key


def test_poi_vector_is_log1p_counts(synth_sh: Path) -> None:
    ds = load_dataset(synth_sh)
    p = poi_vector(ds)
    assert p.shape == (len(ds), 15)
    assert np.allclose(p, np.log1p(ds.table[ds.poi_columns].to_numpy()), atol=1e-6)


@pytest.mark.skipif(not REAL_TILES.is_dir(), reason="shared real tiles not present")
def test_real_rgb_jpeg_tiles() -> None:
    tiles = np.stack([read_tile(p) for p in sorted(REAL_TILES.glob("*.jpg"))])
    assert tiles.shape[1:] == (3, 256, 256) and tiles.min() >= 0.0 and tiles.max() <= 1.0
    stats = tile_statistics(tiles)
    assert stats.shape[0] == len(tiles) and np.isfinite(stats).all()
    assert np.ptp(stats, axis=0).max() > 0  # real tiles differ from each other
