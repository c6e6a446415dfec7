"""Rows of the paper's tables from this run's results, with the published numbers beside them."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .. import paper
from ..layer_weights import PAPER_WEIGHTINGS, PUBLISHED_WEIGHTINGS, WEIGHTINGS
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


#: The methods of the paper's Table 6.
TABLE6_METHODS = ("linear_approx", "selective_normgrad")


def table6(results: Mapping[str, PointingResults],
           published: Mapping[str, Mapping[str, PointingResults]] | None = None) -> list[dict]:
    """Gain (points) of each weighting over the best single layer, for LA and sNG, both ways.

    First the weightings computed here: every named weighting (:data:`revisal.layer_weights.WEIGHTINGS`)
    whose combinations ``results`` scored, the paper's four first. Then, from ``published`` (model →
    method → results of :func:`.analyses.published_pointing`), the authors' published weightings,
    labelled "<name> (published)". A gain is ``accuracy(combination) − best single layer`` with the
    best single layer from ``results`` (NaN where a model has no such combination). Beside each,
    the paper's gain for the Table 6 row the weighting stands for (NaN where it stands for none).
    """
    published = published or {}
    computed = dict.fromkeys(n for n in (*PAPER_WEIGHTINGS, *WEIGHTINGS) if WEIGHTINGS[n].source != "published")
    rows = []
    for method in _scored(TABLE6_METHODS, results):
        for mode in ("sum", "product"):
            sets = [(name, name, dict(results)) for name in computed]
            sets += [(name, f"{name} (published)", {model: by_method[method] for model, by_method in published.items()
                                                     if method in by_method}) for name in PUBLISHED_WEIGHTINGS]
            for name, label, scored in sets:
                column = combination_name(name, mode)
                if not any(column in res.columns for res in scored.values()):
                    continue
                paper_kind = WEIGHTINGS[name].table6
                row = {"method": paper.SHORT[method], "combination": "+" if mode == "sum" else "×", "weights": label}
                for model, res in results.items():
                    arch = paper.COUNTERPART.get(model, model)
                    for subset in SUBSETS:
                        combined = scored.get(model)
                        row[f"{model} {subset}"] = (combined.accuracy(method, column, subset)
                                                    - res.best_single(method, subset)[1]
                                                    if combined is not None and column in combined.columns
                                                    else float("nan"))
                        index = (0 if arch == "resnet50" else 2) + (0 if subset == "all" else 1)
                        row[f"paper {arch} {subset}"] = paper.TABLE6.get((method, mode, paper_kind),
                                                                         (float("nan"),) * 4)[index]
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
