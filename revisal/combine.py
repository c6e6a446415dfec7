"""Combining saliency maps across layers (paper § 4.2, supp. C).

Per-layer maps ``m_j`` are min-max normalised per image (``(m − min)/(max − min + ε)``, so a constant
map becomes 0 rather than NaN), resized to a common size, and combined with weights ``γ_j``
normalised to sum to 1, either additively ``M = Σ_j γ_j m_j`` or as a product ``M = Π_j m_j^{γ_j}``.

A map holding NaN or ±Inf has no minimum and maximum to normalise by, so it is refused (ValueError
naming the map), as are maps whose batch sizes differ (they would broadcast a batch of 1 silently).
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .maps import check_size

EPS = 1e-8


def _check_maps(maps: object, name: str) -> Tensor:
    """A non-empty, finite ``[N, 1, H, W]`` tensor."""
    if not isinstance(maps, Tensor):
        raise TypeError(f"{name}: expected a Tensor [N, 1, H, W], got {type(maps).__name__}")
    if maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(f"{name}: expected maps shaped [N, 1, H, W], got {tuple(maps.shape)}")
    if maps.numel() == 0:
        raise ValueError(f"{name}: empty maps, shape {tuple(maps.shape)}")
    finite = torch.isfinite(maps)
    if not bool(finite.all()):
        raise ValueError(f"{name}: {int((~finite).sum())} of {maps.numel()} values are NaN or infinite")
    return maps


def normalize_maps(maps: Tensor, eps: float = EPS) -> Tensor:
    """Min-max normalise each map of a [N, 1, H, W] batch to [0, 1]: ``(m − min)/(max − min + ε)``."""
    _check_maps(maps, "maps")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < math.inf:
        raise ValueError(f"eps: expected a small positive number, got {eps!r}")
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo + eps)).view_as(maps)


def combine(per_layer: Sequence[Tensor], weights: Sequence[float] | Tensor, mode: Literal["sum", "product"] = "sum",
            size: tuple[int, int] | None = None) -> Tensor:
    r"""Weighted combination of one method's maps at J layers.

    Args:
        per_layer: J tensors ``[N, 1, h_j, w_j]`` (any resolutions).
        weights: J non-negative weights γ_j (normalised here to sum to 1).
        mode: ``"sum"`` for :math:`\sum_j \gamma_j \hat m_j` or ``"product"`` for
            :math:`\prod_j \hat m_j^{\gamma_j}`, with :math:`\hat m_j` the normalised, resized maps.
        size: common (H, W); default the largest map's size.

    Returns:
        ``[N, 1, H, W]``.
    """
    if isinstance(per_layer, Tensor) or not isinstance(per_layer, Iterable):
        raise TypeError(f"per_layer: expected a list of J map tensors [N, 1, h_j, w_j], got {type(per_layer).__name__}"
                        + ("; wrap a single layer's maps in a list" if isinstance(per_layer, Tensor) else ""))
    per_layer = [_check_maps(m, f"per_layer[{j}]") for j, m in enumerate(per_layer)]
    if not per_layer:
        raise ValueError("per_layer: no maps to combine")
    batches = [m.shape[0] for m in per_layer]
    if len(set(batches)) > 1:
        raise ValueError(f"per_layer: every layer's maps must have the same batch size, got {batches}")
    devices = {m.device for m in per_layer}
    if len(devices) > 1:
        raise ValueError(f"per_layer: maps on different devices {sorted(map(str, devices))}")
    w = _check_weights(weights, len(per_layer))
    if mode not in ("sum", "product"):
        raise ValueError(f"mode: expected 'sum' or 'product', got {mode!r}")
    w = w / w.sum()
    if size is None:
        size = max((tuple(m.shape[-2:]) for m in per_layer), key=lambda s: s[0] * s[1])
    size = check_size(size)
    maps = [normalize_maps(F.interpolate(m.double(), size=size, mode="bilinear", align_corners=False)
                           if tuple(m.shape[-2:]) != tuple(size) else m.double()) for m in per_layer]
    if mode == "sum":
        out = sum(float(g) * m for g, m in zip(w, maps))
    else:
        out = torch.ones_like(maps[0])
        for g, m in zip(w, maps):
            out = out * m.clamp_min(0) ** float(g)
    return out.to(per_layer[0].dtype if per_layer[0].is_floating_point() else torch.float32)


def _check_weights(weights: object, count: int) -> Tensor:
    """J finite, non-negative weights with a positive sum, as float64."""
    if isinstance(weights, Tensor):
        w = weights.detach().to("cpu", torch.float64)
    else:
        values = list(weights) if isinstance(weights, Iterable) and not isinstance(weights, (str, bytes)) else weights
        try:
            w = torch.as_tensor(np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(f"weights: expected {count} numbers, got {weights!r}") from None
    if w.dim() != 1 or len(w) != count:
        raise ValueError(f"weights: expected {count} weights, got shape {tuple(w.shape)}")
    if bool((w < 0).any()) or not bool(torch.isfinite(w).all()) or float(w.sum()) <= 0:
        raise ValueError(f"weights: expected finite non-negative weights with a positive sum, got {w.tolist()}")
    return w
