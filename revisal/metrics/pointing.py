"""The pointing game (Zhang et al., ECCV 2016) exactly as TorchRay scores it (paper supp. A).

For an image-class pair, the saliency map is resized (bilinear) to the original image size and its
maximum is the predicted point (the first maximum in row-major order, as ``torch.argmax``). It is a
*hit* when some pixel of the class's ground-truth region lies within ``tolerance`` pixels of the
point: ``(y − v)² + (x − u)² < tolerance²`` for some mask pixel (y, x). Per class c,
``accuracy_c = hits_c / (hits_c + misses_c)`` and the score is the mean over classes.

TorchRay quirk, kept for parity: a class with no scored pair contributes 0 to the mean
(``hits / max(hits + misses, 1)``). :attr:`PointingGame.accuracy_present` averages only over classes
that had pairs instead.

Non-finite values are refused, not scored: a map holding a NaN or ±Inf has no meaningful maximum
(``torch.argmax`` would return the NaN's position), so :func:`point` and :func:`maxima` raise a
ValueError, as they do for an empty map; so do non-finite points, tolerances and smoothing widths.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from revisal.maps import check_size


def gaussian_smooth(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of [N, 1, H, W] maps with replicate padding: kernel
    ``∝ exp(−i²/2σ²)``, ``i ∈ {−⌈4σ⌉ … ⌈4σ⌉}``, normalised to sum 1 (TorchRay's convention for
    smoothing gradient-type maps before pointing)."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma: expected a finite number ≥ 0 (pixels), got {sigma!r}")
    if sigma == 0:
        return maps
    width = math.ceil(4 * sigma)
    i = torch.arange(-width, width + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (i / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(maps, (width, width, width, width), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return F.conv2d(x, kernel.view(1, 1, 1, -1))


def refuse_unscorable(maps: Tensor, name: str) -> None:
    """Refuse (ValueError naming ``name``) a batch ``[N, ...]`` of maps with no meaningful maximum:
    empty maps (no value to point at; an empty batch of maps is fine) and maps holding NaN or ±Inf."""
    if 0 in maps.shape[1:]:
        raise ValueError(f"{name}: empty, shape {tuple(maps.shape)}; such a map has no maximum to point at")
    finite = torch.isfinite(maps)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"{name}: {bad} of {maps.numel()} values are NaN or infinite; such a map has no maximum "
                         "to point at")


def maxima(maps: Tensor, name: str = "maps") -> tuple[Tensor, Tensor]:
    """Column and row (x, y) of the first maximum (row-major, as ``torch.argmax``) of each map of
    a ``[N, 1, H, W]`` batch; an empty map, or one with a NaN or ±Inf, is refused with a ValueError
    naming ``name``."""
    refuse_unscorable(maps, name)
    flat = maps.flatten(1).argmax(1)
    w = maps.shape[-1]
    return flat % w, flat // w


def point(saliency: Tensor | np.ndarray, size: tuple[int, int] | None = None, smooth: float = 0.0) -> tuple[int, int]:
    """The (x, y) maximiser of a 2-D map after bilinear resizing to ``size`` = (H, W) and optional
    smoothing with σ = ``smooth`` × max(H, W). Refuses a map holding NaN or ±Inf (ValueError)."""
    if not isinstance(saliency, (Tensor, np.ndarray)):
        raise TypeError(f"saliency: expected a 2-D Tensor or array, got {type(saliency).__name__}")
    m = torch.as_tensor(np.asarray(saliency) if isinstance(saliency, np.ndarray) else saliency).detach()
    if m.dim() < 2 or m.numel() != m.shape[-1] * m.shape[-2] or m.numel() == 0:
        raise ValueError(f"saliency: expected one non-empty 2-D map [H, W], got shape {tuple(m.shape)}")
    if isinstance(smooth, bool) or not isinstance(smooth, numbers.Real) or not 0 <= smooth < math.inf:
        raise ValueError(f"smooth: expected a finite fraction ≥ 0 of the map's size, got {smooth!r}")
    m = m.reshape(1, 1, *m.shape[-2:])
    refuse_unscorable(m, "saliency")  # before resizing spreads them
    m = m.float()
    if size is not None and tuple(m.shape[-2:]) != check_size(size):
        m = F.interpolate(m, size=check_size(size), mode="bilinear", align_corners=False)
    m = gaussian_smooth(m, smooth * max(m.shape[-2:]))
    x, y = maxima(m, "saliency")
    return int(x), int(y)


def _check_tolerance(tolerance: float) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not (0 < tolerance < math.inf):
        raise ValueError(f"tolerance: expected a positive finite number of pixels, got {tolerance!r}")


def is_hit(mask: np.ndarray | Tensor, xy: tuple[float, float], tolerance: float = 15) -> bool:
    """True when some pixel of ``mask`` (bool [H, W]) is strictly within ``tolerance`` of ``xy``."""
    _check_tolerance(tolerance)
    if len(xy) != 2 or not all(math.isfinite(float(v)) for v in xy):
        raise ValueError(f"xy: expected a finite point (x, y), got {tuple(xy)!r}")
    m = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask).bool()
    if m.dim() != 2:
        raise ValueError(f"mask: expected a 2-D [H, W] mask, got shape {tuple(m.shape)}")
    ys = (torch.arange(m.shape[0], dtype=torch.float64) - xy[1]) ** 2
    xs = (torch.arange(m.shape[1], dtype=torch.float64) - xy[0]) ** 2
    accept = (ys[:, None] + xs[None, :]) < tolerance**2
    return bool((m & accept).any())


def pointing_accuracy(hits, class_ids, num_classes: int, scored=None) -> float | np.ndarray:
    """TorchRay's pointing-game accuracy of pairs given their hits, in one pass:

        accuracy = (1/C) Σ_c hits_c / max(pairs_c, 1),   c = 0 … C−1 (C = ``num_classes``)

    where ``pairs_c`` counts the pairs of class c (only the ``scored`` ones, when given) and
    ``hits_c`` those of them that hit. A class with no counted pair contributes 0, as in
    :class:`PointingGame`. ``hits`` is [P] bools (a float is returned) or [P, K] (K columns scored at
    once, an array [K] returned; a column with no counted pair at all is NaN, unless P = 0);
    ``class_ids`` [P] ints in [0, C); ``scored`` bools shaped as ``hits``.
    """
    h = np.asarray(hits, dtype=bool)
    single = h.ndim == 1
    h = h.reshape(len(h), int(np.prod(h.shape[1:])))
    classes = np.asarray(class_ids)
    if classes.shape != (len(h),) or (len(classes) and not np.issubdtype(classes.dtype, np.integer)):
        raise ValueError(f"class_ids: expected {len(h)} ints, one per pair, got shape {classes.shape} of "
                         f"{classes.dtype}")
    if len(classes) and not (0 <= classes.min() and classes.max() < num_classes):
        raise ValueError(f"class_ids: expected 0 ≤ class_id < {num_classes}, got {classes.min()}…{classes.max()}")
    counted = np.ones_like(h) if scored is None else np.asarray(scored, dtype=bool).reshape(h.shape)
    pairs = np.bincount(classes, minlength=num_classes)
    # Hits and counted pairs per class and column, exact integer counts over the pairs sorted by
    # class (a BLAS product would be no more exact, and its threads stall a bootstrap's thousands of
    # calls on a busy machine).
    per_class = np.zeros((num_classes, h.shape[1]))
    per_class_pairs = np.zeros((num_classes, h.shape[1]))
    present = np.flatnonzero(pairs)
    if len(present):
        starts = (np.cumsum(pairs) - pairs)[present]
        order = np.argsort(classes, kind="stable")
        per_class[present] = np.add.reduceat((h & counted)[order].view(np.uint8), starts, axis=0, dtype=np.int64)
        per_class_pairs[present] = np.add.reduceat(counted[order].view(np.uint8), starts, axis=0, dtype=np.int64)
    accuracy = _class_mean(per_class, per_class_pairs)
    accuracy = np.where(counted.any(0) | (len(h) == 0), accuracy, np.nan)
    return float(accuracy[0]) if single else accuracy


def _class_mean(hits: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``mean_c hits_c / max(pairs_c, 1)`` over the first axis (classes)."""
    return (hits / np.maximum(pairs, 1)).mean(0)


@dataclass
class PointingGame:
    """Accumulates hits and misses per class; ``accuracy`` is TorchRay's mean of per-class accuracies."""

    num_classes: int
    tolerance: float = 15
    hits: np.ndarray = field(init=False)
    misses: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes: expected a positive int, got {self.num_classes!r}")
        _check_tolerance(self.tolerance)
        self.hits = np.zeros(self.num_classes)
        self.misses = np.zeros(self.num_classes)

    def add(self, class_id: int, hit: bool) -> None:
        try:
            if isinstance(class_id, bool):
                raise TypeError
            class_id = operator.index(class_id)  # ints, NumPy ints, 0-d integer tensors
        except TypeError:
            raise TypeError(f"class_id: expected an int, got {class_id!r}") from None
        if not 0 <= class_id < self.num_classes:
            raise ValueError(f"class_id: expected 0 ≤ class_id < {self.num_classes}, got {class_id}")
        if hit:
            self.hits[class_id] += 1
        else:
            self.misses[class_id] += 1

    def evaluate(self, mask, xy: tuple[float, float], class_id: int) -> bool:
        """Score one pair and record it."""
        hit = is_hit(mask, xy, self.tolerance)
        self.add(class_id, hit)
        return hit

    @property
    def class_accuracies(self) -> np.ndarray:
        return self.hits / np.maximum(self.hits + self.misses, 1)

    @property
    def accuracy(self) -> float:
        """Mean over all classes; a class without pairs counts as 0 (TorchRay): the formula of
        :func:`pointing_accuracy`, on the counts accumulated here."""
        return float(_class_mean(self.hits, self.hits + self.misses))

    @property
    def accuracy_present(self) -> float:
        """Mean over the classes that had at least one pair."""
        present = (self.hits + self.misses) > 0
        return float(self.class_accuracies[present].mean()) if present.any() else float("nan")


def pointing_game(points, masks, class_ids, num_classes: int, tolerance: float = 15,
                  difficult=None) -> dict[str, PointingGame]:
    """Score pairs given their predicted points (x, y), masks and class ids; returns
    ``{"all": game}`` and, when ``difficult`` flags are given, ``"difficult"`` (flagged pairs only)."""
    points, masks, class_ids = list(points), list(masks), list(class_ids)
    if not len(points) == len(masks) == len(class_ids):
        raise ValueError(f"points, masks, class_ids: expected one of each per pair, got {len(points)}, {len(masks)} "
                         f"and {len(class_ids)}")
    if difficult is not None and len(difficult) != len(points):
        raise ValueError(f"difficult: expected {len(points)} flags, got {len(difficult)}")
    games = {"all": PointingGame(num_classes, tolerance)}
    if difficult is not None:
        games["difficult"] = PointingGame(num_classes, tolerance)
    for k, (xy, mask, c) in enumerate(zip(points, masks, class_ids)):
        hit = games["all"].evaluate(mask, xy, c)
        if difficult is not None and difficult[k]:
            games["difficult"].add(int(c), hit)
    return games


def center_points(sizes) -> list[tuple[float, float]]:
    """The baseline that always points at the image centre (x = W/2, y = H/2), as TorchRay."""
    return [(w / 2, h / 2) for h, w in sizes]
