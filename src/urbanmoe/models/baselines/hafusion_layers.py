"""HAFusion's building blocks (Sun et al., ICDE 2024, arXiv 2312.04606), in our own code.

The model itself is ``hafusion.py``; these are its parts, each a pure torch module. Every one
works at HAFusion's hidden width, which is the number of regions ``n`` (upstream's
``input_dim = region_num``): a view's embedding is an (n, n) matrix, one row per region.

* ``DeepFc`` -- the three-layer perceptron upstream puts after every stage
  (Linear(d, 2d), Linear(2d, 2d), LeakyReLU(0.3), Linear(2d, out), LeakyReLU(0.3); the first
  two linear layers have no activation between them, as upstream's ``DeepFc``).
* ``IntraAFLBlock`` -- one block of intra-view attentive feature learning (Section IV-B, the
  "RegionSA" self-attention whose attention map is turned into c-channel "edge" features,
  aggregated by a softmax over the neighbours and projected back, then added to the attention
  output; post-norm residual and feed-forward as a Transformer encoder layer).
* ``ExternalAttentionBlock`` -- one block of inter-view attentive feature learning (Section
  IV-C: external attention with two memories ``M_k`` (width -> d_m) and ``M_v`` (d_m -> width),
  softmax over the views, then normalised over the d_m memory slots; no residual, as upstream).
* ``ViewFusion`` -- the view weights of Section IV-D (a GAT-style score per view, averaged,
  then a softmax over the views).

Where upstream's code and the paper's text could be read two ways, these follow the code
(``HAFusion_Model.py`` at commit ``1dcee5ab``); the differences are listed in
docs/baselines.md, "HAFusion".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.3  # negative slope of every LeakyReLU upstream


class DeepFc(nn.Module):
    """Linear(d, 2d) -> Linear(2d, 2d) -> LeakyReLU -> Linear(2d, out) -> LeakyReLU."""

    def __init__(self, d: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 2 * d), nn.Linear(2 * d, 2 * d),
                                 nn.LeakyReLU(LEAK), nn.Linear(2 * d, out), nn.LeakyReLU(LEAK))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class IntraAFLBlock(nn.Module):
    """One intra-view block on an (n, width) view embedding (Section IV-B).

    Multi-head self-attention over the regions gives the output ``h`` and the head-averaged
    attention map ``A`` (n, n). Each weight ``A[i, j]`` is lifted to ``c`` channels by a 1 x 1
    map (``e = a * A[i, j] + b``, per channel), each channel of region ``i`` is aggregated over
    its neighbours ``j`` with softmax weights of the same channel (``sum_j softmax_j(e) e``),
    and the (n, c) result is projected to the width and added to ``h``. Then the usual
    post-norm residual, ReLU feed-forward and post-norm, all with dropout.
    """

    def __init__(self, width: int, heads: int, c: int, dropout: float,
                 feedforward: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.lift = nn.Linear(1, c)  # upstream: Conv2d(1, c, kernel_size=1), the same map
        self.proj = nn.Linear(c, width)
        self.ff = nn.Sequential(nn.Linear(width, feedforward), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(feedforward, width))
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, a = self.attn(x[None], x[None], x[None], need_weights=True)
        h, a = h[0], a[0]  # (n, width), (n, n) averaged over the heads
        e = self.lift(a[..., None])  # (n, n, c)
        edge = (e.softmax(dim=1) * e).sum(dim=1)  # (n, c): each channel over the neighbours
        h = h + self.proj(edge)
        x = self.norm1(x + self.drop1(h))
        return self.norm2(x + self.drop2(self.ff(x)))


class ExternalAttentionBlock(nn.Module):
    """One inter-view block on (n, views, width) (Section IV-C, external attention).

    ``softmax over the views of (x M_k)``, renormalised to sum 1 over the ``d_m`` memory slots,
    then ``M_v``; both memories without bias, initialised N(0, 0.001^2) as upstream.
    """

    def __init__(self, width: int, d_m: int) -> None:
        super().__init__()
        self.m_k = nn.Linear(width, d_m, bias=False)
        self.m_v = nn.Linear(d_m, width, bias=False)
        for m in (self.m_k, self.m_v):
            nn.init.normal_(m.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.m_k(x).softmax(dim=1)  # over the views
        attn = attn / attn.sum(dim=2, keepdim=True)  # over the memory slots
        return self.m_v(attn)


class ViewFusion(nn.Module):
    """The weight of each view (Section IV-D): (views, n, width) -> (views,) summing to 1.

    As upstream's ``ViewFusion`` (a 1 x 1 ``Conv1d`` over a tensor transposed to
    (width, n, views)), the shared map ``W`` mixes the *region* axis (n -> d_prime), for every
    hidden unit and view; two scorers ``f1``, ``f2`` (d_prime -> 1, with bias) give the pair
    score ``LeakyReLU(f2(v) + f1(u))`` of views ``v``, ``u``; the score of ``v`` is its mean
    over ``u`` and over the hidden units, and a softmax over the views gives the weights.
    Upstream's transposition only lines up because the width equals the region count; so
    does ours (``in_regions`` is that count).
    """

    def __init__(self, in_regions: int, d_prime: int) -> None:
        super().__init__()
        self.w = nn.Linear(in_regions, d_prime, bias=False)
        self.f1 = nn.Linear(d_prime, 1)
        self.f2 = nn.Linear(d_prime, 1)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        z = self.w(views.transpose(1, 2))  # (views, width, d_prime): W over the regions
        s1, s2 = self.f1(z)[..., 0], self.f2(z)[..., 0]  # (views, width)
        pair = F.leaky_relu(s2[:, None, :] + s1[None, :, :], LEAK)  # (v, u, width)
        return pair.mean(dim=(1, 2)).softmax(dim=0)
