"""Rank correlation between saliency maps, and the analyses built on it (paper §§ 4.1, 4.3)."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revisal.maps import check_size

Key = tuple[str, str]


def _as_batch(maps: Tensor) -> Tensor:
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps: expected a Tensor [N, 1, H, W] or [N, H, W], got {type(maps).__name__}")
    if maps.dim() == 3:
        maps = maps[:, None]
    if maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(f"maps: expected [N, 1, H, W] or [N, H, W], got {tuple(maps.shape)}")
    return maps.detach().double()


def rank(values: Tensor) -> Tensor:
    """Ranks (1-based) along dim 1, ties given their average rank (scipy's ``rankdata`` 'average').

    ±Inf rank as the extreme values; a row holding a NaN has no ranking and comes back all NaN
    (scipy's ``nan_policy='propagate'``)."""
    if not isinstance(values, Tensor) or values.dim() != 2:
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"values: expected a Tensor [N, M], got {shape}")
    n, m = values.shape
    sorted_v, order = values.sort(dim=1, stable=True)
    new_group = torch.ones_like(sorted_v, dtype=torch.bool)
    new_group[:, 1:] = sorted_v[:, 1:] != sorted_v[:, :-1]
    group = new_group.long().cumsum(1) - 1
    position = torch.arange(1, m + 1, dtype=torch.float64, device=values.device).expand(n, m)
    total = torch.zeros(n, m, dtype=torch.float64, device=values.device).scatter_add_(1, group, position)
    count = torch.zeros(n, m, dtype=torch.float64, device=values.device).scatter_add_(1, group, torch.ones_like(position))
    average = (total / count.clamp_min(1)).gather(1, group)
    ranks = torch.empty_like(average).scatter_(1, order, average)
    return ranks.masked_fill_(values.isnan().any(1, keepdim=True), float("nan"))


def spearman(a: Tensor, b: Tensor, size: tuple[int, int] | int | None = (224, 224), *,
             absolute: bool = False) -> Tensor:
    r"""Per-sample Spearman rank correlation between two batches of maps.

    Both batches are resized (bilinear) to ``size`` (the paper uses 224², the input resolution;
    ``None`` keeps them as they are, which needs equal shapes); then
    :math:`\rho = \mathrm{corr}(\mathrm{rank}(a), \mathrm{rank}(b))` with average ranks for ties.
    ``absolute=True`` is the sanity check's second variant (Adebayo et al. 2018; the authors'
    ``spearman_abs``): each map is first scaled to [−1, 1] by its own range,
    :math:`a' = 2(a - \min a)/(\max a - \min a) - 1`, and ρ is taken between :math:`|a'|` and :math:`|b'|`,
    so that a map whose sign flips still counts as the same map.
    NaN and Inf follow ``scipy.stats.spearmanr`` (``nan_policy='propagate'``): a sample whose map
    holds a NaN (after resizing) gets ρ = NaN, the other samples are unaffected; ±Inf ranks as the
    extreme value (resizing a map with an Inf can spread NaN). A constant map has no ranking: its
    correlation is NaN too.

    Returns:
        float64 ``Tensor[N]``.
    """
    a, b = _as_batch(a), _as_batch(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a, b: batch sizes differ ({a.shape[0]} and {b.shape[0]})")
    if size is not None:
        size = check_size(size)
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False) if a.shape[-2:] != size else a
        b = F.interpolate(b, size=size, mode="bilinear", align_corners=False) if b.shape[-2:] != size else b
    elif a.shape != b.shape:
        raise ValueError(f"a, b: shapes differ ({tuple(a.shape)} and {tuple(b.shape)}); pass size=")
    if not isinstance(absolute, bool):
        raise TypeError(f"absolute: expected a bool, got {type(absolute).__name__}")
    if absolute:
        a, b = _unit_range(a).abs(), _unit_range(b).abs()
    ra, rb = rank(a.flatten(1)), rank(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


def _unit_range(maps: Tensor) -> Tensor:
    """Each map scaled to [−1, 1] by its own minimum and maximum (a constant map becomes NaN)."""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return (2 * (flat - low) / (high - low) - 1).view_as(maps)


def _logits(model: nn.Module, images: Tensor, batch_size: int | None) -> Tensor:
    from revisal.state import preserved_state

    with preserved_state(model), torch.no_grad():
        chunks = images.split(batch_size or len(images))
        return torch.cat([model(chunk.clone()) for chunk in chunks])  # the model may write to its input


def class_sensitivity(model: nn.Module, images: Tensor, layers: Iterable[str], methods: Iterable,
                      *, meta=None, size: tuple[int, int] | None = None, batch_size: int | None = None,
                      absolute: bool = False, **kwargs) -> dict[Key, Tensor]:
    r"""Correlation between the maps for the maximally and the minimally predicted class (paper § 4.3).

    For each image, ``c⁺ = argmax`` and ``c⁻ = argmin`` of the logits; the score of a (method, layer)
    is ``spearman(map(c⁺), map(c⁻))`` per image. A class-sensitive method scores near 0; methods
    that ignore the class (e.g. guided backprop) score near 1; sum-aggregated ones can be negative.
    Pass ``meta=revisal.MetaStep(...)`` for the meta-saliency variant (Fig. 7), ``absolute=True`` for
    Spearman on the absolute values of maps scaled to [−1, 1] (:func:`spearman`; the sanity check's
    second variant, where the sign of a map does not count). :func:`class_sensitivity_variants` gives
    both from one pass.

    Returns:
        ``{(method, layer): float64 Tensor[N]}``.
    """
    return class_sensitivity_variants(model, images, layers, methods, meta=meta, size=size, batch_size=batch_size,
                                      **kwargs)["absolute" if absolute else "signed"]


def class_sensitivity_variants(model: nn.Module, images: Tensor, layers: Iterable[str], methods: Iterable,
                               *, meta=None, size: tuple[int, int] | None = None, batch_size: int | None = None,
                               **kwargs) -> dict[str, dict[Key, Tensor]]:
    r""":func:`class_sensitivity` with both Spearman variants from one pass over the maps:
    ``{"signed": {(method, layer): ρ(map(c⁺), map(c⁻)) [N]}, "absolute": {…: ρ(|map(c⁺)|, |map(c⁻)|)}}``,
    each map scaled to [−1, 1] before its absolute value (:func:`spearman`)."""
    from revisal.engine import saliency
    from revisal.methods import resolve_methods
    from revisal.validation import check_images, check_images_fit_model, check_layers, check_model

    check_images_fit_model(check_model(model), check_images(images))
    layers, methods = check_layers(model, layers), resolve_methods(methods)  # refused before the logits pass
    logits = _logits(model, images, batch_size)
    finite = torch.isfinite(logits)
    if not bool(finite.all()):
        rows = (~finite).any(1).nonzero().flatten().tolist()
        raise ValueError(f"model: its output holds NaN or Inf for images {rows[:10]}, so their maximally and "
                         "minimally predicted classes are undefined")
    top, bottom = logits.argmax(1), logits.argmin(1)
    maps = saliency(model, torch.cat([images, images]), torch.cat([top, bottom]), layers, methods, meta=meta,
                    batch_size=batch_size, **kwargs)
    n = images.shape[0]
    size = size or tuple(images.shape[-2:])
    return {variant: {key: spearman(m[:n], m[n:], size, absolute=variant == "absolute") for key, m in maps.items()}
            for variant in ("signed", "absolute")}


def identity_trick_correlation(model: nn.Module, images: Tensor, target, conv_layers: Iterable[str], *,
                               size: tuple[int, int] | None = None, batch_size: int | None = None) -> dict[str, Tensor]:
    r"""NormGrad with the virtual 1×1 identity after a conv (``‖g_u‖‖x^{out}_u‖``) vs NormGrad on that
    conv's own N×N weights (``‖g_u‖‖x^{in}_{u,N×N}‖``), per image (paper § 4.1, Table 4).

    Returns:
        ``{layer: float64 Tensor[N]}`` of Spearman correlations.
    """
    from revisal.engine import saliency

    maps = saliency(model, images, target, list(conv_layers), ["normgrad", "normgrad_conv"], batch_size=batch_size)
    size = size or tuple(images.shape[-2:])
    return {layer: spearman(maps["normgrad", layer], maps["normgrad_conv", layer], size) for layer in maps.layers}
