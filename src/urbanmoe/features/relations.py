"""A relation's row profile: how every model that takes no graph takes a region x region
relation (``data/relations.py``), as a feature group of its own.

Region i's profile of relation R is its row of weights, log1p-transformed (flows are heavy
tailed; a similarity in [0, 1] is barely changed): ``log1p(R[i, :])`` when R is symmetric, and
``[log1p(R[i, :]), log1p(R[:, i])]`` (out-flows, then in-flows) when it is not. A profile wider
than ``features.relations.max_dim`` is reduced by a seeded truncated SVD (scikit-learn) to at
most that many components, so that a city of many thousand regions gets a feature group of
bounded width; the SVD reads no label. Standardised on the training rows like every modality
(``training/prepare.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import sparse

from urbanmoe.data.table import RegionDataset


def relation_profile(ds: RegionDataset, name: str, settings: Mapping[str, Any]) -> np.ndarray:
    """(N, d) float32 row profile of relation ``name`` (``settings`` = ``features.relations``)."""
    m = ds.relations[name].csr(ds.ids)
    asymmetric = abs(m - m.T).max() > 0
    x = sparse.hstack([m, m.T.tocsr()], format="csr") if asymmetric else m.copy()
    x.data = np.log1p(x.data)
    max_dim = int(settings["max_dim"])
    if x.shape[1] <= max_dim:
        return x.toarray().astype(np.float32)
    from sklearn.decomposition import TruncatedSVD

    k = max(1, min(max_dim, x.shape[0] - 1, x.shape[1] - 1))
    svd = TruncatedSVD(n_components=k, random_state=int(settings["seed"]))
    return svd.fit_transform(x).astype(np.float32)
