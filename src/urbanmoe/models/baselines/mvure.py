"""MVURE, a row of HAFusion's comparison (ICDE 2024; ``published_hafusion_icde24.csv``).

MVURE (Zhang, Li, Tong, Zhang, Xu, "Multi-View Joint Graph Representation Learning for Urban
Region Embedding", IJCAI 2020; code ``mingyangzhang/mv-region-embedding``, TensorFlow 1,
``model/models.py``, ``model/layers.py``, ``model/utils.py`` at ``b56c2fcd``, ``model/train.py``
at ``e0f1cff3``) learns one embedding per region from several region x region graphs:

* **views** (paper Section 3.1, "multi-view graph construction"): two mobility views (origin and
  destination) and attribute views (upstream: POI similarity and check-in similarity). Each view
  is a graph-attention network (GAT, Velickovic et al. 2018) over the view's graph, all reading
  the same node inputs. Upstream builds every graph by keeping, for each region in turn, its
  ``k`` largest entries in its column and then in its row (``utils.load_data``: ``k = 20`` for
  mobility, ``k = 15`` for the attribute graphs), plus self-loops (``adj_to_bias``): the graph
  only masks the attention; its weights are not used. Both mobility views use the same
  thresholded mobility matrix (``s_adj_sp`` and ``t_adj_sp`` are copies of ``mob_adj[0]``; the
  ``s_adj.npy`` / ``t_adj.npy`` files it loads are unused), so they differ only in their own
  weights and their role in the mobility loss. :func:`top_k_graph` is that thresholding.
* **GAT** (:class:`DenseGAT`, Section 3.2, Eq. 1-3; ``layers.GraphAttention``): per head
  ``h = x W``, logits ``a_1^T h_i + a_2^T h_j``, LeakyReLU (slope 0.2), softmax over the
  neighbours, attention dropout 0.2, a bias, ReLU; 12 heads of 12 concatenated (144).
  **Dense**: the attention is an (n, n) matrix per head and view with non-neighbours masked to
  -1e9, memory O(views x heads x n^2): fine for up to a few thousand regions, not for 10^5.
* **cross-view information sharing** (:class:`ViewSharing`, Section 3.3, Eq. 4-5;
  ``MVURE.self_attn``): scaled dot-product attention with its own query and key maps (48 wide,
  values = the view itself), averaged over 4 such heads, then mixed back,
  ``h' = 0.8 attn + 0.2 h``. The paper attends across a region's views; the upstream code,
  whose tensors are (views, 1, n, d), attends across regions within each view. ``over="regions"``
  is the code's, ``over="views"`` the paper's.
* **multi-view fusion** (:class:`ViewFusion`, Section 3.4, Eq. 6-7; ``MVURE.mv_attn``): a weight
  per view, region and dimension ``sigmoid(h' W + b)`` (one ``W`` shared by the views, no
  normalisation across views, as in the code), the region embedding ``e = sum_v w_v * h'_v``;
  each view's output for the losses is ``0.5 h'_v + 0.5 e``.
* **objective** (Section 3.5, Eq. 8-10): :func:`mobility_loss` on the two mobility views,
  :func:`similarity_loss` on each attribute view, summed unweighted (``MVURE._loss``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MASKED = -1e9  # upstream adj_to_bias: attention logit of a non-neighbour


def top_k_graph(weights: np.ndarray, k: int) -> np.ndarray:
    """(n, n) bool graph of ``weights`` thresholded as MVURE's ``utils.load_data``, self-loops on.

    For each region ``i`` in turn, the entries of column ``i`` outside its ``k`` largest are
    zeroed, then those of row ``i`` (in place, so later regions see earlier zeros; ties are
    broken by position, stably); an edge is what stays non-zero. ``k`` is capped at ``n``.
    """
    w = np.array(weights, dtype=np.float64, copy=True)
    n = w.shape[0]
    drop = n - min(int(k), n)
    for i in range(n):
        w[np.argsort(w[:, i], kind="stable")[:drop], i] = 0.0
        w[i, np.argsort(w[i, :], kind="stable")[:drop]] = 0.0
    return (w > 0) | np.eye(n, dtype=bool)


def attention_bias(graph: np.ndarray) -> torch.Tensor:
    """0 where ``graph`` has an edge, ``MASKED`` elsewhere (upstream ``adj_to_bias``, 1 hop)."""
    return torch.from_numpy(np.where(graph, 0.0, MASKED).astype(np.float32))


def random_inputs(n: int, dim: int, seed: int) -> torch.Tensor:
    """MVURE's node inputs: uniform(-1, 1) noise, each row standardised (``utils.load_data``,
    ``preprocess_features``); the views learn everything from the graphs."""
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, dim))
    x = (x - x.mean(1, keepdims=True)) / np.maximum(x.std(1, keepdims=True), 1e-12)
    return torch.from_numpy(x.astype(np.float32))


def _glorot(*shape: int) -> nn.Parameter:
    """Glorot-uniform over the last two dimensions (TF ``inits.glorot``), per leading index."""
    fan_in, fan_out = shape[-2], shape[-1]
    r = math.sqrt(6.0 / (fan_in + fan_out))
    return nn.Parameter(torch.empty(*shape).uniform_(-r, r))


class DenseGAT(nn.Module):
    """Multi-head graph attention over dense (n, n) masks (Eq. 1-3; ``layers.GraphAttention``),
    one independent GAT per view, computed together.

    ``forward(x, bias)``: ``x`` (n, in_dim) shared by the views, ``bias`` (V, n, n) from
    :func:`attention_bias`; returns (V, n, heads * head_dim), the heads concatenated.
    """

    def __init__(self, n_views: int, in_dim: int, head_dim: int, heads: int,
                 coef_dropout: float) -> None:
        super().__init__()
        self.weight = _glorot(n_views, heads, in_dim, head_dim)
        self.a_1 = _glorot(n_views, heads, head_dim, 1)
        self.a_2 = _glorot(n_views, heads, head_dim, 1)
        self.bias = nn.Parameter(torch.zeros(n_views, heads, 1, head_dim))
        self.coef_dropout = coef_dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = torch.einsum("ni,vhio->vhno", x, self.weight)  # (V, H, n, o)
        logits = h @ self.a_1 + (h @ self.a_2).transpose(2, 3)  # (V, H, n, n): i attends to j
        coefs = torch.softmax(F.leaky_relu(logits, 0.2) + bias[:, None], dim=-1)
        coefs = F.dropout(coefs, self.coef_dropout, self.training)
        out = torch.relu(coefs @ h + self.bias)  # (V, H, n, o)
        v, heads, n, o = out.shape
        return out.permute(0, 2, 1, 3).reshape(v, n, heads * o)


class ViewSharing(nn.Module):
    """Cross-view information sharing (Eq. 4-5; ``MVURE.self_attn``): ``heads`` scaled
    dot-product attentions with query / key maps of width ``attn_dim`` shared by the views
    (values: the views themselves), averaged. ``over``: ``"regions"`` (each view's regions
    attend to each other, as the code computes) or ``"views"`` (each region's views attend to
    each other, as the paper describes)."""

    def __init__(self, dim: int, attn_dim: int, heads: int, over: str) -> None:
        super().__init__()
        if over not in ("regions", "views"):
            raise ValueError(f"over: {over!r}, expected 'regions' or 'views'")
        self.q = nn.ModuleList(nn.Linear(dim, attn_dim) for _ in range(heads))
        self.k = nn.ModuleList(nn.Linear(dim, attn_dim) for _ in range(heads))
        for lin in [*self.q, *self.k]:  # tf.layers.dense: glorot kernel, zero bias
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.over, self.scale = over, 1.0 / math.sqrt(attn_dim)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        v = views if self.over == "regions" else views.transpose(0, 1)  # (B, L, d)
        outs = []
        for q, k in zip(self.q, self.k, strict=True):
            attn = torch.softmax(q(v) @ k(v).transpose(1, 2) * self.scale, dim=-1)  # (B, L, L)
            outs.append(attn @ v)
        out = torch.stack(outs).mean(0)
        return out if self.over == "regions" else out.transpose(0, 1)


class ViewFusion(nn.Module):
    """Multi-view fusion (Eq. 6-7; ``MVURE.mv_attn``): ``e = sum_v sigmoid(h_v W + b) * h_v``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = _glorot(dim, dim)
        self.bias = nn.Parameter(torch.empty(dim).uniform_(-0.05, 0.05))  # TF inits.uniform

    def forward(self, views: torch.Tensor) -> torch.Tensor:  # (V, n, d) -> (n, d)
        return (torch.sigmoid(views @ self.weight + self.bias) * views).sum(0)


class MVURE(nn.Module):
    """The whole encoder: a GAT per view (:class:`DenseGAT`), sharing, fusion.

    ``forward(x, biases)`` with ``biases`` (V, n, n) from :func:`attention_bias`, views in the
    order origin mobility, destination mobility, then the attribute graphs; returns the region
    embedding (n, heads * head_dim) and each view's output for the losses (V, n, same).
    """

    def __init__(self, in_dim: int, n_views: int, *, heads: int = 12, head_dim: int = 12,
                 share_dim: int = 48, share_heads: int = 4, share_over: str = "regions",
                 alpha: float = 0.8, beta: float = 0.5, coef_dropout: float = 0.2) -> None:
        super().__init__()
        if n_views < 2:
            raise ValueError(f"MVURE needs the two mobility views, got {n_views} views")
        dim = heads * head_dim
        self.gat = DenseGAT(n_views, in_dim, head_dim, heads, coef_dropout)
        self.share = ViewSharing(dim, share_dim, share_heads, share_over)
        self.fuse = ViewFusion(dim)
        self.alpha, self.beta, self.dim = alpha, beta, dim

    def forward(self, x: torch.Tensor, biases: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        views = self.gat(x, biases)
        views = self.alpha * self.share(views) + (1 - self.alpha) * views
        emb = self.fuse(views)
        return emb, self.beta * views + (1 - self.beta) * emb


def flow_entropy(flow: torch.Tensor) -> torch.Tensor:
    """``sum_ij F_ij log(F_ij / sum_k F_ik)``: the constant that turns :func:`mobility_loss`'s
    cross-entropy into a KL divergence (0 log 0 = 0)."""
    p = flow / flow.sum(1, keepdim=True).clamp_min(1e-30)
    return torch.where(flow > 0, flow * torch.log(p.clamp_min(1e-30)), 0.0).sum()


def mobility_loss(origin: torch.Tensor, destination: torch.Tensor,
                  flow: torch.Tensor) -> torch.Tensor:
    """MVURE's mobility loss (Eq. 8-9; ``MVURE._mob_loss``), as a KL divergence.

    ``flow`` (n, n) is the trip matrix divided by its mean (``utils.load_data``). With
    ``p(j | i) = softmax_j(o_i . d_j)`` (where trips from ``i`` go) and
    ``q(i | j) = softmax_i(d_j . o_i)`` (where trips into ``j`` come from), upstream minimises
    ``-sum_ij F_ij (log p(j | i) + log q(i | j))``. Here the constant
    ``sum F log(row-normalised F)`` of both directions is added back, so the value is the
    row-mass-weighted KL divergence between the observed and predicted transition
    distributions (>= 0; same gradients). Upstream's code names the origin view ``t_out`` and
    the destination view ``s_out``; both views see the same graph, so the names are labels.
    """
    log_p = torch.log_softmax(origin @ destination.T, dim=1)  # (i, j): over destinations j
    log_q = torch.log_softmax(destination @ origin.T, dim=1)  # (j, i): over origins i
    ce = -(flow * log_p).sum() - (flow.T * log_q).sum()
    return ce + flow_entropy(flow) + flow_entropy(flow.T)


def similarity_loss(emb: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    """An attribute view's loss (Eq. 10; ``MVURE._adj_loss``): mean squared error between the
    inner products ``e_i . e_j`` and the full (not thresholded) similarity matrix."""
    return F.mse_loss(emb @ emb.T, similarity)


def objective(views: torch.Tensor, flow: torch.Tensor,
              similarities: torch.Tensor) -> torch.Tensor:
    """Eq. 8-10 summed unweighted: mobility on views 0 (origin) and 1 (destination), similarity
    on the rest, in order of ``similarities`` (V - 2, n, n)."""
    loss = mobility_loss(views[0], views[1], flow)
    for v, s in zip(views[2:], similarities, strict=True):
        loss = loss + similarity_loss(v, s)
    return loss
