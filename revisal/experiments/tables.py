"""Rows of the paper's tables from this run's results, with the published numbers beside them."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .. import paper
from .pointing import PointingResults, combination_name

SUBSETS = ("all", "difficult")


def _layer(name: str) -> str:
    return name or "input"


def _scored(methods, results: Mapping[str, PointingResults]) -> list:
    """The paper's rows that every run scored (a run may cover a subset of the methods)."""
    return [m for m in methods if all(m in res.methods for res in results.values())]


def by_layer(res: PointingResults, subset: str = "all") -> list[dict]:
    """One run's accuracy (%) per method at every layer and combination, its best single layer and
    best combination (the command line's table)."""
    combos = res.columns[len(res.layers):]
    rows = []
    for method in res.methods:
        row = {"method": method, **{_layer(c): v for c, v in res.accuracies(method, subset).items()}}
        layer, acc = res.best_single(method, subset)
        row["best single"] = f"{acc:.1f} ({_layer(layer)})"
        if combos:
            combo, acc = res.best_combination(method, subset)
            row["best combination"] = f"{acc:.1f} ({combo})"
        rows.append(row)
    return rows


def table3(results: Mapping[str, PointingResults]) -> list[dict]:
    """Best single layer (b.s.) and best weighted combination (b.w.) per method, model and subset."""
    rows = []
    for method in _scored(paper.TABLE3, results):
        row = {"method": paper.SHORT[method]}
        for model, res in results.items():
            arch = paper.COUNTERPART.get(model, model)
            for subset in SUBSETS:
                row[f"{model} {subset} b.s."] = res.best_single(method, subset)[1]
                row[f"{model} {subset} b.w."] = res.best_combination(method, subset)[1]
                bs, bw = paper.TABLE3[method].get((arch, subset), (float("nan"), float("nan")))
                row[f"paper {arch} {subset} b.s."] = bs
                row[f"paper {arch} {subset} b.w."] = bw
        rows.append(row)
    return rows


def table5(results: Mapping[str, PointingResults]) -> list[dict]:
    """Best individual layer per method, model and subset, beside the paper's."""
    rows = []
    for method in _scored(paper.TABLE5, results):
        row = {"method": paper.SHORT[method]}
        for model, res in results.items():
            arch = paper.COUNTERPART.get(model, model)
            for subset in SUBSETS:
                row[f"{model} {subset}"] = _layer(res.best_single(method, subset)[0])
                row[f"paper {arch} {subset}"] = paper.TABLE5[method].get((arch, subset), "")
        rows.append(row)
    return rows


def table6(results: Mapping[str, PointingResults]) -> list[dict]:
    """Gain (points) of each weighting over the best single layer, for LA and sNG."""
    rows = []
    for (method, mode, kind), published in paper.TABLE6.items():
        if not _scored([method], results):
            continue
        row = {"method": paper.SHORT[method], "combination": "+" if mode == "sum" else "×", "weights": kind}
        for model, res in results.items():
            arch = paper.COUNTERPART.get(model, model)
            for subset in SUBSETS:
                ours = res.accuracy(method, combination_name(kind, mode), subset) - res.best_single(method, subset)[1]
                row[f"{model} {subset}"] = ours
                index = (0 if arch == "resnet50" else 2) + (0 if subset == "all" else 1)
                row[f"paper {arch} {subset}"] = published[index]
        rows.append(row)
    return rows


def table4(correlations: Mapping[str, Mapping[str, np.ndarray]]) -> list[dict]:
    """Identity-trick correlation (%) per model and conv layer; the paper's row at the same depth
    (its k-th layer of that architecture) beside it."""
    rows = []
    for model, per_layer in correlations.items():
        arch = paper.COUNTERPART.get(model, model)
        published = [(layer, v) for (a, layer), v in paper.TABLE4.items() if a == arch]
        if arch == "vgg16":
            published = published[::-1][: len(per_layer)][::-1]  # align the deepest layers
        for k, (layer, corr) in enumerate(per_layer.items()):
            corr = np.asarray(corr, dtype=float)
            row = {"model": model, "layer": layer, "correlation %": 100 * np.nanmean(corr),
                   "± std": 100 * np.nanstd(corr)}
            p_layer, (p_mean, p_std) = published[k] if k < len(published) else ("", (float("nan"), float("nan")))
            row.update({"paper layer": f"{arch} {p_layer}", "paper %": p_mean, "paper ± std": p_std})
            rows.append(row)
    return rows
