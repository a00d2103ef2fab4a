"""HAFusion reimplemented (``model.name: hafusion``): the learner on a small made-up city of
HAFusion's files (shapes, snapshots, seeding, the loss going down), one ``urbanmoe train`` run
under K folds, the skip without a relation, and the pieces of the loss against hand-computed
values. Tiny sizes throughout; the real sizes are ``benchmarks/bench_hafusion.py``'s."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_dataset

from urbanmoe.config import load_config
from urbanmoe.data.sources.hafusion import GROUPS, RELATIONS, TARGETS, import_hafusion_city
from urbanmoe.data.table import RegionDataset, load_dataset
from urbanmoe.errors import ConfigError
from urbanmoe.evaluation.run import train_run
from urbanmoe.models.baselines.hafusion import (
    HAFusion,
    HAFusionSizes,
    attention_heads,
    cosine_matrix,
    mobility_loss,
)
from urbanmoe.models.baselines.hafusion_layers import ViewFusion
from urbanmoe.training import registry
from urbanmoe.training.baselines.hafusion import learn, resolve_views

N = 40
K = "baselines.hafusion"
TINY = [f"{K}.dim=8", f"{K}.blocks=[1,1,1]", f"{K}.heads=2", f"{K}.d_prime=4", f"{K}.d_m=4",
        f"{K}.c=4", f"{K}.feedforward=16"]
UPSTREAM_INPUTS = [f"{K}.mobility_input=mobility_dist",
                   f"{K}.similarity={{pois: poi_similarity, landuse: landuse_similarity}}"]


def fake_city(root: Path, n: int = N) -> Path:
    """A HAFusion-shaped city folder: labels from the POIs, asymmetric trip counts."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    pois = rng.poisson(3, (n, 26)).astype(np.int32)
    for f, _ in TARGETS.values():
        np.save(root / f, (pois.sum(1) * rng.uniform(5, 20, n)).astype(np.int64))
    np.save(root / GROUPS["poi"], pois)
    np.save(root / GROUPS["landuse"], rng.poisson(2, (n, 11)).astype(np.int32))
    trips = rng.poisson(1.0, (n, n)).astype(np.float64)  # plus a few strong flows per row
    trips[np.arange(n)[:, None], rng.integers(0, n, (n, 3))] += rng.poisson(200, (n, 3))
    for name, f in RELATIONS.items():
        if name.endswith("similarity"):
            m = rng.uniform(0, 1, (n, n))
            m = (m + m.T) / 2
            np.fill_diagonal(m, 1.0)
            np.save(root / f, m)
        else:
            np.save(root / f, trips + rng.poisson(1, (n, n)))
    return root


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hafusion")
    return import_hafusion_city(fake_city(root / "data_NY"), root / "NY")


@pytest.fixture(scope="module")
def ds(city: Path) -> RegionDataset:
    return load_dataset(city)


def _fit(ds: RegionDataset, seed: int, *extra: str):  # noqa: ANN202
    b = load_config(None, ["model.name=hafusion", *TINY, *extra])["baselines"]
    return learn(types.SimpleNamespace(ds=ds), b, seed, "cpu", progress=False)


def test_a_fit_gives_finite_features_snapshots_and_is_seeded(ds: RegionDataset) -> None:
    extra = (f"{K}.epochs=4", f"{K}.snapshot_every=2", *UPSTREAM_INPUTS)
    rep = _fit(ds, 0, *extra)
    assert rep.features.shape == (N, 8) and rep.features.dtype == np.float32
    assert np.isfinite(rep.features).all()
    assert sorted(rep.snapshots) == [0, 2, 3]  # 0-based epochs, the last one included
    assert np.array_equal(rep.snapshots[3], rep.features)
    assert len(rep.loss_history) == 4 and np.isfinite(rep.loss_history).all()
    assert rep.n_params > 0
    assert rep.note.startswith("HAFusion reimplemented; views ")
    assert "mobility_dist" in rep.note and "mobility loss on mobility" in rep.note
    again = _fit(ds, 0, *extra)
    assert np.array_equal(again.features, rep.features)
    assert again.loss_history == rep.loss_history
    other = _fit(ds, 1, *extra)
    assert not np.allclose(other.features, rep.features)


def test_the_loss_goes_down(ds: RegionDataset) -> None:
    rep = _fit(ds, 0, f"{K}.epochs=30", f"{K}.lr=0.005")
    h = rep.loss_history
    assert np.mean(h[-5:]) < 0.99 * np.mean(h[:3]), h  # the floor: the trips' own entropy


def test_views_default_to_every_group_and_the_mobility_relation(ds: RegionDataset) -> None:
    s = load_config(None, ["model.name=hafusion"])["baselines"]["hafusion"]
    assert resolve_views(ds, s) == ([*ds.feature_groups, "mobility"], "mobility", "mobility")
    s = {**s, "views": ["pois", "mobility_dist"], "mobility_input": "mobility_dist"}
    assert resolve_views(ds, s) == (["pois", "mobility_dist"], "mobility", "mobility_dist")
    with pytest.raises(ConfigError, match="neither a feature group"):
        resolve_views(ds, {**s, "views": ["nope"]})
    with pytest.raises(ConfigError, match="not a reconstructed view"):
        resolve_views(ds, {**s, "similarity": {"mobility_dist": "poi_similarity"}})


def test_heads_fall_back_to_a_divisor_of_the_region_count() -> None:
    assert attention_heads(180, 4) == 4 and attention_heads(77, 4) == 1
    assert attention_heads(175, 5) == 5 and attention_heads(175, 4) == 1
    assert attention_heads(24, 5) == 4


def test_the_loss_terms_match_their_definitions() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    m = torch.rand(5, 5, generator=g)
    want = 0.0
    for a, b, w in ((s, t, m), (t, s, m.T)):
        logits = (a @ b.T).numpy()
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        want += float(-(w.numpy() * np.log(p + 1e-4)).sum())
    assert mobility_loss(s, t, m).item() == pytest.approx(want, rel=1e-5)
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    c = cosine_matrix(x)
    assert c[0, 1].item() == pytest.approx(2 ** -0.5) and c[2].abs().sum() == 0
    w = ViewFusion(4, 3)(torch.randn(2, 4, 4, generator=g))
    assert w.shape == (2,) and w.sum().item() == pytest.approx(1.0)


def test_the_model_takes_any_number_of_views() -> None:
    sizes = HAFusionSizes(dim=6, blocks=(1, 2, 1), heads=2, d_prime=3, d_m=5, c=2,
                          feedforward=8)
    model = HAFusion(10, [7, None], [True, False], sizes)
    out = model([torch.rand(10, 7), torch.rand(10, 10)])
    assert out["embedding"].shape == (10, 6) and out["views"][1] is None
    assert out["view_weights"].shape == (2,)
    with pytest.raises(ValueError, match="do not divide"):
        HAFusion(10, [7], [True], HAFusionSizes(heads=3))


def test_train_runs_end_to_end_under_kfold(city: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [f"features.cache_dir={tmp_path / 'cache'}", "model.name=hafusion",
                             "split.kind=kfold", "split.folds=3", f"{K}.epochs=3",
                             "train.max_epochs=5", "train.patience=2",
                             "baselines.head_patience=2", "baselines.head_hidden=8",
                             f"baselines.cache_dir={tmp_path / 'bcache'}", *TINY,
                             *UPSTREAM_INPUTS])
    metrics = train_run(city, 0, tmp_path / "run", cfg, progress=False)
    assert "skipped" not in metrics
    on_disk = json.loads((tmp_path / "run/metrics.json").read_text())
    assert on_disk["split"]["kind"] == "kfold" and len(on_disk["folds"]) == 3
    assert np.isfinite(on_disk["log_scale"]["avg"]["r2"])
    assert any(n.startswith("HAFusion reimplemented") for n in on_disk["notes"])
    assert len(pd.read_parquet(tmp_path / "run/predictions.parquet")) == N
    # it never reads the labels or the split: learned once for the three folds
    assert len(list((tmp_path / "bcache").glob("hafusion-seed0-*.npz"))) == 1


def test_a_dataset_without_relations_is_skipped(tmp_path: Path,
                                                toy_table: pd.DataFrame) -> None:
    root = write_dataset(tmp_path / "toy", toy_table)
    cfg = load_config(None, [f"features.cache_dir={tmp_path / 'cache'}", "model.name=hafusion"])
    reason = registry.skip_reason(registry.get("hafusion"), load_dataset(root), cfg["model"])
    assert reason is not None and reason.startswith("HAFusion needs a region x region relation")
    metrics = train_run(root, 0, tmp_path / "run", cfg, progress=False)
    assert metrics["skipped"] == reason
