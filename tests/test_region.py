"""The smooth grid region embedding: continuous in space, nodes learnable, unseen regions served."""

from __future__ import annotations

import numpy as np
import torch

from urbanmoe.models.region import SmoothGridRegionEmbedding, build_region_embedding
from urbanmoe.training.loop import parameter_groups


def _grid() -> tuple[SmoothGridRegionEmbedding, np.ndarray]:
    coords = np.array([[31.0, 121.0], [31.2, 121.3], [31.1, 121.1]])
    emb = build_region_embedding("smooth_grid", 4, len(coords), coords, cell_km=5.0)
    assert isinstance(emb, SmoothGridRegionEmbedding)
    return emb, coords


def test_interpolates_between_nodes() -> None:
    emb, _ = _grid()
    w = emb.embedding.weight.detach()
    node = torch.tensor([[emb.lat0, emb.lon0]], dtype=torch.float64)
    assert torch.allclose(emb(None, node), w[0:1], atol=1e-5)
    # half a cell east of the origin: the mean of the first two nodes of the bottom row
    dlon = np.degrees(2.5 / (6371.0088 * np.cos(np.radians(emb.lat0))))
    mid = torch.tensor([[emb.lat0, emb.lon0 + dlon]], dtype=torch.float64)
    assert torch.allclose(emb(None, mid), (w[0] + w[1]).unsqueeze(0) / 2, atol=1e-3)


def test_neighbours_get_close_vectors_and_outside_points_are_clamped() -> None:
    emb, coords = _grid()
    base = torch.tensor(coords[2:3])
    near = base + torch.tensor([[1e-4, 1e-4]], dtype=torch.float64)
    assert torch.allclose(emb(None, base), emb(None, near), atol=1e-3)
    far = torch.tensor([[60.0, 150.0]], dtype=torch.float64)
    assert torch.isfinite(emb(None, far)).all()


def test_region_parameters_get_their_own_learning_rate() -> None:
    model = torch.nn.Module()
    model.region = _grid()[0]
    model.head = torch.nn.Linear(3, 1)
    groups = parameter_groups(model, region_lr=0.1)
    assert len(groups) == 2 and groups[1]["lr"] == 0.1
    assert groups[1]["params"][0] is model.region.embedding.weight
    assert len(parameter_groups(model, region_lr=None)) == 1
