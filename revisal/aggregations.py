"""Phase 2 of Extract & Aggregate: one scalar per spatial location.

At every location u the extraction phase (:mod:`revisal.sites`) yields the contribution ``c_u`` of
that location to a weight gradient. It is either

* a **vector** ``c_u ∈ R^K`` (bias and scaling layers, paper Table 1), or
* an **outer product** ``c_u = g_u x_uᵀ`` (convolutions; for a grouped convolution a
  block-diagonal stack of one outer product per group).

An :class:`Aggregation` reduces ``c_u`` to a scalar. For outer products it never builds the
``K' × N²K`` matrix: each aggregation below factorises over the two vectors, so it only needs a few
per-location *factor statistics* of ``g`` and of ``x`` (see :data:`FACTOR_STATS`), e.g.
``‖g xᵀ‖_F = ‖g‖·‖x‖``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping

import torch
from torch import Tensor

StatName = Literal["sum", "sq", "pos_sq", "neg_sq", "maxabs"]

# Per-location statistics of one factor, reduced over the channels of one group: t has shape
# [N, G, C/G, H, W] and each reducer returns [N, G, H, W].
FACTOR_STATS: dict[str, Callable[[Tensor], Tensor]] = {
    "sum": lambda t: t.sum(2),  # Σ_k t_k
    "sq": lambda t: t.square().sum(2),  # Σ_k t_k²
    "pos_sq": lambda t: t.clamp_min(0).square().sum(2),  # Σ_k (t_k)₊²
    "neg_sq": lambda t: t.clamp_max(0).square().sum(2),  # Σ_k (t_k)₋²
    "maxabs": lambda t: t.abs().amax(2),  # max_k |t_k|
}

# How a statistic of the input factor combines over a convolution window: additive statistics are
# box-filtered (summed over the N×N patch), ``maxabs`` is max-pooled.
STAT_POOLING: dict[str, Literal["sum", "max"]] = {
    "sum": "sum",
    "sq": "sum",
    "pos_sq": "sum",
    "neg_sq": "sum",
    "maxabs": "max",
}


def working_precision(t: Tensor) -> Tensor:
    """``t`` in at least float32 (half-precision activations under autocast are upcast)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def factor_stats(t: Tensor, names: tuple[str, ...], groups: int = 1) -> dict[str, Tensor]:
    """Channel statistics of ``t`` [N, C, H, W] within each of ``groups`` channel groups.

    Returns ``{name: Tensor[N, groups, H, W]}`` (at least float32) for every requested statistic.
    """
    n, c, h, w = t.shape
    grouped = working_precision(t).reshape(n, groups, c // groups, h, w)
    return {name: FACTOR_STATS[name](grouped) for name in names}


@dataclass(frozen=True)
class Aggregation:
    """An aggregation function: a contribution at one location → one scalar.

    Attributes:
        name: registry key.
        formula: the scalar it computes, in the paper's notation.
        reduce: vector form, ``c`` [N, K, H, W] → [N, H, W].
        stats: factor statistics the outer-product form needs (keys of :data:`FACTOR_STATS`).
        combine: outer-product form, ``(g_stats, x_stats)`` each ``{stat: [N, G, H, W]}`` →
            [N, H, W], where the contribution is the block-diagonal ``⊕_groups g_G x_Gᵀ``.
    """

    name: str
    formula: str
    reduce: Callable[[Tensor], Tensor]
    stats: tuple[str, ...]
    combine: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor]

    def __repr__(self) -> str:
        return f"Aggregation({self.name!r}: {self.formula})"


def _sum_outer(g: Mapping[str, Tensor], x: Mapping[str, Tensor]) -> Tensor:
    # Σ_{k,j} g_k x_j = (Σ_k g_k)(Σ_j x_j), summed over groups.
    return (g["sum"] * x["sum"]).sum(1)


SUM = Aggregation(
    name="sum",
    formula="Σ_k c_k   (outer product: Σ_G (Σ g_G)(Σ x_G))",
    reduce=lambda c: c.sum(1),
    stats=("sum",),
    combine=_sum_outer,
)

RELU_SUM = Aggregation(
    name="relu_sum",
    formula="(Σ_k c_k)₊   (Grad-CAM's positive part of the sum)",
    reduce=lambda c: c.sum(1).clamp_min(0),
    stats=("sum",),
    combine=lambda g, x: _sum_outer(g, x).clamp_min(0),
)

MAXABS = Aggregation(
    name="maxabs",
    formula="max_k |c_k|   (outer product: max_G max|g_G| · max|x_G|)",
    reduce=lambda c: c.abs().amax(1),
    stats=("maxabs",),
    combine=lambda g, x: (g["maxabs"] * x["maxabs"]).amax(1),
)

NORM = Aggregation(
    name="norm",
    formula="‖c‖₂   (outer product, Frobenius: sqrt(Σ_G ‖g_G‖² ‖x_G‖²))",
    reduce=lambda c: torch.linalg.vector_norm(c, dim=1),
    stats=("sq",),
    combine=lambda g, x: (g["sq"] * x["sq"]).sum(1).sqrt(),
)

FILTER_NORM = Aggregation(
    name="filter_norm",
    formula="‖(c)₊‖₂   (outer product: sqrt(Σ_G ‖g₊‖²‖x₊‖² + ‖g₋‖²‖x₋‖²))",
    reduce=lambda c: torch.linalg.vector_norm(c.clamp_min(0), dim=1),
    stats=("pos_sq", "neg_sq"),
    # (g_k x_j)₊ is non-zero only where both factors share a sign.
    combine=lambda g, x: (g["pos_sq"] * x["pos_sq"] + g["neg_sq"] * x["neg_sq"]).sum(1).sqrt(),
)

AGGREGATIONS: dict[str, Aggregation] = {a.name: a for a in (SUM, RELU_SUM, MAXABS, NORM, FILTER_NORM)}
