"""The image baselines' cache: tiles and learned representations, keyed by what they depend on
and read back unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import prepared_city

from urbanmoe.training import registry, representations
from urbanmoe.training.fitting import fit_model

CPU = torch.device("cpu")
SMALL = ["baselines.image_size=8", "baselines.repr_dim=8", "baselines.head_hidden=8",
         "train.max_epochs=3", "train.patience=2", "baselines.head_patience=2"]


@pytest.fixture(scope="module")
def setup(synth_sh: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    cache = tmp_path_factory.mktemp("reps")
    prep, cfg = prepared_city(synth_sh, tmp_path_factory.mktemp("feats"),
                              [*SMALL, f"baselines.cache_dir={cache}"])
    return prep, cfg, cache


def _path(prep, cfg, name: str, seed: int = 0, **b) -> Path:
    return representations.cache_path(registry.get(name), prep, {**cfg["baselines"], **b},
                                      seed, CPU)


def test_the_key_is_what_the_representation_depends_on(setup: tuple) -> None:
    prep, cfg, _ = setup
    base = _path(prep, cfg, "urbanclip_st")
    assert _path(prep, cfg, "urbanclip_mt") == base  # ST and MT learn one representation
    assert _path(prep, cfg, "urbanclip_st", head_hidden=99) == base  # the head is not in it
    assert _path(prep, cfg, "urbanclip_st", seed=1) != base
    assert _path(prep, cfg, "urbanclip_st", repr_dim=9) != base
    assert _path(prep, cfg, "tile2vec") != base
    assert representations.cache_path(registry.get("pca"), prep,
                                      {**cfg["baselines"], "cache_dir": None},
                                      0, CPU) is None


def test_a_cached_representation_is_learned_once_and_gives_the_same_run(
        setup: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    prep, cfg, cache = setup
    spec = registry.get("pca")
    fresh = fit_model(spec, prep, {**cfg, "baselines": {**cfg["baselines"],
                                                         "cache_dir": None}},
                      0, CPU, progress=False)
    calls = []
    learn = spec.function()
    monkeypatch.setattr(registry.ModelSpec, "function",
                        lambda self: (lambda *a, **k: calls.append(1) or learn(*a, **k)))
    first = fit_model(spec, prep, cfg, 0, CPU, progress=False)
    again = fit_model(spec, prep, cfg, 0, CPU, progress=False)
    assert len(calls) == 1 and len(list(cache.glob("pca-seed0-*.npz"))) == 1
    for out in (first, again):
        np.testing.assert_array_equal(out.pred_std, fresh.pred_std)
        assert out.n_params == fresh.n_params and out.objective == fresh.objective


def test_tiles_are_cached_per_dataset_and_size(setup: tuple, tmp_path: Path) -> None:
    from urbanmoe.data.tiles import load_tiles

    prep = setup[0]
    fresh = load_tiles(prep.ds, 8, progress=False)
    first = load_tiles(prep.ds, 8, progress=False, cache_dir=tmp_path)
    (path,) = tmp_path.glob("tiles-SH-8-*.npy")
    np.testing.assert_array_equal(first, fresh)
    np.save(path, np.zeros_like(fresh))  # what is there is what is read
    assert not load_tiles(prep.ds, 8, progress=False, cache_dir=tmp_path).any()
    load_tiles(prep.ds, 4, progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("tiles-SH-*.npy"))) == 2


def test_heads_on_representations_stop_by_their_own_patience(setup: tuple) -> None:
    prep, cfg, _ = setup
    cfg = {**cfg, "train": {**cfg["train"], "max_epochs": 12, "patience": 1},
           "baselines": {**cfg["baselines"], "head_patience": 4}}
    out = fit_model(registry.get("pca"), prep, cfg, 0, CPU, progress=False)
    for fit in out.fits.values():
        assert fit.epochs == min(12, fit.best_epoch + 4 + 1)
