"""Neural baselines of Table 2 (training/baselines/neural.py, models/baselines/mmoe.py):
learning, MMoE and PLE/CGC gates, parameter matching with UrbanMoE, determinism."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from urbanmoe.config import load_config
from urbanmoe.data.table import load_dataset
from urbanmoe.evaluation.metrics import multitask_metrics
from urbanmoe.models.baselines.mmoe import ple_split
from urbanmoe.runtime.efficiency import count_parameters
from urbanmoe.training.baselines import neural
from urbanmoe.training.loop import TrainData, fit, predict
from urbanmoe.training.prepare import Prepared, prepare

SMALL = ["baselines.mlp_hidden=32", "baselines.head_hidden=16", "baselines.moe_experts=4",
         "baselines.match_params=false", "model.expert_hidden=16", "model.expert_out=16",
         "train.max_epochs=40", "train.patience=5", "train.batch_size=128"]
BUILDERS = {"mlp_st": neural.build_mlp_st, "mlp_mt": neural.build_shared_bottom,
            "mmoe": neural.build_mmoe, "ple": neural.build_ple,
            "frozen_head": neural.build_frozen_head}
R2_BAR = 0.5  # measured 0.72-0.81 on synthetic SH; the mean predictor scores ~0


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine two threads mostly wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small(synth_sh: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Prepared]:
    """Small-width config and synthetic SH prepared for seed 0."""
    cache = tmp_path_factory.mktemp("cache")
    cfg = load_config(None, [f"features.cache_dir={cache}", *SMALL])
    return cfg, prepare(load_dataset(synth_sh), cfg, seed=0, cache_dir=cache, progress=False)


def _fit_predict(cfg: dict, prep: Prepared, name: str) -> np.ndarray:
    """Standardised test predictions (n_test, T); single-task models are fitted per task."""
    t = cfg["train"]
    per_task = [[task] for task in prep.tasks] if name == "mlp_st" else [prep.tasks]
    preds = []
    for tasks in per_task:
        cols = [prep.tasks.index(task) for task in tasks]
        data = TrainData(prep.data.inputs, prep.data.y[:, cols], prep.data.observed[:, cols])
        model = BUILDERS[name](cfg["model"], cfg["baselines"], prep, tasks, 0)
        fit(model, data, prep.index("train"), prep.index("val"), lr=t["lr"],
            region_lr=t["region_lr"], weight_decay=t["weight_decay"],
            batch_size=t["batch_size"], max_epochs=t["max_epochs"], patience=t["patience"],
            loss_weights=torch.ones(len(tasks)), generator=torch.Generator().manual_seed(0),
            progress=False)
        preds.append(predict(model, data, prep.index("test")).numpy())
    return np.concatenate(preds, axis=1)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_learns_beyond_the_mean(small: tuple[dict, Prepared], name: str) -> None:
    cfg, prep = small
    test = prep.split.test
    pred = _fit_predict(cfg, prep, name)
    assert pred.shape == (len(test), len(prep.tasks))
    y = np.where(prep.data.observed[test].numpy(), prep.data.y[test].numpy(), np.nan)
    r2 = multitask_metrics(y, pred, prep.tasks)["avg"]["r2"]
    assert r2 > R2_BAR, (name, r2)


def _batch(prep: Prepared, n: int = 32) -> dict[str, torch.Tensor]:
    return prep.data.batch(prep.index("test")[:n])


def test_inputs_are_urbanmoes(small: tuple[dict, Prepared]) -> None:
    cfg, prep = small
    m, b = cfg["model"], cfg["baselines"]
    model = neural.build_shared_bottom(m, b, prep, prep.tasks, 0)
    d_r = model.region.d_r
    assert model.inputs(_batch(prep)).shape[1] == sum(prep.branch_dims.values()) + d_r + 15
    assert any(n.startswith("region.") for n, _ in model.named_parameters())
    head = neural.build_frozen_head(m, b, prep, prep.tasks, 0)
    assert head.keys == list(prep.branch_dims)  # frozen features only: no r, no POI
    off = neural.build_mmoe({**m, "use_region": False, "use_poi": False}, b, prep, prep.tasks, 0)
    assert off.region is None
    assert off.inputs(_batch(prep)).shape[1] == sum(prep.branch_dims.values())


def test_mmoe_gates_are_dense_softmax_over_all_experts(small: tuple[dict, Prepared]) -> None:
    cfg, prep = small
    b = cfg["baselines"]
    model = neural.build_mmoe(cfg["model"], b, prep, prep.tasks, 0)
    out = model(_batch(prep))
    assert out.shape == (32, len(prep.tasks))
    assert set(model.last_gates) == set(prep.tasks)
    for task, g in model.last_gates.items():
        assert g.shape == (32, b["moe_experts"])
        assert model.body.gate_experts[task] == list(range(b["moe_experts"]))
        torch.testing.assert_close(g.sum(dim=1), torch.ones(32))
        assert (g > 0).all()  # dense: every expert gets weight


def test_ple_gates_span_own_specific_and_shared_experts(small: tuple[dict, Prepared]) -> None:
    cfg, prep = small
    b = {**cfg["baselines"], "moe_experts": 8}
    n_sp, n_sh = ple_split(8, len(prep.tasks))
    assert (n_sp, n_sh) == (2, 2)
    model = neural.build_ple(cfg["model"], b, prep, prep.tasks, 0)
    body = model.body
    assert body.experts.n_experts == len(prep.tasks) * n_sp + n_sh
    shared = set(range(len(prep.tasks) * n_sp, body.experts.n_experts))
    pred = model(_batch(prep))
    for j, task in enumerate(prep.tasks):
        own = set(range(j * n_sp, (j + 1) * n_sp))
        assert set(body.gate_experts[task]) == own | shared
        g = model.last_gates[task]
        assert g.shape == (32, n_sp + n_sh)
        torch.testing.assert_close(g.sum(dim=1), torch.ones(32))
        # task j's prediction depends on its own and the shared experts, on no other task's
        (grad,) = torch.autograd.grad(pred[:, j].sum(), body.experts.w1, retain_graph=True)
        used = {e for e in range(body.experts.n_experts) if grad[e].abs().sum() > 0}
        assert used == own | shared, (task, used)


@pytest.mark.parametrize("sizes", [[], ["model.n_specific=2", "model.n_dual=1",
                                        "model.n_shared=1", "model.expert_hidden=32"]])
def test_match_params_matches_urbanmoe(small: tuple[dict, Prepared], tmp_path: Path,
                                       sizes: list[str]) -> None:
    _, prep = small
    cfg = load_config(None, [f"features.cache_dir={tmp_path}", *sizes])
    m, b = cfg["model"], cfg["baselines"]
    assert b["match_params"]
    target = neural.urbanmoe_parameters(m, prep, prep.tasks, 0)
    for build in (neural.build_mmoe, neural.build_ple):
        n = count_parameters(build(m, b, prep, prep.tasks, 0))
        assert abs(n - target) <= 0.1 * target, (build.__name__, n, target)
        unmatched = count_parameters(build(m, {**b, "match_params": False}, prep, prep.tasks, 0))
        assert unmatched != n


@pytest.mark.parametrize("name", list(BUILDERS))
def test_same_seed_same_predictions(small: tuple[dict, Prepared], name: str) -> None:
    cfg, prep = small
    tasks = prep.tasks[:1] if name == "mlp_st" else prep.tasks
    batch = _batch(prep)

    def out(seed: int) -> torch.Tensor:
        model = BUILDERS[name](cfg["model"], cfg["baselines"], prep, tasks, seed).eval()
        with torch.no_grad():
            return model(batch)

    a = out(3)
    assert a.shape == (32, len(tasks))
    torch.testing.assert_close(a, out(3), rtol=0, atol=0)
    assert not torch.equal(a, out(4))
