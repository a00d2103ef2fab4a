"""MVURE (``model.name=mvure``) on a made-up HAFusion-shaped city: its graphs as upstream builds
them, its losses, seeded fits with snapshots, defaults on a city of feature groups and one flow
matrix, a K-fold run, and the skip without relations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import write_dataset
from test_hafusion import fake_city

from urbanmoe.config import load_config
from urbanmoe.data.sources.hafusion import import_hafusion_city
from urbanmoe.data.table import load_dataset
from urbanmoe.errors import ConfigError
from urbanmoe.evaluation.run import train_run
from urbanmoe.models.baselines.mvure import MVURE, mobility_loss, random_inputs, top_k_graph
from urbanmoe.training.baselines.mvure import fit, graph_names, mobility_relation

SMALL = ["baselines.mvure.epochs=12", "baselines.mvure.snapshot_every=5",
         "baselines.mvure.input_dim=16", "baselines.mvure.heads=2", "baselines.mvure.head_dim=4",
         "baselines.mvure.share_dim=8", "baselines.mvure.share_heads=2",
         "baselines.mvure.lr=0.01", "baselines.mvure.mobility_k=5", "baselines.mvure.graph_k=4"]


def _settings(*extra: str) -> dict:
    return load_config(None, [*SMALL, *extra])["baselines"]["mvure"]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mvure")
    return import_hafusion_city(fake_city(root / "data_NY", n=30), root / "NY")


def _upstream_top_k(a: np.ndarray, k: int) -> np.ndarray:
    """``utils.load_data``'s loop as written upstream, then ``adj_to_bias``'s 0/1 pattern."""
    a = a.copy()
    n = a.shape[0]
    for i in range(n):
        a[np.argsort(a[:, i])[:-k], i] = 0
        a[i, np.argsort(a[i, :])[:-k]] = 0
    return (a + np.eye(n)) > 0


def test_graphs_are_thresholded_as_upstream() -> None:
    a = np.random.default_rng(1).permutation(144).reshape(12, 12).astype(float) + 1
    g = top_k_graph(a, 3)
    assert np.array_equal(g, _upstream_top_k(a, 3))
    assert g.diagonal().all() and (g.sum(1) <= 3 + 1 + 12).all()
    assert top_k_graph(a, 50).all()  # k beyond n keeps everything


def test_mobility_loss_is_a_kl_of_upstreams_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(0)
    o, d = torch.randn(9, 4, generator=gen), torch.randn(9, 4, generator=gen)
    flow = torch.rand(9, 9, generator=gen) * (torch.rand(9, 9, generator=gen) > 0.3)
    ce = (-(flow * torch.log_softmax(o @ d.T, 1)).sum()
          - (flow.T * torch.log_softmax(d @ o.T, 1)).sum())
    p, q = flow / flow.sum(1, keepdim=True), flow.T / flow.T.sum(1, keepdim=True)
    kl = (torch.where(flow > 0, flow * torch.log(p / torch.softmax(o @ d.T, 1)), 0).sum()
          + torch.where(flow.T > 0, flow.T * torch.log(q / torch.softmax(d @ o.T, 1)), 0).sum())
    got = mobility_loss(o, d, flow)
    assert got == pytest.approx(float(kl), rel=1e-4) and got >= 0 and got < ce


def test_views_and_shapes() -> None:
    x = random_inputs(7, 10, seed=0)
    assert x.mean(1).abs().max() < 1e-5 and torch.allclose(x.std(1, unbiased=False),
                                                           torch.ones(7), atol=1e-4)
    for over in ("regions", "views"):
        m = MVURE(10, 3, heads=2, head_dim=3, share_dim=4, share_heads=2, share_over=over)
        emb, views = m(x, torch.zeros(3, 7, 7))
        assert emb.shape == (7, 6) and views.shape == (3, 7, 6)
    with pytest.raises(ValueError, match="two mobility views"):
        MVURE(10, 1)


def test_a_seeded_fit(city: Path) -> None:
    ds = load_dataset(city)
    assert mobility_relation(ds, "auto") == "mobility"
    assert graph_names(ds, "auto", "mobility") == ["poi_similarity", "landuse_similarity"]
    rep = fit(ds, _settings(), seed=3)
    assert rep.features.shape == (30, 8) and rep.features.dtype == np.float32
    assert np.isfinite(rep.features).all() and rep.n_params > 0
    assert sorted(rep.snapshots) == [5, 10, 12]
    assert np.array_equal(rep.features, rep.snapshots[12])
    assert len(rep.loss_history) == 12 and rep.loss_history[-1] < rep.loss_history[0]
    assert "'poi_similarity', 'landuse_similarity'" in rep.note
    again = fit(ds, _settings(), seed=3)
    assert np.array_equal(rep.features, again.features)
    assert rep.loss_history == again.loss_history
    assert not np.allclose(rep.features, fit(ds, _settings(), seed=4).features)


def test_defaults_on_feature_groups_and_one_flow_matrix(city: Path, tmp_path: Path) -> None:
    """A user's city: one relation under another name, no similarity relations."""
    own = tmp_path / "own"
    shutil.copytree(city, own)
    meta = yaml.safe_load((own / "dataset.yaml").read_text())
    meta["relations"] = {"trips": meta["relations"]["mobility"]}
    (own / "dataset.yaml").write_text(yaml.safe_dump(meta))
    ds = load_dataset(own)
    assert mobility_relation(ds, "auto") == "trips"
    assert graph_names(ds, "auto", "trips") == list(ds.feature_groups)
    rep = fit(ds, _settings("baselines.mvure.epochs=3"), seed=0)
    assert np.isfinite(rep.features).all() and "'landuse'" in rep.note
    with pytest.raises(ConfigError, match="'nope' is not a relation"):
        fit(ds, _settings("baselines.mvure.mobility=nope"), seed=0)
    with pytest.raises(ConfigError, match="neither a relation nor a feature group"):
        fit(ds, _settings("baselines.mvure.graphs=[trips, nope]"), seed=0)


def test_a_kfold_run_and_the_skip(city: Path, tmp_path: Path, toy_table) -> None:
    cfg = load_config(None, [*SMALL, "model.name=mvure", "split.kind=kfold", "split.folds=3",
                             "train.max_epochs=5", "baselines.head_patience=2",
                             f"features.cache_dir={tmp_path / 'cache'}",
                             f"baselines.cache_dir={tmp_path / 'bcache'}"])
    own = tmp_path / "own"
    shutil.copytree(city, own)
    metrics = train_run(own, 0, tmp_path / "run", cfg, progress=False)
    on_disk = json.loads((tmp_path / "run/metrics.json").read_text())
    assert on_disk["split"]["folds"] == 3 and np.isfinite(on_disk["log_scale"]["avg"]["r2"])
    assert any("MVURE" in n for n in metrics["notes"])
    # label-free: one representation serves every fold of the seed
    assert len(list((tmp_path / "bcache").glob("mvure-seed0-*.npz"))) == 1
    train_run(own, 0, tmp_path / "again", cfg, progress=False)  # read back: no new entry
    assert len(list((tmp_path / "bcache").glob("mvure-seed0-*.npz"))) == 1
    # a relation replaced in place is a new representation
    np.save(own / "relations/mob-adj.npy", np.load(own / "relations/mob-adj.npy")[::-1])
    train_run(own, 0, tmp_path / "own_run", cfg, progress=False)
    assert len(list((tmp_path / "bcache").glob("mvure-seed0-*.npz"))) == 2
    plain = write_dataset(tmp_path / "toy", toy_table)  # POIs and text, no relation
    skipped = train_run(plain, 0, tmp_path / "skip", cfg, progress=False)
    assert "MVURE needs a region x region relation" in skipped["skipped"]
