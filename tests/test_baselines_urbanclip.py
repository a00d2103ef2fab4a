"""UrbanCLIP (ST/MT) of Table 2 (Appendix A): contrastive image-text fine-tuning of the offline
``urbanmoe-tiny`` open_clip model on the synthetic SH city, with small settings."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from conftest import prepared_sh_fixture
from sklearn.linear_model import RidgeCV

from urbanmoe.data.table import DataError
from urbanmoe.evaluation.metrics import multitask_metrics
from urbanmoe.models.baselines.urbanclip import TINY, build_model
from urbanmoe.training.baselines import urbanclip
from urbanmoe.training.baselines.urbanclip import learn
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation

EPOCHS = 3
SMALL = [f"baselines.urbanclip.epochs={EPOCHS}", "baselines.image_size=16",
         "model.branches=[image]"]
R2_MARGIN = 0.4  # average test R² over the mean predictor's (~0); measured 0.70-0.74, seeds 0-2
IMAGE_R2_MARGIN = 0.3  # the image half alone (what UrbanCLIP's head reads); measured 0.67-0.73
EMBED = 128  # urbanmoe-tiny's embed_dim


# (Prepared, config) of SH; tiles read once per dataset for the module, one torch thread
setup = prepared_sh_fixture(urbanclip, SMALL)


@pytest.fixture(scope="module")
def rep(setup: tuple[Prepared, dict]) -> Representation:
    prep, cfg = setup
    return learn(prep, cfg["baselines"], 0, "cpu", progress=False)


def _with(b: dict, **urbanclip: object) -> dict:
    return {**b, "urbanclip": {**b["urbanclip"], **urbanclip}}


def _ridge_r2(x: np.ndarray, prep: Prepared) -> float:
    """Average test R² of a RidgeCV per task from ``x`` (train rows) to the standardised y."""
    y, obs = prep.data.y.numpy(), prep.data.observed.numpy()
    train, test = prep.split.train, prep.split.test
    pred = np.zeros((len(test), len(prep.tasks)))
    for j in range(len(prep.tasks)):
        rows = train[obs[train, j]]
        pred[:, j] = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x[rows], y[rows, j]).predict(
            x[test])
    truth = np.where(obs[test], y[test], np.nan)
    return multitask_metrics(truth, pred, prep.tasks)["avg"]["r2"]


def test_contrastive_loss_decreases(rep: Representation) -> None:
    hist = rep.loss_history
    assert len(hist) == EPOCHS and all(math.isfinite(v) for v in hist)
    assert hist[0] <= math.log(64) + 0.1  # InfoNCE of a batch of 64 starts near chance, ln 64
    assert hist[-1] < hist[0] - 0.2, hist
    assert all(b < a for a, b in zip(hist, hist[1:], strict=False)), hist


def test_features_shape_norms_and_note(rep: Representation, setup: tuple[Prepared, dict]) -> None:
    prep, _ = setup
    x = rep.features
    assert x.shape == (len(prep.ds), 2 * EMBED) and x.dtype == np.float32
    assert np.isfinite(x).all()
    for half in (x[:, :EMBED], x[:, EMBED:]):  # image, then text embedding, each L2-normalised
        np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-4)
        assert np.ptp(half, axis=0).max() > 0.1  # regions differ
    trainable = sum(p.numel() for p in build_model(TINY, None, 0)[0].parameters())
    assert rep.n_params == trainable
    assert rep.note == f"open_clip {TINY}, random init"


def test_features_carry_signal_in_table_order(rep: Representation,
                                              setup: tuple[Prepared, dict]) -> None:
    """Rows out of table order would leave the ridge regression nothing to learn (R² ~ 0)."""
    prep, _ = setup
    assert _ridge_r2(rep.features, prep) > R2_MARGIN
    assert _ridge_r2(rep.features[:, :EMBED], prep) > IMAGE_R2_MARGIN


def test_same_seed_same_features_and_a_valid_checkpoint_loads(
        setup: tuple[Prepared, dict], tmp_path: Path) -> None:
    """On the first 300 regions (130 of them to train on), 2 epochs; the random-init state dict
    saved as a file and loaded again must give the very same run."""
    prep, cfg = setup
    ds = dataclasses.replace(prep.ds, table=prep.ds.table.iloc[:300].reset_index(drop=True))
    train = prep.split.train[prep.split.train < len(ds)][:130]
    small = dataclasses.replace(prep, ds=ds, split=dataclasses.replace(prep.split, train=train))
    b = _with(cfg["baselines"], epochs=2)
    a = learn(small, b, 0, "cpu", progress=False)
    path = tmp_path / "tiny.pt"
    torch.save(build_model(TINY, None, 0)[0].state_dict(), path)
    again = learn(small, _with(b, checkpoint=str(path)), 0, "cpu", progress=False)
    assert a.features.shape == (len(ds), 2 * EMBED)
    np.testing.assert_array_equal(a.features, again.features)
    assert a.loss_history == again.loss_history
    assert again.note == f"open_clip {TINY}, from {path}"
    other = learn(small, b, 1, "cpu", progress=False)
    assert not np.allclose(a.features, other.features)


def test_checkpoint_weights_are_the_ones_used(tmp_path: Path) -> None:
    saved = build_model(TINY, None, 1)[0].state_dict()
    path = tmp_path / "seed1.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in saved.items()}}, path)  # DDP-style
    loaded = build_model(TINY, path, 0)[0].state_dict()
    fresh = build_model(TINY, None, 0)[0].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())
    assert not torch.equal(fresh["visual.conv1.weight"], saved["visual.conv1.weight"])


def test_wrong_checkpoints_are_refused(tmp_path: Path, setup: tuple[Prepared, dict]) -> None:
    other = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(DataError, match=f"not an open_clip {TINY} state dict: .*missing keys"):
        build_model(TINY, other, 0)
    sd = build_model(TINY, None, 0)[0].state_dict()
    sd["positional_embedding"] = torch.zeros(16, 128)  # context 16 instead of 77
    wrong = tmp_path / "shape.pt"
    torch.save(sd, wrong)
    with pytest.raises(DataError, match="1 shape mismatches .*'positional_embedding'"):
        build_model(TINY, wrong, 0)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(DataError, match="cannot be read as a RemoteCLIP checkpoint"):
        build_model(TINY, junk, 0)
    with pytest.raises(DataError, match="file not found"):
        build_model(TINY, tmp_path / "absent.pt", 0)
    prep, cfg = setup  # learn() refuses before any training
    with pytest.raises(DataError, match="not an open_clip"):
        learn(prep, _with(cfg["baselines"], checkpoint=str(other)), 0, "cpu", progress=False)


def test_offline_configs_and_one_line_errors(setup: tuple[Prepared, dict]) -> None:
    model, tokenizer = build_model(TINY, None, 0)
    assert TINY in open_clip.list_models()
    assert isinstance(tokenizer, open_clip.SimpleTokenizer)
    assert tokenizer(["a city"]).shape == (1, 77)
    assert model.visual.image_size == (32, 32)
    with pytest.raises(ValueError, match="unknown open_clip architecture 'no-such-arch'"):
        build_model("no-such-arch", None, 0)
    with pytest.raises(ValueError, match="Hugging Face"):
        build_model("xlm-roberta-base-ViT-B-32", None, 0)
    prep, cfg = setup
    no_text = dataclasses.replace(prep.ds, table=prep.ds.table.drop(columns="text"))
    with pytest.raises(ValueError, match="no text column"):
        learn(dataclasses.replace(prep, ds=no_text), cfg["baselines"], 0, "cpu", progress=False)
