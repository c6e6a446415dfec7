"""Pointing game over a dataset for methods × layers × layer combinations (Tables 3, 5, 6; Figs. 3, 9).

The authors' protocol (TorchRay's ``attribution_benchmark.py``, normgrad branch):

* the objective is TorchRay's pointing gradient, :class:`reproduction.objectives.PointingObjective`
  (the log-sum-exp over space of the class's score map; the target logit for a ``[N, C]`` output);
* each map is resized (bilinear) to the original image, and only the maps at the network input are
  smoothed, by a Gaussian of σ = ``smooth``·max(H, W) (0.02), for every method; the maximum is
  the predicted point;
* combinations (:func:`revisal.combine`) use every requested layer except the input, unsmoothed;
* contrastive excitation backprop subtracts its dual pass at the model's contrast layer
  (``zoo.contrast_layer``: relu7 for VGG16, the pool before ``fc`` for ResNet50);
* meta-saliency steps on the cross-entropy at every location of the score map
  (:func:`reproduction.objectives.map_cross_entropy`) unless the ``MetaStep`` brings its own loss.

One forward/backward per image (per backward rule) serves every method, layer and class of that
image (a detection image's pairs always form one batch, so results do not depend on
``batch_size``). Results are cached per part (see :mod:`.cache`), so runs resume, shard and merge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

from reproduction.cache import CACHE_ROOT, IncompleteRun, device_of, parse_shard, run_cache
from reproduction.objectives import PointingObjective, map_cross_entropy
from reproduction.sources import Pair, acceptance_region
from revisal.combine import combine_many
from revisal.engine import saliency
from revisal.maps import flat_maps
from revisal.methods import resolve_methods
from revisal.metrics.pointing import gaussian_smooth, is_hit, maxima, pointing_accuracy
from revisal.validation import INPUT_LAYER, check_layers

#: TorchRay's benchmark smooths every method's map at the network input (and nowhere else) before
#: pointing, with σ = 0.02 · max(H, W).
INPUT_SMOOTHING = 0.02
WEIGHT_KINDS = ("probe_accuracy", "feature_spread", "linear", "uniform")
#: The rows of the paper's Table 3 (C)EB, GC, Gd(s), Gui, LA, (s)NG, in its order.
TABLE3_METHODS = ("contrastive_excitation_backprop", "excitation_backprop", "grad_cam", "gradient", "gradient_sum",
                  "guided_backprop", "linear_approx", "normgrad", "selective_normgrad")
DEFAULT_COMBINATIONS = tuple((kind, mode) for mode in ("sum", "product") for kind in WEIGHT_KINDS)


def combination_name(kind: str, mode: str) -> str:
    return f"{'+' if mode == 'sum' else '×'}{kind}"


def export_name(column: str) -> str:
    """A column as the ``--export`` CSV names it: the module name, ``""`` for the input,
    ``sum:<weighting>`` / ``product:<weighting>`` for a combination."""
    if column[:1] in ("+", "×"):
        return f"{'sum' if column[0] == '+' else 'product'}:{column[1:]}"
    return column


def _best(scores: dict[str, float]) -> tuple[str, float]:
    """The column with the highest accuracy and that accuracy; an "n/a" (NaN) column is never best."""
    best = max(scores, key=lambda k: -np.inf if np.isnan(scores[k]) else scores[k])
    return best, scores[best]


@dataclass
class PointingResults:
    """Per-pair hits for every method at every layer and combination; accuracies in %.

    ``hits`` are TorchRay's (the argmax of every map, flat or not). ``scored`` is False where the map
    was flat (:func:`revisal.maps.flat_maps`: constant up to rounding, so its argmax is the first
    pixel, not a location the method chose): such pairs are "n/a", left out of that column's
    accuracy (out of its class's count too), and a column with no scored pair is NaN.
    """

    methods: list[str]
    columns: list[str]  # the layers, then the combinations
    layers: list[str]
    hits: np.ndarray  # bool [P, methods, columns]
    class_ids: np.ndarray  # [P]
    difficult: np.ndarray  # bool [P]
    center: np.ndarray  # bool [P]: the centre-point baseline
    num_classes: int
    tolerance: float
    points: np.ndarray | None = None  # int [P, methods, columns, 2]: (x, y) in original-image pixels
    images: np.ndarray | None = None  # [P] each pair's image id (the dataset's image name)
    scored: np.ndarray | None = None  # bool like hits: False where the map was flat ("n/a"); None: all scored

    def __post_init__(self) -> None:
        if self.scored is None:
            self.scored = np.ones_like(self.hits, dtype=bool)

    def _score(self, hits: np.ndarray, subset: str, scored: np.ndarray | None = None) -> float:
        """``100 ·`` :func:`revisal.metrics.pointing_accuracy` of ``hits`` [P] (or of each column of
        ``hits`` [P, K]) over the pairs of ``subset``, counting only the ``scored`` pairs."""
        keep = self.difficult if subset == "difficult" else slice(None)
        n = len(self.class_ids)
        counted = None if scored is None else np.asarray(scored, dtype=bool).reshape(n, -1)[keep]
        hits = np.asarray(hits, dtype=bool)
        accuracy = pointing_accuracy(hits.reshape(n, -1)[keep], self.class_ids[keep], self.num_classes, counted)
        return float(100 * accuracy[0]) if hits.ndim == 1 else 100 * accuracy

    def take(self, index) -> "PointingResults":
        """The results of pairs ``index`` (a bootstrap resample: :func:`reproduction.verdicts.bootstrap`)."""
        index = np.asarray(index)

        def rows(a):  # np.take along axis 0: the same rows as a[index], ~20× faster on the 4-D points
            return None if a is None else np.take(a, index, axis=0)

        return replace(self, hits=rows(self.hits), class_ids=rows(self.class_ids), difficult=rows(self.difficult),
                       center=rows(self.center), points=rows(self.points), images=rows(self.images),
                       scored=rows(self.scored))

    def __len__(self) -> int:
        return self.pairs

    def select(self, methods: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> "PointingResults":
        """The results of some methods and columns only (a smaller sample to bootstrap); the layers
        kept are the selected columns that are layers."""
        methods = list(self.methods if methods is None else methods)
        columns = list(self.columns if columns is None else columns)
        mi, ci = [self.methods.index(m) for m in methods], [self.columns.index(c) for c in columns]
        points = None if self.points is None else self.points[:, mi][:, :, ci]
        return replace(self, methods=methods, columns=columns, layers=[c for c in columns if c in self.layers],
                       hits=self.hits[:, mi][:, :, ci], points=points, scored=self.scored[:, mi][:, :, ci])

    def export_rows(self) -> list[dict]:
        """One row per (pair, method, column): ``image_id, class_id, method, layer, x, y, hit``
        (``layer`` as :func:`export_name` writes it)."""
        if self.points is None or self.images is None:
            raise ValueError("results: these results carry no points (computed before points were stored)")
        return [{"image_id": str(self.images[k]), "class_id": int(self.class_ids[k]), "method": method,
                 "layer": export_name(column), "x": int(self.points[k, mi, ci, 0]),
                 "y": int(self.points[k, mi, ci, 1]), "hit": int(self.hits[k, mi, ci])}
                for k in range(self.pairs) for mi, method in enumerate(self.methods)
                for ci, column in enumerate(self.columns)]

    def accuracy_table(self, subset: str = "all") -> np.ndarray:
        """Accuracy (%) of every method (rows) and column (layers, then combinations), in one pass."""
        n = len(self.class_ids)
        return self._score(self.hits.reshape(n, -1), subset, self.scored.reshape(n, -1)).reshape(len(self.methods), -1)

    def accuracies(self, method: str, subset: str = "all") -> dict[str, float]:
        """Accuracy (%) of every column (layers, then combinations) of one method, in one pass."""
        mi = self.methods.index(method)
        scores = self._score(self.hits[:, mi, :], subset, self.scored[:, mi, :])
        return dict(zip(self.columns, np.atleast_1d(scores).tolist()))

    def accuracy(self, method: str, column: str, subset: str = "all") -> float:
        """TorchRay's pointing accuracy (mean of per-class accuracies, %) of one method and column."""
        mi, ci = self.methods.index(method), self.columns.index(column)
        return self._score(self.hits[:, mi, ci], subset, self.scored[:, mi, ci])

    def flat_share(self, method: str, column: str) -> float:
        """Share of the pairs whose map of ``method`` at ``column`` was flat ("n/a")."""
        return float(1 - self.scored[:, self.methods.index(method), self.columns.index(column)].mean())

    def center_accuracy(self, subset: str = "all") -> float:
        return self._score(self.center, subset)

    def best_single(self, method: str, subset: str = "all") -> tuple[str, float]:
        everything = self.accuracies(method, subset)
        return _best({layer: everything[layer] for layer in self.layers})

    def best_combination(self, method: str, subset: str = "all") -> tuple[str, float]:
        combos = self.columns[len(self.layers):]
        if not combos:
            raise ValueError("no combinations were scored")
        everything = self.accuracies(method, subset)
        return _best({c: everything[c] for c in combos})

    @property
    def pairs(self) -> int:
        return len(self.class_ids)



def run_pointing_game(zoo, source, methods: Sequence[str], layers: Sequence[str], *,
                  combinations: Sequence[tuple[str, str]] = DEFAULT_COMBINATIONS,
                  weights: dict[str, np.ndarray] | None = None, smooth: float = INPUT_SMOOTHING,
                  meta=None, batch_size: int = 64, part_size: int = 512, device=None, shard=None,
                  cache_root=CACHE_ROOT, progress: bool = True, compute: bool = True,
                  on_part_saved: Callable[[int], None] | None = None) -> PointingResults | None:
    """Score every (method, layer) and combination on every image-class pair of ``source``, by the
    protocol of the module docstring.

    Args:
        zoo: a :class:`revisal.models.ZooModel` (its ``normalize`` must match ``source``'s inputs;
            its ``contrast_layer``, if any, is where contrastive EB subtracts its dual pass).
        source: a pointing source (:mod:`.sources`).
        layers: module names; ``""`` (the input) is scored alone, never combined.
        combinations: (weight kind, "sum" | "product") pairs; ``weights`` maps each kind to one
            weight per combined (non-input) layer, or per entry of ``layers`` (the input's weight
            is then dropped); see :func:`revisal.layer_weights`. Required when combinations are.
        smooth: σ of the Gaussian applied to input-layer maps, as a fraction of max(H, W).
        meta: a :class:`revisal.MetaStep` to score meta-saliency maps (without its own ``loss``,
            it steps on :func:`reproduction.objectives.map_cross_entropy`; one pair per pass).
        batch_size: pairs per pass for the testbed; a detection image's pairs always share one pass.
        shard: ``"i/n"``: compute only parts ``p`` with ``p % n == i`` (default from ``torchrun``).
        cache_root: folder of result caches; ``None`` disables caching.
        compute: ``False`` only merges what the shards have cached.
        on_part_saved: called with each part's index once its results are on disk (progress
            reporting; a killed run resumes after the last part it reported).

    Returns:
        The results once every part exists (this shard's work plus other shards' cached parts),
        else ``None`` (other shards still running).

    Raises:
        IncompleteRun: ``compute=False`` while some part is missing (a merge before its shards ran).
    """
    methods = list(methods) if not isinstance(methods, str) else [methods]
    resolve_methods(methods)  # unknown names fail here, before any data is read
    layers = check_layers(zoo.model, list(layers) if not isinstance(layers, str) else [layers])
    for name, value in (("batch_size", batch_size), ("part_size", part_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not 0 <= smooth < 1:
        raise ValueError(f"smooth: expected a fraction of the image side in [0, 1), got {smooth!r}")
    combined = [layer for layer in layers if layer != INPUT_LAYER]
    combinations = [tuple(c) for c in combinations]
    if combinations and weights is None:
        raise ValueError("weights: combinations need per-layer weights for each kind (revisal.layer_weights)")
    if combinations and len(combined) < 2:
        raise ValueError(f"layers: combinations need at least two non-input layers, got {combined}")
    combos = []
    for kind, mode in combinations:
        if kind not in weights:
            raise ValueError(f"weights: no {kind!r} weights for the combination ({kind!r}, {mode!r}); "
                             f"have {sorted(weights)}")
        if mode not in ("sum", "product"):
            raise ValueError(f"combinations: mode must be 'sum' or 'product', got {mode!r}")
        w = np.asarray(weights[kind], dtype=np.float64).ravel()
        if len(w) == len(layers) and len(layers) != len(combined):
            w = w[[i for i, layer in enumerate(layers) if layer != INPUT_LAYER]]
        if len(w) != len(combined):
            raise ValueError(f"weights: {kind!r} has {len(w)} weights for the {len(combined)} combined layers "
                             f"{combined} (or the {len(layers)} layers {layers})")
        combos.append((kind, mode, w))
    if meta is not None and meta.loss is None:
        meta = replace(meta, loss=map_cross_entropy)
    device = device_of(device)
    index, count = parse_shard(shard)
    contrast = getattr(zoo, "contrast_layer", None)
    cache = run_cache("pointing", cache_root, model=zoo, source=source, methods=methods, layers=layers,
                      combinations=[(k, m, w.tolist()) for k, m, w in combos], smooth=smooth, objective="pointing",
                      contrast=contrast, meta=meta, part_size=part_size,
                      batch_size=batch_size if source.batches_images else None)
    pairs = source.pairs()
    parts = range((len(pairs) + part_size - 1) // part_size)
    model = zoo.model.to(device)
    todo = [p for p in parts if compute and p % count == index and cache.load(p) is None]
    bar = tqdm(total=sum(len(pairs[p * part_size:(p + 1) * part_size]) for p in todo), unit="pair",
               desc=f"pointing {zoo.name}", disable=not progress)
    start = time.perf_counter()
    run = _Run(model, source, methods, layers, combined, combos, smooth, contrast, meta, batch_size, device)
    for p in todo:
        cache.save(p, run.score(pairs[p * part_size:(p + 1) * part_size], bar, start))
        if on_part_saved is not None:
            on_part_saved(p)
    bar.close()
    loaded = [cache.load(p) for p in parts]
    missing = [p for p, part in zip(parts, loaded) if part is None]
    if missing:
        message = (f"pointing game: {len(missing)} of {len(loaded)} parts missing (parts {missing[:10]}"
                   f"{' …' if len(missing) > 10 else ''}) in {cache.path}")
        if not compute:
            raise IncompleteRun(f"{message}; run every shard with the same arguments (--shard i/n for i < n, or "
                                "torchrun), then merge")
        print(f"{message}; other shards still have to run them, then merge")
        return None
    columns = layers + [combination_name(k, m) for k, m, _ in combos]
    merged = {k: np.concatenate([part[k] for part in loaded]) for k in loaded[0]}
    return PointingResults(methods, columns, layers, merged["hits"], merged["class_ids"], merged["difficult"],
                           merged["center"], source.num_classes, source.tolerance, points=merged["points"],
                           images=merged["images"], scored=merged["scored"])


@dataclass
class _Run:
    """What one pointing game computes for a list of pairs (a part)."""

    model: torch.nn.Module
    source: object
    methods: list[str]
    layers: list[str]
    combined: list[str]
    combos: list
    smooth: float
    contrast: str | None
    meta: object
    batch_size: int
    device: torch.device

    def groups(self, pairs: list[Pair]):
        """Batches of pairs: one per image for detection sources (any ``batch_size``), else up to
        ``batch_size`` pairs of same-size inputs; one pair per batch under meta-saliency."""
        limit = 1 if self.meta is not None else (self.batch_size if self.source.batches_images else len(pairs))
        group: list[Pair] = []
        for pair in pairs:
            if group and (len(group) == limit or not self.source.same_input(group[0], pair)):
                yield group
                group = []
            group.append(pair)
        if group:
            yield group

    def maps(self, inputs: Tensor, group: list[Pair]):
        objective = PointingObjective([p.class_id for p in group])
        return saliency(self.model, inputs.to(self.device), objective, self.layers, self.methods, meta=self.meta,
                        contrast_layer=self.contrast if "contrastive_excitation_backprop" in self.methods else None)

    def score(self, pairs: list[Pair], bar, start) -> dict[str, np.ndarray]:
        columns = [layer or "input" for layer in self.layers] + [combination_name(k, m) for k, m, _ in self.combos]
        hits = np.zeros((len(pairs), len(self.methods), len(columns)), dtype=bool)
        scored = np.zeros_like(hits)
        points = np.zeros((len(pairs), len(self.methods), len(columns), 2), dtype=np.int32)
        center = np.zeros(len(pairs), dtype=bool)
        k = 0
        for group in self.groups(pairs):
            inputs, masks, sizes = self.source.load(group)
            maps = self.maps(inputs, group)
            size = sizes[0]
            regions = torch.stack([acceptance_region(m, self.source.tolerance) for m in masks])  # [B, H, W]
            for b, mask in enumerate(masks):
                center[k + b] = is_hit(mask, (size[1] / 2, size[0] / 2), self.source.tolerance)
            rows = torch.arange(len(group))[None, :]
            for mi, method in enumerate(self.methods):
                resized = {layer: F.interpolate(maps[method, layer].float().cpu(), size=size, mode="bilinear",
                                                align_corners=False) for layer in self.layers}
                candidates = [gaussian_smooth(resized[layer], self.smooth * max(size)) if layer == INPUT_LAYER
                              else resized[layer] for layer in self.layers]
                if self.combos:  # the combined layers resized and normalised once for every weighting
                    candidates += [c.float() for c in combine_many([resized[layer] for layer in self.combined],
                                                                   [(w, mode) for _, mode, w in self.combos],
                                                                   size=size)]
                xs, ys = _maxima(candidates, [f"{method} maps at {column}" for column in columns])  # [columns, B]
                points[k:k + len(group), mi, :, 0], points[k:k + len(group), mi, :, 1] = xs.T.numpy(), ys.T.numpy()
                hits[k:k + len(group), mi, :] = regions[rows, ys, xs].T.numpy()
                scored[k:k + len(group), mi, :] = ~torch.stack([flat_maps(c) for c in candidates], 1).numpy()
            k += len(group)
            bar.update(len(group))
            bar.set_postfix(pairs_s=f"{bar.n / max(time.perf_counter() - start, 1e-9):.1f}", refresh=False)
        return {"hits": hits, "scored": scored, "points": points, "class_ids": np.array([p.class_id for p in pairs]),
                "difficult": np.array([p.difficult for p in pairs]), "center": center,
                "images": np.array([self.source.image_id(p) for p in pairs])}


def _maxima(candidates: list[Tensor], names: list[str]) -> tuple[Tensor, Tensor]:
    """:func:`revisal.metrics.pointing.maxima` of K same-shaped ``[B, 1, H, W]`` batches at once:
    x and y ``[K, B]``; a batch holding NaN or ±Inf is refused by ``maxima`` under its name."""
    stacked = torch.stack(candidates)  # [K, B, 1, H, W]
    finite = torch.isfinite(stacked).flatten(1).all(1)
    if not bool(finite.all()):
        k = int(torch.nonzero(~finite)[0])
        maxima(candidates[k], names[k])  # raises, naming the column
    flat = stacked.flatten(2).argmax(2)
    width = stacked.shape[-1]
    return flat % width, flat // width
