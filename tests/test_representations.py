"""Learned representations are cached by what they depend on, and read back unchanged."""

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
         "train.max_epochs=3", "train.patience=2"]


@pytest.fixture(scope="module")
def setup(synth_sh: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    cache = tmp_path_factory.mktemp("reps")
    prep, cfg = prepared_city(synth_sh, tmp_path_factory.mktemp("feats"),
                              [*SMALL, f"baselines.representation_cache={cache}"])
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
                                      {**cfg["baselines"], "representation_cache": None},
                                      0, CPU) is None


def test_a_cached_representation_is_learned_once_and_gives_the_same_run(
        setup: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    prep, cfg, cache = setup
    spec = registry.get("pca")
    fresh = fit_model(spec, prep, {**cfg, "baselines": {**cfg["baselines"],
                                                         "representation_cache": None}},
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
