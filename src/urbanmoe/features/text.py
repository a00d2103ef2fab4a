"""Offline text encoder: TF-IDF + truncated SVD of the region descriptions (an offline e_t).

Fitted on every region's text of the dataset without labels (unsupervised, like a frozen
encoder), seeded, and L2-normalised like CLIP embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from urbanmoe.data.table import DataError, RegionDataset
from urbanmoe.features.base import register


class TfidfTextEncoder:
    """TF-IDF over word uni- and bigrams, then a ``dim``-component truncated SVD."""

    modality = "text"

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed

    def identity(self) -> dict[str, Any]:
        return {"encoder": "tfidf", "dim": self.dim, "seed": self.seed, "version": 1}

    def encode(self, ds: RegionDataset, progress: bool = True) -> np.ndarray:
        # sklearn loads here, not at import: ~2 s saved in runs that read cached features
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import normalize

        texts = ds.texts
        if texts is None:
            raise DataError(f"{ds.table_path}: column 'text': missing; no text modality")
        min_df = 2 if len(texts) >= 20 else 1
        tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True,
                                max_features=50_000)
        try:
            x = tfidf.fit_transform(texts)
        except ValueError as exc:  # e.g. every description empty
            raise DataError(f"{ds.table_path}: column 'text': no usable words ({exc})") from exc
        k = min(self.dim, x.shape[1] - 1, x.shape[0] - 1)
        if k < 1:
            raise DataError(f"{ds.table_path}: column 'text': too few distinct words for SVD")
        z = TruncatedSVD(n_components=k, random_state=self.seed).fit_transform(x)
        if k < self.dim:  # keep the configured width whatever the vocabulary
            z = np.pad(z, ((0, 0), (0, self.dim - k)))
        return normalize(z).astype(np.float32)


@register("text", "tfidf")
def _build(settings: dict[str, Any]) -> TfidfTextEncoder:
    return TfidfTextEncoder(dim=settings.get("dim", 64), seed=settings.get("seed", 0))
