"""Image-representation baselines of Appendix A / Table 2 (Autoencoder, PCA, ResNet-18, Tile2Vec,
READ, PG-SimCLR) on the synthetic SH city with small settings."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import prepared_sh_fixture
from sklearn.linear_model import RidgeCV

from urbanmoe.evaluation.metrics import multitask_metrics
from urbanmoe.models.baselines.imagessl import common
from urbanmoe.models.baselines.imagessl.pg_simclr import poi_partners
from urbanmoe.models.baselines.imagessl.resnet import load_imagenet
from urbanmoe.models.baselines.imagessl.tile2vec import pick_distant
from urbanmoe.training.baselines.imagessl import common as fitting_common
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation

SMALL = ["baselines.ssl_epochs=4", "baselines.resnet_epochs=4", "baselines.image_size=16",
         "baselines.repr_dim=32", "baselines.ssl_batch_size=128", "model.branches=[image]"]
METHODS = ["autoencoder", "pca", "resnet", "tile2vec", "read", "pg_simclr"]
NEURAL_OBJECTIVES = ["autoencoder", "tile2vec", "read", "pg_simclr"]
R2_MARGIN = 0.4  # average test R² the features must add to the mean predictor's (~0)


# (Prepared, config) of SH; the 1,558 tiles read once for the module, one torch thread
setup = prepared_sh_fixture(fitting_common, SMALL)


def _learn(method: str, prep: Prepared, b: dict, seed: int = 0) -> Representation:
    module = importlib.import_module(f"urbanmoe.training.baselines.imagessl.{method}")
    return module.learn(prep, b, seed, "cpu", False)


@pytest.fixture(scope="module")
def learned(setup: tuple[Prepared, dict]) -> dict[str, Representation]:
    """Each method learned once with seed 0 (shared by the tests below)."""
    prep, cfg = setup
    return {m: _learn(m, prep, cfg["baselines"]) for m in METHODS}


def _test_r2(prep: Prepared, pred: np.ndarray) -> float:
    y, obs = prep.data.y.numpy(), prep.data.observed.numpy()
    te = prep.split.test
    return multitask_metrics(np.where(obs[te], y[te], np.nan), pred, prep.tasks)["avg"]["r2"]


def _ridge_r2(prep: Prepared, feats: np.ndarray) -> float:
    """Average test R² of RidgeCV from the features (fitted on training rows)."""
    tr, te = prep.split.train, prep.split.test
    x = (feats - feats[tr].mean(0)) / (feats[tr].std(0) + 1e-6)
    y, obs = prep.data.y.numpy(), prep.data.observed.numpy()
    fit_rows = tr[obs[tr].all(1)]
    pred = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(x[fit_rows], y[fit_rows]).predict(x[te])
    return _test_r2(prep, pred)


@pytest.mark.parametrize("method", METHODS)
def test_features_shape_order_finite(learned: dict[str, Representation],
                                     setup: tuple[Prepared, dict], method: str) -> None:
    prep, _ = setup
    rep = learned[method]
    assert rep.features.dtype == np.float32
    assert rep.features.ndim == 2 and rep.features.shape[0] == len(prep.ds.ids)
    assert np.isfinite(rep.features).all()
    assert rep.features.std(0).max() > 0  # not a constant
    assert rep.n_params > 0 and rep.note


@pytest.mark.parametrize("method", NEURAL_OBJECTIVES)
def test_objective_decreases(learned: dict[str, Representation], method: str) -> None:
    hist = learned[method].loss_history
    assert len(hist) == 4 and all(np.isfinite(hist))
    assert hist[-1] < hist[0]


@pytest.mark.parametrize("method", METHODS)
def test_features_predict_targets(learned: dict[str, Representation],
                                  setup: tuple[Prepared, dict], method: str) -> None:
    prep, _ = setup
    y = prep.data.y.numpy()[prep.split.train]
    train_mean = np.nanmean(np.where(prep.data.observed.numpy()[prep.split.train], y, np.nan), 0)
    mean_r2 = _test_r2(prep, np.tile(train_mean, (len(prep.split.test), 1)))
    r2 = _ridge_r2(prep, learned[method].features)
    assert r2 > mean_r2 + R2_MARGIN, f"{method}: test R² {r2:.3f}, mean predictor {mean_r2:.3f}"


def test_same_seed_same_features(learned: dict[str, Representation],
                                 setup: tuple[Prepared, dict]) -> None:
    prep, cfg = setup
    again = _learn("pg_simclr", prep, cfg["baselines"], seed=0)
    np.testing.assert_array_equal(again.features, learned["pg_simclr"].features)
    assert again.loss_history == learned["pg_simclr"].loss_history


def test_pca_fitted_on_training_rows(learned: dict[str, Representation],
                                     setup: tuple[Prepared, dict]) -> None:
    prep, _ = setup
    feats = learned["pca"].features
    assert feats.shape[1] == 32
    np.testing.assert_allclose(feats[prep.split.train].mean(0), 0.0, atol=1e-3)
    assert learned["pca"].loss_history == []


def test_resnet_from_scratch_says_so(learned: dict[str, Representation]) -> None:
    rep = learned["resnet"]
    assert rep.features.shape[1] == 512
    assert "from scratch" in rep.note and 0 < len(rep.loss_history) <= 4


def test_resnet_local_weights_loaded(setup: tuple[Prepared, dict], tmp_path: Path) -> None:
    prep, cfg = setup
    with common.seeded(7):
        state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pt"
    torch.save(state, path)
    rep = _learn("resnet", prep, {**cfg["baselines"], "resnet_weights": str(path)})
    assert str(path) in rep.note and rep.loss_history == []
    assert rep.features.shape == (len(prep.ds.ids), 512) and np.isfinite(rep.features).all()
    net = load_imagenet(path, 4)
    torch.testing.assert_close(net.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    rgb = state["conv1.weight"]  # bands B, G, R take ImageNet's blue, green, red filters
    torch.testing.assert_close(net.conv1.weight[:, 0], rgb[:, 2] * 0.75)
    torch.testing.assert_close(net.conv1.weight[:, 2], rgb[:, 0] * 0.75)
    torch.testing.assert_close(net.conv1.weight[:, 3], rgb.mean(1) * 0.75)


@pytest.mark.parametrize("content", ["list", "wrong_keys", "missing"])
def test_resnet_bad_weights_refused(setup: tuple[Prepared, dict], tmp_path: Path,
                                    content: str) -> None:
    prep, cfg = setup
    path = tmp_path / "weights.pt"
    if content == "list":
        torch.save([1, 2, 3], path)
    elif content == "wrong_keys":
        torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"baselines\.resnet_weights: .*weights\.pt") as err:
        _learn("resnet", prep, {**cfg["baselines"], "resnet_weights": str(path)})
    assert "\n" not in str(err.value)


def test_augment_flips_and_rotations_are_exact() -> None:
    """Without cropping, every augmented tile is one of the 8 flips / 90-degree rotations."""
    x = torch.randn(16, 4, 12, 12, generator=torch.Generator().manual_seed(0))
    y = common.augment(x, torch.Generator().manual_seed(1), min_scale=1.0)
    for xi, yi in zip(x, y, strict=True):
        variants = [torch.rot90(v, k, dims=(1, 2)) for v in (xi, xi.flip(2)) for k in range(4)]
        assert any(torch.allclose(yi, v, atol=1e-5) for v in variants)
    again = common.augment(x, torch.Generator().manual_seed(1))
    assert not torch.equal(again, x) and again.shape == x.shape


def test_pairs_respect_the_radius(setup: tuple[Prepared, dict]) -> None:
    prep, _ = setup
    xy = fitting_common.projected_km(prep)
    neighbours = common.spatial_neighbours(xy, 3.0)
    anchors = torch.arange(0, len(xy), 7)
    gen = torch.Generator().manual_seed(0)
    near = common.pick_neighbour(anchors, neighbours, gen)
    far = pick_distant(anchors, xy, 3.0, gen)
    a = anchors.numpy()
    has = near.numpy() >= 0
    assert has.any() and (near.numpy()[has] != a[has]).all()
    assert (np.linalg.norm(xy[near.numpy()[has]] - xy[a[has]], axis=1) <= 3.0).all()
    assert (np.linalg.norm(xy[far.numpy()] - xy[a], axis=1) > 3.0).all()
    alone = common.spatial_neighbours(xy, 1e-3)  # nobody that close: no neighbour (-1)
    assert (common.pick_neighbour(anchors, alone, gen) == -1).all()


def test_poi_partner_is_the_most_similar_nearby_region() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [50.0, 0.0]])
    poi = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [1.0, 0.0]])
    # k=2: region 0's candidates are 1 and 2; 2 shares its POI mix (3 is identical but far)
    assert poi_partners(xy, poi, k=2).tolist()[:3] == [2, 2, 0]
