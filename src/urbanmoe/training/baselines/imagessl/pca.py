"""PCA baseline of Appendix A (Table 2 row "PCA").

scikit-learn PCA on the flattened standardised tiles, fitted on the TRAINING rows only, keeping
``baselines.repr_dim`` components (capped by the rank the training rows allow); every region is
projected onto them. Closed form: no epochs, ``n_params`` = size of the component matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA

from urbanmoe.training.baselines.imagessl.common import standardised_tiles
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool) -> Representation:
    """Top principal components of the pixels (fitted on training rows) for every region."""
    flat = standardised_tiles(prep, b, progress).flatten(1).numpy()
    train = flat[prep.split.train]
    k = min(int(b["repr_dim"]), train.shape[0], train.shape[1])
    pca = PCA(n_components=k, random_state=seed).fit(train)
    feats = pca.transform(flat).astype(np.float32)
    kept = float(pca.explained_variance_ratio_.sum())
    return Representation(feats, int(pca.components_.size), [],
                          f"PCA on pixels, {k} components ({kept:.0%} of training variance)")
