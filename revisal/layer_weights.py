"""Per-layer weights γ_j for :func:`revisal.combine.combine` (paper § 4.2, supp. C): uniform, linear
in depth, the spread of each layer's features across images, or the held-out accuracy of a linear
probe on each layer's pooled features.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def layer_weights(kind: Literal["feature_spread", "probe_accuracy", "linear", "uniform"], *,
                  num_layers: int | None = None, features: Sequence[Tensor] | None = None,
                  labels: Tensor | None = None, holdout: float = 0.5, seed: int = 0, steps: int = 300) -> np.ndarray:
    r"""Per-layer weights γ_j (unnormalised; :func:`revisal.combine.combine` normalises them).

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
            :func:`revisal.activations.layer_activations` collects them).
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
    """Held-out accuracy of a linear probe ``W z + b`` on standardised features ``z = (x − μ)/σ``
    (μ, σ from the training images), fitted by L-BFGS to cross-entropy (multi-label: per-class
    logistic loss) plus ``1e-4 ‖W‖²``."""
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
