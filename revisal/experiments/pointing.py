"""Pointing game over a dataset for methods × layers × layer combinations (Tables 3, 5, 6; Figs. 3, 9).

One forward/backward per batch (per backward rule) serves every method and layer; each pair's maps
are resized to the original image size, optionally smoothed (TorchRay smooths gradient, guided
backprop and deconvnet maps with σ = 0.02·max(H, W)), and the maximum is scored. Combinations
(:func:`revisal.combine`) of each method's layers are scored alongside. Results are cached per part
(see :mod:`.cache`), so runs resume, shard and merge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

from ..combine import combine
from ..engine import saliency
from ..methods import resolve_methods
from ..metrics.pointing import gaussian_smooth, is_hit, maxima
from ..validation import check_layers
from .cache import CACHE_ROOT, IncompleteRun, RunCache, device_of, parse_shard, weights_checksum
from .sources import Pair, acceptance_region

#: TorchRay's benchmark smooths these methods' maps before pointing (σ = 0.02 · max(H, W)).
TORCHRAY_SMOOTHING = {"gradient": 0.02, "guided_backprop": 0.02, "deconvnet": 0.02}
WEIGHT_KINDS = ("probe_accuracy", "feature_spread", "linear", "uniform")
#: The rows of the paper's Table 3 (C)EB, GC, Gd(s), Gui, LA, (s)NG, in its order.
TABLE3_METHODS = ("contrastive_excitation_backprop", "excitation_backprop", "grad_cam", "gradient", "gradient_sum",
                  "guided_backprop", "linear_approx", "normgrad", "selective_normgrad")
DEFAULT_COMBINATIONS = tuple((kind, mode) for mode in ("sum", "product") for kind in WEIGHT_KINDS)


def combination_name(kind: str, mode: str) -> str:
    return f"{'+' if mode == 'sum' else '×'}{kind}"


@dataclass
class PointingResults:
    """Per-pair hits for every method at every layer and combination; accuracies in %."""

    methods: list[str]
    columns: list[str]  # the layers, then the combinations
    layers: list[str]
    hits: np.ndarray  # bool [P, methods, columns]
    class_ids: np.ndarray  # [P]
    difficult: np.ndarray  # bool [P]
    center: np.ndarray  # bool [P]: the centre-point baseline
    num_classes: int
    tolerance: float

    def _score(self, hits: np.ndarray, subset: str) -> float:
        """TorchRay's :class:`~revisal.metrics.PointingGame` accuracy of ``hits`` [P] (or of each
        column of ``hits`` [P, K]), vectorised: ``100 · mean_c hits_c / max(pairs_c, 1)`` over all
        ``num_classes`` classes."""
        keep = self.difficult if subset == "difficult" else np.ones(len(self.class_ids), dtype=bool)
        classes = self.class_ids[keep]
        pairs = np.bincount(classes, minlength=self.num_classes)
        h = np.asarray(hits).reshape(len(self.class_ids), -1)[keep].astype(np.float64)  # [kept pairs, columns]
        onehot = np.zeros((self.num_classes, len(classes)))
        onehot[classes, np.arange(len(classes))] = 1
        per_class = onehot @ h  # hits per class and column
        accuracy = 100 * (per_class / np.maximum(pairs, 1)[:, None]).mean(0)
        return float(accuracy[0]) if np.ndim(hits) == 1 else accuracy

    def take(self, index) -> "PointingResults":
        """The results of pairs ``index`` (a bootstrap resample: :func:`revisal.verdicts.bootstrap`)."""
        index = np.asarray(index)
        return replace(self, hits=self.hits[index], class_ids=self.class_ids[index],
                       difficult=self.difficult[index], center=self.center[index])

    def __len__(self) -> int:
        return self.pairs

    def select(self, methods: Sequence[str] | None = None, columns: Sequence[str] | None = None) -> "PointingResults":
        """The results of some methods and columns only (a smaller sample to bootstrap); the layers
        kept are the selected columns that are layers."""
        methods = list(self.methods if methods is None else methods)
        columns = list(self.columns if columns is None else columns)
        hits = self.hits[:, [self.methods.index(m) for m in methods]][:, :, [self.columns.index(c) for c in columns]]
        return replace(self, methods=methods, columns=columns, layers=[c for c in columns if c in self.layers], hits=hits)

    def accuracy_table(self, subset: str = "all") -> np.ndarray:
        """Accuracy (%) of every method (rows) and column (layers, then combinations), in one pass."""
        return self._score(self.hits.reshape(len(self.class_ids), -1), subset).reshape(len(self.methods), -1)

    def accuracies(self, method: str, subset: str = "all") -> dict[str, float]:
        """Accuracy (%) of every column (layers, then combinations) of one method, in one pass."""
        scores = self._score(self.hits[:, self.methods.index(method), :], subset)
        return dict(zip(self.columns, np.atleast_1d(scores).tolist()))

    def accuracy(self, method: str, column: str, subset: str = "all") -> float:
        """TorchRay's pointing accuracy (mean of per-class accuracies, %) of one method and column."""
        return self._score(self.hits[:, self.methods.index(method), self.columns.index(column)], subset)

    def center_accuracy(self, subset: str = "all") -> float:
        return self._score(self.center, subset)

    def best_single(self, method: str, subset: str = "all") -> tuple[str, float]:
        everything = self.accuracies(method, subset)
        scores = {layer: everything[layer] for layer in self.layers}
        best = max(scores, key=scores.get)
        return best, scores[best]

    def best_combination(self, method: str, subset: str = "all") -> tuple[str, float]:
        combos = self.columns[len(self.layers):]
        if not combos:
            raise ValueError("no combinations were scored")
        everything = self.accuracies(method, subset)
        scores = {c: everything[c] for c in combos}
        best = max(scores, key=scores.get)
        return best, scores[best]

    @property
    def pairs(self) -> int:
        return len(self.class_ids)


def pointing_game(zoo, source, methods: Sequence[str], layers: Sequence[str], *,
                  combinations: Sequence[tuple[str, str]] = DEFAULT_COMBINATIONS,
                  weights: dict[str, np.ndarray] | None = None, smooth: dict[str, float] | None = None,
                  meta=None, batch_size: int = 64, part_size: int = 512, device=None, shard=None,
                  cache_root=CACHE_ROOT, progress: bool = True, compute: bool = True,
                  _after_part=None) -> PointingResults | None:
    """Score every (method, layer) and combination on every image-class pair of ``source``.

    Args:
        zoo: a :class:`revisal.models.ZooModel` (its ``normalize`` must match ``source``'s inputs).
        source: a pointing source (:mod:`.sources`).
        combinations: (weight kind, "sum" | "product") pairs; ``weights`` maps each kind to J
            per-layer weights (see :func:`revisal.layer_weights`); required when combinations are.
        smooth: per-method smoothing fraction (default :data:`TORCHRAY_SMOOTHING`).
        meta: a :class:`revisal.MetaStep` to score meta-saliency maps.
        shard: ``"i/n"``: compute only parts ``p`` with ``p % n == i`` (default from ``torchrun``).
        cache_root: folder of result caches; ``None`` disables caching.
        compute: ``False`` only merges what the shards have cached.

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
    combinations = [tuple(c) for c in combinations]
    if combinations and weights is None:
        raise ValueError("weights: combinations need per-layer weights for each kind (revisal.layer_weights)")
    for kind, mode in combinations:
        if kind not in weights:
            raise ValueError(f"weights: no {kind!r} weights for the combination ({kind!r}, {mode!r}); "
                             f"have {sorted(weights)}")
        if mode not in ("sum", "product"):
            raise ValueError(f"combinations: mode must be 'sum' or 'product', got {mode!r}")
    combos = [(kind, mode, np.asarray(weights[kind], dtype=np.float64)) for kind, mode in combinations]
    smooth = TORCHRAY_SMOOTHING if smooth is None else smooth
    device = device_of(device)
    index, count = parse_shard(shard)
    spec = {"model": zoo.name, "weights": weights_checksum(zoo.model), "source": source.describe(),
            "methods": methods, "layers": layers, "combinations": [(k, m, w.tolist()) for k, m, w in combos],
            "smooth": {m: smooth.get(m, 0.0) for m in methods}, "meta": repr(meta), "part_size": part_size}
    cache = RunCache("pointing", spec, cache_root)
    pairs = source.pairs()
    parts = range((len(pairs) + part_size - 1) // part_size)
    model = zoo.model.to(device)
    todo = [p for p in parts if compute and p % count == index and cache.load(p) is None]
    bar = tqdm(total=sum(len(pairs[p * part_size:(p + 1) * part_size]) for p in todo), unit="pair",
               desc=f"pointing {zoo.name}", disable=not progress)
    start = time.perf_counter()
    for p in todo:
        chunk = pairs[p * part_size:(p + 1) * part_size]
        cache.save(p, _score_part(model, source, chunk, methods, layers, combos, smooth, meta, batch_size, device,
                                  bar, start))
        if _after_part is not None:
            _after_part(p)
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
    return PointingResults(methods, columns, layers, *(np.concatenate([part[k] for part in loaded]) for k in
                           ("hits", "class_ids", "difficult", "center")), source.num_classes, source.tolerance)


def _groups(pairs: list[Pair], source, batch_size: int):
    group: list[Pair] = []
    for pair in pairs:
        if group and (len(group) == batch_size or not source.same_input(group[0], pair)):
            yield group
            group = []
        group.append(pair)
    if group:
        yield group


def _score_part(model, source, pairs, methods, layers, combos, smooth, meta, batch_size, device, bar, start):
    hits = np.zeros((len(pairs), len(methods), len(layers) + len(combos)), dtype=bool)
    center = np.zeros(len(pairs), dtype=bool)
    columns = [layer or "input" for layer in layers] + [combination_name(kind, mode) for kind, mode, _ in combos]
    k = 0
    for group in _groups(pairs, source, batch_size):
        inputs, masks, sizes = source.load(group)
        ids = torch.tensor([p.class_id for p in group])
        maps = saliency(model, inputs.to(device), ids, layers, methods, meta=meta)
        size = sizes[0]
        regions = [acceptance_region(m, source.tolerance) for m in masks]
        for b, mask in enumerate(masks):
            center[k + b] = is_hit(mask, (size[1] / 2, size[0] / 2), source.tolerance)
        for mi, method in enumerate(methods):
            sigma = smooth.get(method, 0.0) * max(size)
            resized = [gaussian_smooth(F.interpolate(maps[method, layer].float().cpu(), size=size, mode="bilinear",
                                                     align_corners=False), sigma) for layer in layers]
            candidates = resized + [combine(resized, w, mode, size=size).float() for _, mode, w in combos]
            for ci, m in enumerate(candidates):
                xs, ys = maxima(m, f"{method} maps at {columns[ci]}")
                for b, region in enumerate(regions):
                    hits[k + b, mi, ci] = bool(region[ys[b], xs[b]])
        k += len(group)
        bar.update(len(group))
        bar.set_postfix(pairs_s=f"{bar.n / max(time.perf_counter() - start, 1e-9):.1f}", refresh=False)
    return {"hits": hits, "class_ids": np.array([p.class_id for p in pairs]),
            "difficult": np.array([p.difficult for p in pairs]), "center": center}

