"""HAFusion (Sun et al., "Urban Region Representation Learning with Attentive Fusion",
ICDE 2024, arXiv 2312.04606), reimplemented from the paper and its public code
(``MiRuacle24/HAFusion``: ``HAFusion_Model.py``, ``HAFusion_train.py``, ``utils.py``,
``parse_args.py`` at commit ``1dcee5ab``, where the code files last changed). Our own code;
the fitting loop is ``training/baselines/hafusion.py``.

The model (Section IV, Fig. 2 of the paper; upstream's ``HAFusion`` module):

1. **Inputs** -- one raw row per region and view: a feature view (POI counts (n, 26),
   land-use counts (n, 11 / 12 / 23)) goes through ``Linear(in, n)``, ReLU and dropout; a
   relation view (upstream: the trip counts ``mob_dist.npy``, (n, n)) is taken as it is. The
   hidden width is the number of regions ``n`` throughout, as upstream's ``input_dim =
   region_num``.
2. **DAFusion, intra-view** (Section IV-B, "HALearning" within a view): per view, ``blocks[0]``
   ``IntraAFLBlock``s, then a ``DeepFc`` -- its intra-view embedding ``h_v`` (n, n).
3. **DAFusion, inter-view** (Section IV-C): the views stacked (n, V, n) through ``blocks[1]``
   external-attention blocks in sequence and a ``DeepFc``; mixed with the intra-view embeddings
   by two learnable scalars, ``h'_v = p2/(p1+p2) * inter_v + p1/(p1+p2) * h_v`` (p1 = 0.1,
   p2 = 0.9 at start, as upstream's ``para1``/``para2``).
4. **View fusion** (Section IV-D): view weights from ``ViewFusion``; ``h = sum_v w_v h'_v``.
5. **Region fusion** (Section IV-D): ``blocks[2]`` Transformer encoder layers (post-norm, ReLU,
   feed-forward 2048, dropout) over the regions, a ``DeepFc`` (n -> n) and the output
   ``DeepFc`` (n -> dim = 144): the region embedding.
6. **Decoders** (Section IV-E): linear maps dim -> dim: a source and a target embedding for the
   mobility loss, and one per reconstructed view.

The objective (Section IV-E, Eqs. of the "learning objective"; upstream's ``ModelLoss``):

* ``mobility_loss`` -- MVURE's: with the target trips ``M`` divided by their mean
  (``utils.load_data``), ``sum -M * log(softmax_rows(S T^T) + 1e-4)`` plus the same with
  ``T S^T`` and ``M^T`` (a *sum* over all pairs, not a mean, as upstream);
* ``similarity_loss`` -- per reconstructed view, the mean squared error between the cosine
  similarities of its decoded embeddings and a target similarity matrix (upstream:
  ``poi_simi.npy``, ``landUse_simi.npy``);
* the total is their plain sum (no weights), as upstream.

Generalised beyond upstream's three fixed views: any number of feature views and relation
views. Every view except the mobility input is reconstructed (its target given, else the cosine
similarity of its own raw rows, which is what upstream's similarity files are except New York's
POI one). The mobility view is the mobility input relation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from urbanmoe.models.baselines.hafusion_layers import (
    DeepFc,
    ExternalAttentionBlock,
    IntraAFLBlock,
    ViewFusion,
)

EPS_LOG = 1e-4  # upstream's ``log(phat + 0.0001)``
PARA_INIT = (0.1, 0.9)  # upstream's para1 (intra) and para2 (inter)


@dataclass(frozen=True)
class HAFusionSizes:
    """Architecture sizes (upstream's ``parse_args.py`` per city; New York's by default)."""

    dim: int = 144  # embedding_size
    blocks: tuple[int, int, int] = (3, 3, 3)  # NO_IntraAFL, NO_InterAFL, NO_RegionFusion
    heads: int = 4  # NO_head (intra-view and region-fusion attention)
    d_prime: int = 64  # view fusion
    d_m: int = 72  # external-attention memory slots
    c: int = 32  # channels of the attention-map ("edge") features
    dropout: float = 0.1
    feedforward: int = 2048  # nn.MultiheadAttention blocks' feed-forward width upstream


class IntraAFL(nn.Module):
    """Section IV-B for one view: ``IntraAFLBlock``s then a ``DeepFc`` (n, n) -> (n, n)."""

    def __init__(self, n: int, s: HAFusionSizes, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(IntraAFLBlock(n, heads, s.c, s.dropout, s.feedforward)
                                    for _ in range(s.blocks[0]))
        self.fc = DeepFc(n, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.fc(x)


class HAFusion(nn.Module):
    """HAFusion over ``n`` regions; ``view_dims[v]`` is view v's input width (``None``: a
    relation view, rows of width ``n`` taken as they are); ``recon[v]``: whether view v gets a
    reconstruction decoder. ``heads`` must divide ``n`` (``attention_heads`` picks one)."""

    def __init__(self, n: int, view_dims: Sequence[int | None], recon: Sequence[bool],
                 sizes: HAFusionSizes, heads: int | None = None) -> None:
        super().__init__()
        s, heads = sizes, sizes.heads if heads is None else heads
        if n % heads:
            raise ValueError(f"HAFusion: {heads} attention heads do not divide the width {n}")
        self.n, self.recon = n, list(recon)
        self.inputs = nn.ModuleList(
            nn.Identity() if d is None else nn.Sequential(nn.Linear(d, n), nn.ReLU(),
                                                          nn.Dropout(s.dropout))
            for d in view_dims)
        self.intra = nn.ModuleList(IntraAFL(n, s, heads) for _ in view_dims)
        self.inter = nn.ModuleList(ExternalAttentionBlock(n, s.d_m) for _ in range(s.blocks[1]))
        self.inter_fc = DeepFc(n, n)
        self.p_intra = nn.Parameter(torch.tensor([PARA_INIT[0]]))
        self.p_inter = nn.Parameter(torch.tensor([PARA_INIT[1]]))
        self.view_fusion = ViewFusion(n, s.d_prime)
        self.region_fusion = nn.ModuleList(
            nn.TransformerEncoderLayer(n, heads, dim_feedforward=s.feedforward,
                                       dropout=s.dropout, batch_first=True)
            for _ in range(s.blocks[2]))
        self.region_fc = DeepFc(n, n)
        self.out = DeepFc(n, s.dim)
        self.dec_source, self.dec_target = nn.Linear(s.dim, s.dim), nn.Linear(s.dim, s.dim)
        self.dec_views = nn.ModuleList(nn.Linear(s.dim, s.dim) if r else nn.Identity()
                                       for r in recon)

    def embed(self, xs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, dim) region embeddings and the (views,) view-fusion weights."""
        intra = torch.stack([enc(inp(x)) for x, inp, enc in zip(xs, self.inputs, self.intra,
                                                                 strict=True)])  # (V, n, n)
        z = intra.transpose(0, 1)  # (n, V, n)
        for block in self.inter:
            z = block(z)
        inter = self.inter_fc(z).transpose(0, 1)  # (V, n, n)
        total = self.p_intra + self.p_inter
        mixed = inter * (self.p_inter / total) + intra * (self.p_intra / total)
        w = self.view_fusion(mixed)
        h = (w[:, None, None] * mixed).sum(0)[None]  # (1, n, n)
        for layer in self.region_fusion:
            h = layer(h)
        return self.out(self.region_fc(h[0])), w

    def forward(self, xs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor | list]:
        """The embedding, the source/target decodings and each view's decoding (or None)."""
        emb, w = self.embed(xs)
        views = [dec(emb) if r else None for dec, r in zip(self.dec_views, self.recon,
                                                           strict=True)]
        return {"embedding": emb, "view_weights": w, "source": self.dec_source(emb),
                "target": self.dec_target(emb), "views": views}


def attention_heads(n: int, wanted: int) -> int:
    """The most heads, at most ``wanted``, that divide the width ``n`` (1 always does)."""
    return max(h for h in range(1, max(1, wanted) + 1) if n % h == 0)


def cosine_matrix(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(n, n) cosine similarities of the rows of ``x`` (a zero row: 0 with every row)."""
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(eps)
    return unit @ unit.T


def mobility_loss(source: torch.Tensor, target: torch.Tensor,
                  trips: torch.Tensor) -> torch.Tensor:
    """MVURE's mobility loss as upstream's ``_mob_loss``; ``trips`` already divided by its
    mean: ``-sum M * log(softmax(S T^T) + eps) - sum M^T * log(softmax(T S^T) + eps)``."""
    p_st = F.softmax(source @ target.T, dim=-1)
    p_ts = F.softmax(target @ source.T, dim=-1)
    return (-(trips * torch.log(p_st + EPS_LOG)).sum()
            - (trips.T * torch.log(p_ts + EPS_LOG)).sum())


def similarity_loss(decoded: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the decoded rows' cosine similarities and the target."""
    return F.mse_loss(cosine_matrix(decoded), similarity)


def hafusion_loss(out: dict[str, torch.Tensor | list], trips: torch.Tensor,
                  similarities: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """Upstream's ``ModelLoss``: the mobility loss plus every view's reconstruction loss."""
    loss = mobility_loss(out["source"], out["target"], trips)
    for decoded, sim in zip(out["views"], similarities, strict=True):
        if decoded is not None and sim is not None:
            loss = loss + similarity_loss(decoded, sim)
    return loss
