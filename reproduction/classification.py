"""Scores for saliency maps and for the models that produce them."""

from __future__ import annotations

import numpy as np
from torch import Tensor


def average_precision(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> np.ndarray:
    r"""Per-class average precision (non-interpolated, as scikit-learn's ``average_precision_score``).

    For class c with positives P_c, ranking samples by decreasing score,
    :math:`AP_c = \frac{1}{|P_c|}\sum_{k \in P_c} \mathrm{precision@rank}(k)`, ties broken by counting
    every tied sample at once (precision and recall step at distinct thresholds only).

    Args:
        scores: ``[N, C]`` finite real scores (logits or probabilities); NaN or ±Inf is refused, as
            scikit-learn refuses it.
        labels: ``[N, C]`` binary ground truth (0/1 or bool); any other value is refused.

    Returns:
        ``[C]`` float64 array; NaN for a class without positives.
    """
    s = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64)
    y = np.asarray(labels.detach().cpu() if isinstance(labels, Tensor) else labels, dtype=np.float64)
    if s.shape != y.shape or s.ndim != 2:
        raise ValueError(f"scores, labels: expected matching [N, C] arrays, got {s.shape} and {y.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"scores: {int((~np.isfinite(s)).sum())} of {s.size} values are NaN or infinite")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"labels: expected binary 0/1 labels, got values {np.unique(y[~np.isin(y, (0.0, 1.0))])[:5]}")
    y = y == 1.0
    out = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        positives = y[:, c].sum()
        if positives == 0:
            continue
        order = np.argsort(-s[:, c], kind="stable")
        score, hit = s[order, c], y[order, c]
        last = np.r_[np.nonzero(np.diff(score))[0], len(score) - 1]  # last index of each distinct score
        tp = np.cumsum(hit)[last]
        precision = tp / (last + 1)
        recall_step = np.diff(np.r_[0, tp]) / positives
        out[c] = float((precision * recall_step).sum())
    return out


def mean_average_precision(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Mean over classes (with positives) of :func:`average_precision`."""
    return float(np.nanmean(average_precision(scores, labels)))
