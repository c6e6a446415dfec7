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
import warnings
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


def layer_weights(kind: Literal["feature_spread", "probe_accuracy", "linear", "uniform"], *,
                  num_layers: int | None = None, features: Sequence[Tensor] | None = None,
                  labels: Tensor | None = None, holdout: float = 0.5, seed: int = 0, steps: int = 300) -> np.ndarray:
    r"""Per-layer weights γ_j (unnormalised; :func:`combine` normalises them).

    * ``"uniform"``: γ_j = 1/J.
    * ``"linear"``: γ_j = j/J for j = 1..J (shallow to deep).
    * ``"feature_spread"``: with :math:`\bar x^i` the spatial mean of layer j's activations for
      image i (one value per channel) over M images sampled across classes and
      :math:`\bar x^\mu = \frac1M\sum_i |\bar x^i|`, γ_j = :math:`\frac1M\sum_i |\bar x^i - \bar x^\mu|`,
      the absolute values taken per channel and averaged over channels (the paper's formula leaves
      the reduction over channels implicit).
    * ``"probe_accuracy"``: a linear classifier trained on the globally average-pooled, standardised
      features of a ``1 − holdout`` fraction of the images; γ_j is its accuracy on the held-out rest.
      Multi-label data (``labels`` is [M, C] multi-hot): the probe is trained with a per-class
      logistic loss and a held-out image counts as correct when its top-scoring class is one of its
      labels; single-label data (``labels`` is [M] class ids): softmax probe, ordinary accuracy.

    Args:
        features: for the data-driven kinds, J tensors ``[M, C_j, H_j, W_j]`` (layer activations;
            :func:`layer_activations` collects them).
        labels: for ``"probe_accuracy"``.
    """
    kinds = ("feature_spread", "probe_accuracy", "linear", "uniform")
    if kind not in kinds:
        raise ValueError(f"kind: expected one of {kinds}, got {kind!r}")
    if kind in ("uniform", "linear"):
        j = num_layers if num_layers is not None else (len(features) if features is not None else None)
        if isinstance(j, bool) or not isinstance(j, numbers.Integral) or j < 1:
            raise ValueError(f"num_layers: expected the number of layers (a positive int) for {kind!r} weights, "
                             f"got {j!r}")
        return np.full(j, 1 / j) if kind == "uniform" else np.arange(1, j + 1) / j
    pooled = _pooled_features(features, kind)
    if kind == "probe_accuracy":
        labels = _check_probe_labels(labels, pooled[0].shape[0])
        if not 0 < holdout < 1 or round(holdout * len(labels)) >= len(labels):
            raise ValueError(f"holdout: expected a fraction in (0, 1) that leaves training images, got {holdout!r} "
                             f"of {len(labels)} images")
    if kind == "feature_spread":
        gamma = np.array([float((p - p.abs().mean(0, keepdim=True)).abs().mean()) for p in pooled])
    else:
        gamma = np.array([_probe_accuracy(p, labels, holdout, seed, steps) for p in pooled])
    if not gamma.any():  # e.g. every probe misses a tiny held-out set: no layer is preferred
        warnings.warn(f"layer_weights: every layer scored 0 under {kind!r} on {pooled[0].shape[0]} images; "
                      "using uniform weights", RuntimeWarning, stacklevel=2)
        return np.full(len(pooled), 1 / len(pooled))
    return gamma


def _pooled_features(features: object, kind: str) -> list[Tensor]:
    """Each layer's finite ``[M, C_j, H_j, W_j]`` activations, spatially averaged to ``[M, C_j]`` (float64)."""
    if isinstance(features, Tensor) or not isinstance(features, Sequence) or len(features) == 0:
        raise ValueError(f"features: {kind!r} weights need a list of each layer's activations [M, C, H, W]")
    pooled = []
    for j, f in enumerate(features):
        if not isinstance(f, Tensor) or f.dim() != 4 or f.numel() == 0:
            shape = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
            raise ValueError(f"features[{j}]: expected non-empty activations [M, C, H, W], got {shape}")
        if not bool(torch.isfinite(f).all()):
            raise ValueError(f"features[{j}]: {int((~torch.isfinite(f)).sum())} of {f.numel()} values are NaN or "
                             "infinite")
        pooled.append(f.detach().double().mean(dim=(2, 3)))
    sizes = [p.shape[0] for p in pooled]
    if len(set(sizes)) > 1:
        raise ValueError(f"features: every layer needs the same M images, got {sizes}")
    return pooled


def _check_probe_labels(labels: object, m: int) -> Tensor:
    """[M] class ids or [M, C] multi-hot 0/1 labels."""
    if labels is None:
        raise ValueError("labels: 'probe_accuracy' weights need the images' labels")
    t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).detach().cpu()
    if t.dim() not in (1, 2) or t.shape[0] != m:
        raise ValueError(f"labels: expected [M] class ids or [M, C] multi-hot labels for M = {m} images, "
                         f"got shape {tuple(t.shape)}")
    if t.dim() == 1 and (t.is_floating_point() or t.dtype == torch.bool or bool((t < 0).any())):
        raise ValueError("labels: 1-D labels must be non-negative integer class ids")
    if t.dim() == 2 and not bool(((t == 0) | (t == 1)).all()):
        raise ValueError("labels: 2-D labels must be multi-hot 0/1")
    return t


def _probe_accuracy(x: Tensor, labels: Tensor, holdout: float, seed: int, steps: int) -> float:
    g = torch.Generator().manual_seed(seed)
    m = x.shape[0]
    order = torch.randperm(m, generator=g)
    n_test = max(1, int(round(holdout * m)))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0, correction=0).clamp_min(1e-6)
    z = (x - mean) / std
    multilabel = labels.dim() == 2
    classes = labels.shape[1] if multilabel else int(labels.max()) + 1
    probe = nn.Linear(z.shape[1], classes).double()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe.reset_parameters()
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    target = labels.double() if multilabel else labels.long()

    def closure():
        opt.zero_grad()
        out = probe(z[train])
        loss = (F.binary_cross_entropy_with_logits(out, target[train]) if multilabel
                else F.cross_entropy(out, target[train])) + 1e-4 * probe.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        top = probe(z[test]).argmax(1)
    if multilabel:
        return float(labels[test].gather(1, top[:, None]).squeeze(1).gt(0.5).double().mean())
    return float((top == labels[test]).double().mean())


def layer_activations(model: nn.Module, images: Tensor, layers: Sequence[str], batch_size: int = 64) -> list[Tensor]:
    """Each layer's output for ``images`` (eval mode, no gradients; ``""`` is the input)."""
    from .state import preserved_state
    from .validation import check_images, check_images_fit_model, check_layers, check_model

    check_model(model)
    check_images(images)
    check_images_fit_model(model, images)
    layers = list(layers) if not isinstance(layers, str) else [layers]
    names = check_layers(model, layers)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    modules = dict(model.named_modules())
    outputs: dict[str, list[Tensor]] = {name: [] for name in names}

    def keep(name):
        def hook(module, args, out):
            outputs[name].append(out.detach().clone())
        return hook

    handles = [modules[name].register_forward_hook(keep(name)) for name in names if name]
    try:
        with preserved_state(model), torch.no_grad():
            for chunk in images.split(batch_size):
                if "" in outputs:
                    outputs[""].append(chunk.clone())
                model(chunk.clone())  # the model may write to its input
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(outputs[name]) for name in layers]
