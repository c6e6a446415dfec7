r"""Combining saliency maps across layers (paper § 4.2, supp. C), with the authors' arithmetic.

For one image, each layer's map :math:`m_j` is resized to the common size (bilinear,
``align_corners=False``) and min-max normalised over the whole map, with no epsilon:

.. math:: \hat m_j = \frac{m_j - \min m_j}{\max m_j - \min m_j}

The weights are normalised to sum to 1, :math:`w_j = \gamma_j / \sum_k \gamma_k`, and applied either
additively, :math:`M = \sum_j w_j \hat m_j`, or as exponents, :math:`M = \prod_j \hat m_j^{w_j}`.

**Constant maps.** A map with :math:`\max m_j = \min m_j` has no min-max normalisation (0/0): the
authors' code (TorchRay ``weighted_saliency.normalize``) then gives NaN, and the NaN spreads to every
pixel of the combined map. Such a map says nothing about *where*, so by default
(``constant="omit"``) it is left out of that image's combination and the other layers' weights are
renormalised to sum to 1 over the layers that remain; an image whose every map is constant gets a
constant combined map (0 for the sum, 1 for the product: the empty sum and product).
``constant="nan"`` reproduces the authors' NaN; ``constant="raise"`` refuses the batch and names the
layer and images. :func:`constant_maps` reports which maps are constant, for a runner to count them.
Constancy is judged on the map as given (before resizing), so that a constant map resized with
rounding noise of 1 ulp is not stretched to [0, 1]; a map that resizing makes constant counts too.
"Constant" is up to float rounding (:func:`revisal.maps.flat_maps`, relative spread ≤ 1e-3): a map
that is constant by construction but computed in float32 (gradient-sum before a global pool) would
otherwise be stretched from its rounding noise to [0, 1]. (The authors' code normalises that noise.)

The input layer: the authors combine only the network's layers, never the input image's map (their
weights have no entry for it). :func:`combine` works on whatever maps it is given; the caller
(the pointing runner) chooses the layers.

A map holding NaN or ±Inf has no minimum and maximum to normalise by, so it is refused (ValueError
naming the map), as are maps whose batch sizes differ (they would broadcast a batch of 1 silently).
"""

from __future__ import annotations

import numbers
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from revisal.maps import check_size, flat_maps

ConstantRule = Literal["omit", "nan", "raise"]
CONSTANT_RULES = ("omit", "nan", "raise")


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


def _is_constant(maps: Tensor) -> Tensor:
    """``[N]`` bool: map n is flat (:func:`revisal.maps.flat_maps`: ``max = min`` up to rounding)."""
    return flat_maps(maps).to(maps.device)


def normalize_maps(maps: Tensor, constant: float = 0.0) -> Tensor:
    r"""Min-max normalise each map of a ``[N, 1, H, W]`` batch over all its pixels, without epsilon:
    :math:`\hat m = (m - \min m)/(\max m - \min m)`. A constant map (0/0) becomes ``constant``
    everywhere (0 by default; ``float("nan")`` gives the authors' arithmetic)."""
    _check_maps(maps, "maps")
    if isinstance(constant, bool) or not isinstance(constant, numbers.Real):
        raise ValueError(f"constant: expected the number a constant map becomes (e.g. 0.0 or nan), got {constant!r}")
    return _normalized(maps, constant)


def _normalized(maps: Tensor, constant: float = 0.0) -> Tensor:
    """:func:`normalize_maps` of maps already checked (finite, ``[N, 1, H, W]``)."""
    flat = maps.flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    flat_const = (hi == lo)
    out = (flat - lo) / torch.where(flat_const, torch.ones_like(hi), hi - lo)
    return torch.where(flat_const, torch.full_like(out, float(constant)), out).view_as(maps)


def _check_layers(per_layer: object) -> list[Tensor]:
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
    return per_layer


def _resized(per_layer: list[Tensor], size: object) -> tuple[list[Tensor], Tensor, tuple[int, int]]:
    """Each map in float64 at ``size`` (bilinear, ``align_corners=False``), and ``[N, J]`` bool:
    which maps are constant (as given, or once resized)."""
    if size is None:
        size = max((tuple(m.shape[-2:]) for m in per_layer), key=lambda s: s[0] * s[1])
    size = check_size(size)
    maps = [m.double() if tuple(m.shape[-2:]) == size
            else F.interpolate(m.double(), size=size, mode="bilinear", align_corners=False) for m in per_layer]
    constant = torch.stack([_is_constant(r) if tuple(m.shape[-2:]) == size else _is_constant(m.double()) | _is_constant(r)
                            for m, r in zip(per_layer, maps)], 1)  # a map given at `size` is its own resized map
    return maps, constant, size


def constant_maps(per_layer: Sequence[Tensor], size: tuple[int, int] | int | None = None) -> Tensor:
    """``[N, J]`` bool: which of J layers' maps are constant for each of N images (the maps
    :func:`combine` cannot min-max normalise; see the module docstring)."""
    return _resized(_check_layers(per_layer), size)[1].cpu()


def combine(per_layer: Sequence[Tensor], weights: Sequence[float] | Tensor, mode: Literal["sum", "product"] = "sum",
            size: tuple[int, int] | int | None = None, *, constant: ConstantRule = "omit") -> Tensor:
    r"""Weighted combination of one method's maps at J layers.

    With :math:`\hat m_j` map j resized to ``size`` and min-max normalised over the whole map (no
    epsilon) and :math:`w_j = \gamma_j / \sum_k \gamma_k`:

    * ``"sum"``: :math:`M = \sum_j w_j \hat m_j`
    * ``"product"``: :math:`M = \prod_j \hat m_j^{w_j}`

    Args:
        per_layer: J tensors ``[N, 1, h_j, w_j]`` (any resolutions), the layers to combine (the
            authors' combinations exclude the input's map).
        weights: J non-negative weights γ_j with a positive sum (normalised here to sum to 1).
        mode: ``"sum"`` or ``"product"``.
        size: common (H, W), the image's size in the pointing game; default the largest map's size.
        constant: what a constant map of an image does (0/0 in the normalisation): ``"omit"``
            leaves it out of that image's combination, :math:`w_j \to w_j\,[\hat m_j \text{ defined}]
            / \sum_k w_k\,[\hat m_k \text{ defined}]`, ``"nan"`` gives the authors' NaN,
            ``"raise"`` raises ValueError.

    Returns:
        ``[N, 1, H, W]`` in the maps' floating dtype (computed in float64).
    """
    return combine_many(per_layer, [(weights, mode)], size, constant=constant)[0]


def combine_many(per_layer: Sequence[Tensor], weightings: Sequence[tuple[Sequence[float] | Tensor, str]],
                 size: tuple[int, int] | int | None = None, *, constant: ConstantRule = "omit") -> list[Tensor]:
    """:func:`combine` of the same maps under several ``(weights, mode)`` pairs: the maps are
    checked, resized and normalised once, then weighted once per pair. Each result equals
    ``combine(per_layer, weights, mode, size, constant=constant)`` bit for bit."""
    per_layer = _check_layers(per_layer)
    checked = []
    for weights, mode in weightings:
        if mode not in ("sum", "product"):
            raise ValueError(f"mode: expected 'sum' or 'product', got {mode!r}")
        checked.append((_check_weights(weights, len(per_layer)), mode))
    if constant not in CONSTANT_RULES:
        raise ValueError(f"constant: expected one of {CONSTANT_RULES}, got {constant!r}")
    maps, flat, size = _resized(per_layer, size)
    if constant == "raise" and bool(flat.any()):
        j, = torch.nonzero(flat.any(0))[0].tolist()
        images = torch.nonzero(flat[:, j])[:, 0].tolist()
        raise ValueError(f"per_layer[{j}]: the maps of images {images[:10]} are constant, so they have no min-max "
                         "normalisation (use constant='omit' to leave them out)")
    fill = torch.tensor(float("nan") if constant == "nan" else 0.0, dtype=torch.float64, device=maps[0].device)
    normalized = [torch.where(flat[:, j, None, None, None].to(m.device), fill, _normalized(m))  # checked, then resized
                  for j, m in enumerate(maps)]
    dtype = per_layer[0].dtype if per_layer[0].is_floating_point() else torch.float32
    logs = [m.log() for m in normalized] if any(mode == "product" for _, mode in checked) else []  # once for all
    return [_weighted(normalized, logs, flat, w, mode, constant).to(dtype) for w, mode in checked]


def _weighted(normalized: list[Tensor], logs: list[Tensor], flat: Tensor, w: Tensor, mode: str,
              constant: ConstantRule) -> Tensor:
    """``Σ_j w_j m_j`` or ``Π_j m_j^{w_j} = exp(Σ_j w_j log m_j)`` of the normalised maps (``logs``:
    their logarithms, shared by every product), with ``w`` renormalised per image over its
    non-constant maps under ``constant="omit"`` (float64). A term with w_j = 0 is left out of the
    exponent, so 0^0 = 1 and NaN^0 = 1 as ``pow`` has them."""
    gamma = w.to(normalized[0].device)[None, :].expand(len(flat), -1)  # [N, J]
    if constant == "omit":
        gamma = gamma * (~flat.to(gamma.device))
    total = gamma.sum(1, keepdim=True)
    gamma = gamma / torch.where(total > 0, total, torch.ones_like(total))  # an image with every map constant: all 0
    g = [gamma[:, j, None, None, None] for j in range(len(normalized))]
    if mode == "sum":
        return sum(gj * m for gj, m in zip(g, normalized))
    exponent = torch.zeros_like(normalized[0])
    for gj, log in zip(g, logs):
        exponent = exponent + torch.where(gj > 0, gj * log, 0.0)  # an omitted map is the product's neutral element
    return exponent.exp()


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
