"""Splits: the paper's random 60/20/20 and spatial blocks."""

from __future__ import annotations

import numpy as np
import pytest

from urbanmoe.data.splits import block_ids, make_split


def _coords(n: int = 900, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([31.0 + rng.random(n) * 0.5, 121.0 + rng.random(n) * 0.5], axis=1)


@pytest.mark.parametrize("kind", ["random", "spatial_block"])
def test_partition_is_disjoint_complete_and_seeded(kind: str) -> None:
    coords = _coords()
    s = make_split(len(coords), coords, kind, (0.6, 0.2, 0.2), seed=3, block_km=5.0)
    allidx = np.concatenate([s.train, s.val, s.test])
    assert sorted(allidx) == list(range(len(coords)))
    assert abs(len(s.train) / len(coords) - 0.6) < 0.08
    again = make_split(len(coords), coords, kind, (0.6, 0.2, 0.2), seed=3, block_km=5.0)
    other = make_split(len(coords), coords, kind, (0.6, 0.2, 0.2), seed=4, block_km=5.0)
    assert np.array_equal(s.test, again.test) and not np.array_equal(s.test, other.test)


def test_random_split_sizes_are_exact() -> None:
    s = make_split(1558, None, "random", (0.6, 0.2, 0.2), seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (935, 312, 311)


def test_spatial_blocks_never_straddle_parts() -> None:
    coords = _coords()
    s = make_split(len(coords), coords, "spatial_block", (0.6, 0.2, 0.2), seed=0, block_km=5.0)
    blocks = block_ids(coords, 5.0)
    parts = [set(blocks[s.train]), set(blocks[s.val]), set(blocks[s.test])]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])


def test_spatial_split_needs_coordinates_and_blocks() -> None:
    with pytest.raises(ValueError, match="lat/lon"):
        make_split(10, None, "spatial_block", (0.6, 0.2, 0.2), seed=0)
    with pytest.raises(ValueError, match="smaller split.block_km"):
        make_split(900, _coords(), "spatial_block", (0.6, 0.2, 0.2), seed=0, block_km=500.0)
