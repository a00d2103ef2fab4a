"""Tests of the UrbanMoE model (Section 2, Eq. 1-7; Table 2 parameter counts; Table 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from urbanmoe.models import (
    PAPER_LAYOUT,
    TABLE5_PRESETS,
    ExpertLayout,
    ExpertShape,
    FourierRegionEmbedding,
    GridRegionEmbedding,
    LookupRegionEmbedding,
    LoopExperts,
    SparseMultiExpert,
    SparseRouter,
    StackedExperts,
    UrbanMoE,
    build_region_embedding,
    build_single_task,
    count_parameters,
    layout_from_preset,
    sparse_threshold,
)

TASKS = ["carbon", "population", "light"]


# --------------------------------------------------------------------------- layout
@pytest.mark.parametrize("preset", sorted(TABLE5_PRESETS))
def test_table5_eligibility(preset: str) -> None:
    layout = layout_from_preset(preset)
    n_sp, n_sh, n_dt = TABLE5_PRESETS[preset]
    mask = layout.eligibility  # (T, E)
    assert mask.shape == (3, layout.n_experts)
    assert mask.sum(dim=1).tolist() == [16, 16, 16]
    assert layout.n_eligible == (16, 16, 16)
    kinds, owners = layout.expert_kinds, layout.expert_owners()
    for m, (kind, own) in enumerate(zip(kinds, owners, strict=True)):
        assert mask[:, m].nonzero().squeeze(1).tolist() == list(own)
        if kind == "shared":
            assert mask[:, m].all()
        elif kind == "dual":
            third = ({0, 1, 2} - set(own)).pop()
            assert len(own) == 2 and not mask[third, m]
        else:
            assert mask[:, m].sum() == 1
    assert kinds.count("specific") == 3 * n_sp
    assert kinds.count("dual") == 3 * n_dt
    assert kinds.count("shared") == n_sh


def test_paper_layout_and_labels() -> None:
    assert PAPER_LAYOUT.n_experts == 34
    labels = PAPER_LAYOUT.expert_labels(TASKS)
    assert labels[:8] == ["specific:carbon"] * 8
    assert labels[16:24] == ["specific:light"] * 8
    assert labels[24:26] == ["dual:carbon-population"] * 2
    assert labels[26:28] == ["dual:carbon-light"] * 2
    assert labels[28:30] == ["dual:population-light"] * 2
    assert labels[30:] == ["shared"] * 4


def test_layout_single_and_four_tasks() -> None:
    one = ExpertLayout(1, 16, 5, 0)  # n_dual ignored: no pairs
    assert one.n_experts == 16 and one.pairs == [] and one.eligibility.all()
    four = ExpertLayout(4, 2, 1, 3)
    assert four.pairs == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert four.n_experts == 4 * 2 + 6 + 3
    mask = four.eligibility
    assert mask.sum(dim=1).tolist() == [2 + 3 + 3] * 4
    dual_cols = [m for m, k in enumerate(four.expert_kinds) if k == "dual"]
    for m, pair in zip(dual_cols, four.pairs, strict=True):
        assert mask[:, m].nonzero().squeeze(1).tolist() == list(pair)
    with pytest.raises(ValueError):
        ExpertLayout(1, 0, 4, 0)  # the single task would have no expert


# --------------------------------------------------------------------------- router (Eq. 4-5)
def _router_with_probs(layout: ExpertLayout, d_in: int, eps: float) -> SparseRouter:
    router = SparseRouter(d_in, layout, eps)
    with torch.no_grad():
        router.gate.weight.zero_()
        router.gate.bias.copy_(torch.linspace(-6.0, 2.0, router.gate.bias.numel()))
    return router


def test_threshold_boundaries_exact() -> None:
    layout = ExpertLayout(3, 2, 1, 1)
    router = _router_with_probs(layout, d_in=4, eps=0.0)
    z = torch.randn(5, 4)
    probs = router.probabilities(z)  # (B, T, E), identical rows since W = 0
    p = probs[0, 0][layout.eligibility[0]]
    target = p.sort().values[1]  # the 2nd smallest gate of task 0
    for eps, kept in [
        (target.item(), False),  # gate == eps -> zeroed
        (torch.nextafter(target, torch.tensor(0.0)).item(), True),  # eps just below -> kept
        (torch.nextafter(target, torch.tensor(1.0)).item(), False),  # eps just above -> zeroed
    ]:
        router.eps = eps
        g = router(z)
        pos = (probs[0, 0] == target).nonzero().squeeze(1)
        assert bool((g[:, 0, pos] > 0).all()) == kept
        expected = torch.where(probs > eps, probs, torch.zeros(()))
        assert torch.equal(g, expected)
        assert torch.equal(g[:, ~layout.eligibility], torch.zeros_like(g[:, ~layout.eligibility]))
    # something was cut: rows sum to < 1, kept weights are the raw softmax (no renormalisation)
    router.eps = target.item()
    g = router(z)
    assert (g.sum(-1) < 1.0).all()
    assert torch.equal(g[g > 0], probs[g > 0])


def test_sparse_threshold_values_and_gradient() -> None:
    eps = 0.25  # exactly representable
    g = torch.tensor([0.25, 0.2500001, 0.2499999, 0.0, 0.7], requires_grad=True)
    out = sparse_threshold(g, eps)
    assert out.tolist() == pytest.approx([0.0, 0.2500001, 0.0, 0.0, 0.7])
    assert out[0].item() == 0.0 and out[2].item() == 0.0
    out.sum().backward()
    assert g.grad.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


def test_router_matches_per_task_softmax() -> None:
    torch.manual_seed(0)
    layout = PAPER_LAYOUT
    router = SparseRouter(7, layout, eps=0.05)
    assert count_parameters(router) == 3 * (7 * 16 + 16)
    z = torch.randn(6, 7)
    g = router(z)
    for t in range(3):
        w, b, idx = router.task_parameters(t)
        assert idx.tolist() == layout.eligibility[t].nonzero().squeeze(1).tolist()
        ref = torch.softmax(z @ w.T + b, dim=-1)  # (B, M_τ)
        ref = torch.where(ref > 0.05, ref, torch.zeros(()))
        dense = torch.zeros(6, layout.n_experts)
        dense[:, idx] = ref
        torch.testing.assert_close(g[:, t], dense)


# --------------------------------------------------------------------------- experts / SME
@pytest.mark.parametrize("output_norm", ["layernorm", "sigmoid", "none"])
def test_stacked_equals_loop(output_norm: str) -> None:
    torch.manual_seed(1)
    stacked = StackedExperts(5, 11, ExpertShape(8, 6, "gelu", output_norm))
    loop = LoopExperts.from_stacked(stacked)
    assert count_parameters(loop) == count_parameters(stacked)
    z = torch.randn(9, 11)
    torch.testing.assert_close(stacked(z), loop(z), atol=1e-5, rtol=1e-5)
    assert stacked(z).shape == (9, 5, 6)


def test_expert_shape_checks_its_options() -> None:
    assert ExpertShape() == ExpertShape(128, 96, "gelu", "layernorm")
    with pytest.raises(ValueError, match=">= 1"):
        ExpertShape(0, 4)
    with pytest.raises(ValueError, match="activation"):
        ExpertShape(8, 4, activation="swish")
    with pytest.raises(ValueError, match="output_norm"):
        ExpertShape(8, 4, output_norm="batchnorm")


def test_sme_matches_naive_loop() -> None:
    torch.manual_seed(2)
    layout = ExpertLayout(3, 2, 1, 2)
    sme = SparseMultiExpert(10, layout, ExpertShape(8, 4), eps=0.05)
    z = torch.randn(7, 10)
    out = sme(z)
    assert out.fused.shape == (7, 3, 4)
    assert out.gates.shape == (7, 3, layout.n_experts)
    assert out.expert_outputs.shape == (7, layout.n_experts, 4)
    loop = LoopExperts.from_stacked(sme.experts)
    ref = torch.zeros(7, 3, 4)
    for b in range(7):
        experts_b = loop(z[b : b + 1])[0]  # (E, o)
        for t in range(3):
            w, bias, idx = sme.router.task_parameters(t)
            p = torch.softmax(z[b] @ w.T + bias, dim=-1)
            for k, m in enumerate(idx.tolist()):
                if p[k] > 0.05:
                    ref[b, t] += p[k] * experts_b[m]
    torch.testing.assert_close(out.fused, ref, atol=1e-5, rtol=1e-5)
    assert (out.gates > 0).sum() < layout.eligibility.sum() * 7  # some gates were cut


def test_gradients_only_reach_surviving_experts() -> None:
    torch.manual_seed(3)
    layout = ExpertLayout(3, 2, 1, 1)
    sme = SparseMultiExpert(6, layout, ExpertShape(5, 4), eps=0.01)
    dead = 1  # the 2nd specific expert of task 0: only task 0 can use it
    with torch.no_grad():
        sme.router.gate.weight.zero_()
        sme.router.gate.bias.zero_()
        _, _, idx0 = sme.router.task_parameters(0)
        row = int((idx0 == dead).nonzero())  # task 0's rows come first in the packed Linear
        sme.router.gate.bias[row] = -20.0  # its gate ~ 1e-9 < eps for every input
    out = sme(torch.randn(8, 6))
    assert (out.gates[..., dead] == 0).all()
    out.fused.pow(2).sum().backward()
    assert torch.count_nonzero(sme.experts.w1.grad[dead]) == 0
    assert torch.count_nonzero(sme.experts.b2.grad[dead]) == 0
    alive = [m for m in range(layout.n_experts) if m != dead]
    for m in alive:
        assert torch.count_nonzero(sme.experts.w1.grad[m]) > 0
    assert torch.count_nonzero(sme.router.gate.weight.grad) > 0


# --------------------------------------------------------------------------- parameter counts
def test_parameter_counts_match_table2() -> None:
    dims = {"image": 512, "text": 512}
    mt = UrbanMoE(dims, 15, TASKS, PAPER_LAYOUT, region=LookupRegionEmbedding(1558, 6))
    assert mt.branches["image"].d_in == 533
    n_mt = count_parameters(mt)
    assert abs(n_mt - 5.50e6) / 5.50e6 < 0.10, n_mt
    n_st = sum(
        count_parameters(build_single_task(dims, 15, t, region=LookupRegionEmbedding(1558, 6)))
        for t in TASKS
    )
    assert abs(n_st - 7.75e6) / 7.75e6 < 0.10, n_st
    assert (n_mt, n_st) == (5_587_911, 7_867_215)  # the figures documented in urbanmoe.py


# --------------------------------------------------------------------------- full model
def _coords(k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(30.7, 31.6, k), rng.uniform(120.9, 121.9, k)])


def _batch(b: int, dims: dict[str, int], n_poi: int, n_regions: int = 20) -> dict:
    batch = {name: torch.randn(b, d) for name, d in dims.items()}
    if n_poi:
        batch["poi"] = torch.randn(b, n_poi)
    batch["region_index"] = torch.randint(0, n_regions, (b,))
    batch["coords"] = torch.from_numpy(_coords(b, seed=b)).float()
    return batch


@pytest.mark.parametrize(
    ("dims", "n_poi", "use_region", "layout"),
    [
        ({"image": 12, "text": 10}, 5, True, ExpertLayout(3, 2, 1, 2)),
        ({"image": 12}, 5, True, ExpertLayout(3, 2, 1, 2)),  # one branch
        ({"image": 12, "text": 10}, 0, True, ExpertLayout(3, 2, 1, 2)),  # no POI
        ({"image": 12, "text": 10}, 5, False, ExpertLayout(3, 2, 1, 2)),  # no region
        ({"image": 12, "text": 10}, 5, True, ExpertLayout(1, 4, 0, 0)),  # T = 1
        ({"text": 10}, 0, False, ExpertLayout(4, 1, 1, 1)),  # T = 4, bare
    ],
)
@pytest.mark.parametrize("batch_size", [1, 6])
def test_model_variants(dims, n_poi, use_region, layout, batch_size) -> None:
    torch.manual_seed(4)
    tasks = [f"t{i}" for i in range(layout.n_tasks)]
    region = LookupRegionEmbedding(20, 3)
    model = UrbanMoE(
        dims,
        n_poi,
        tasks,
        layout,
        d_r=3,
        region=region,
        use_region=use_region,
        expert_shape=ExpertShape(8, 4),
        head_hidden=5,
    )
    batch = _batch(batch_size, dims, n_poi)
    if not n_poi:
        batch.pop("poi", None)
    out = model(batch)
    t, e = layout.n_tasks, layout.n_experts
    assert out.pred.shape == (batch_size, t)
    for name in dims:
        d_in = dims[name] + (3 if use_region else 0) + n_poi
        assert model.branches[name].d_in == d_in
        assert out.gates[name].shape == (batch_size, t, e)
        assert out.expert_outputs[name].shape == (batch_size, e, 4)
        assert out.fused[name].shape == (batch_size, t, 4)
    out.pred.sum().backward()
    assert torch.isfinite(out.pred).all()


@pytest.mark.parametrize("kind", ["lookup", "grid", "fourier"])
def test_region_embedding_kinds(kind: str) -> None:
    torch.manual_seed(5)
    coords_all = _coords(40)
    region = build_region_embedding(kind, 6, 40, coords_all)
    model = UrbanMoE(
        {"image": 12, "text": 10},
        5,
        TASKS,
        PAPER_LAYOUT,
        region=region,
        expert_shape=ExpertShape(8, 4),
        head_hidden=5,
    )
    idx = torch.tensor([0, 3, 39])
    batch = {
        "image": torch.randn(3, 12),
        "text": torch.randn(3, 10),
        "poi": torch.randn(3, 5),
        "region_index": idx,
        "coords": torch.from_numpy(coords_all[idx.numpy()]).float(),
    }
    assert model(batch).pred.shape == (3, 3)
    assert region(idx, batch["coords"]).shape == (3, 6)
    if kind != "lookup":
        with pytest.raises(ValueError, match="coord"):
            region(idx, None)
        with pytest.raises(ValueError, match="coordinates"):
            build_region_embedding(kind, 6, 40, None)


def test_grid_cells_and_fourier_buffers() -> None:
    coords_all = np.array([[31.0, 121.0], [31.0, 121.2], [31.3, 121.0], [31.3, 121.2]])
    grid = GridRegionEmbedding.fit(coords_all, d_r=4, cell_km=5.0)
    assert (grid.n_rows, grid.n_cols) == (7, 4)  # 33.4 km north, 19.1 km east
    cells = grid.cell_index(torch.tensor(coords_all))
    assert cells.tolist() == [0, 3, 24, 27]
    far = grid.cell_index(torch.tensor([[0.0, 0.0], [80.0, 170.0]]))  # clamped to the grid
    assert far.tolist() == [0, 27]
    a = FourierRegionEmbedding.fit(coords_all, d_r=4, seed=7)
    b = FourierRegionEmbedding.fit(coords_all, d_r=4, seed=7)
    assert torch.equal(a.frequencies, b.frequencies)
    assert "frequencies" in dict(a.named_buffers())


def test_determinism_same_seed() -> None:
    def run() -> torch.Tensor:
        torch.manual_seed(123)
        model = UrbanMoE(
            {"image": 12, "text": 10},
            5,
            TASKS,
            PAPER_LAYOUT,
            region=LookupRegionEmbedding(20, 6),
            expert_shape=ExpertShape(8, 4),
        )
        return model(_batch(4, {"image": 12, "text": 10}, 5)).pred

    assert torch.equal(run(), run())


def test_loop_impl_gives_same_model_output() -> None:
    torch.manual_seed(6)
    kwargs = dict(region=None, expert_shape=ExpertShape(8, 4), head_hidden=5)
    dims = {"image": 12, "text": 10}
    fast = UrbanMoE(dims, 5, TASKS, PAPER_LAYOUT, **kwargs)
    slow = UrbanMoE(dims, 5, TASKS, PAPER_LAYOUT, expert_impl="loop", **kwargs)
    slow.heads.load_state_dict(fast.heads.state_dict())
    for name in dims:
        slow.branches[name].router.load_state_dict(fast.branches[name].router.state_dict())
        slow.branches[name].experts.load_stacked_(fast.branches[name].experts)
    batch = _batch(5, dims, 5)
    torch.testing.assert_close(fast(batch).pred, slow(batch).pred, atol=1e-5, rtol=1e-5)
