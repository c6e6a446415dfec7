"""Rows of the paper's tables from this run's results, with the published numbers beside them."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from reproduction import paper
from reproduction.pointing_runs import PointingResults, combination_name
from reproduction.published_weights import ALL_WEIGHTINGS, PUBLISHED_WEIGHTINGS
from revisal.layer_weights import PAPER_WEIGHTINGS, WEIGHTINGS

SUBSETS = ("all", "difficult")


def _paper_skeleton(arch: str):
    """The paper's torchvision architecture without weights (on the meta device: no memory, no time)."""
    import torch
    import torchvision

    with torch.device("meta"):
        return getattr(torchvision.models, arch)()


def relative_depth(model, layer: str) -> tuple[int, int]:
    """``(k, L)``: of the model's L convolutions (registration order), the k that have run once
    ``layer``'s output exists (its own included; 0 for the input ``""``). k/L puts layers of
    different networks on one depth axis: VGG16's features.28 is 13/13, mini_vgg's features.16 8/8."""
    from torch import nn

    names = [(name, isinstance(m, nn.Conv2d)) for name, m in model.named_modules()]
    total = sum(conv for _, conv in names)
    if layer == "":
        return 0, total
    index = [name for name, _ in names]
    if layer not in index:
        raise ValueError(f"layer: no module {layer!r} in the model")
    last = max(i for i, name in enumerate(index) if name == layer or name.startswith(layer + "."))
    return sum(conv for _, conv in names[:last + 1]), total


def _depth(model, layer: str) -> str:
    k, total = relative_depth(model, layer)
    return f"{k}/{total}"


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


def table5(results: Mapping[str, PointingResults], models: Mapping[str, object] | None = None) -> list[dict]:
    """Best individual layer per method, model and subset, beside the paper's; with ``models``
    (name → ``nn.Module``), each layer with its relative depth k/L (:func:`relative_depth`), so that
    layers of different networks compare."""
    skeletons: dict[str, object] = {}
    rows = []
    for method in _scored(paper.TABLE5, results):
        row = {"method": paper.SHORT[method]}
        for model, res in results.items():
            arch = paper.COUNTERPART.get(model, model)
            for subset in SUBSETS:
                ours = res.best_single(method, subset)[0]
                theirs = paper.TABLE5[method].get((arch, subset), "")
                if models is None:
                    row[f"{model} {subset}"], row[f"paper {arch} {subset}"] = _layer(ours), theirs
                    continue
                if theirs and arch not in skeletons:
                    skeletons[arch] = _paper_skeleton(arch)
                row[f"{model} {subset}"] = f"{_layer(ours)} ({_depth(models[model], ours)})"
                row[f"paper {arch} {subset}"] = (f"{theirs} ({_depth(skeletons[arch], '' if theirs == 'input' else theirs)})"
                                                 if theirs else "")
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
    computed = dict.fromkeys((*PAPER_WEIGHTINGS, *WEIGHTINGS))
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
                paper_kind = ALL_WEIGHTINGS[name].table6
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


def _pair_by_depth(ours: list[float], theirs: list[float]) -> dict[int, int]:
    """``{index in ours: index in theirs}``, both lists of relative depths in increasing order: each
    of theirs, in turn, takes the nearest layer of ours that is unpaired and deeper than every layer
    paired so far, unless a later one of theirs is nearer to that layer (it is then left for it)."""
    pairs: dict[int, int] = {}
    for j, depth in enumerate(theirs):
        free = [i for i in range(len(ours)) if i not in pairs and all(i > k for k in pairs)]
        if not free:
            continue
        i = min(free, key=lambda i: abs(ours[i] - depth))
        if all(abs(ours[i] - depth) <= abs(ours[i] - later) + 1e-12 for later in theirs[j:]):
            pairs[i] = j
    return pairs


#: A Table 4 cell with no partner row at that depth (footnoted where the table is shown).
NO_PARTNER = "—"


def table4(correlations: Mapping[str, Mapping[str, np.ndarray]], models: Mapping[str, object]) -> list[dict]:
    """Identity-trick correlation (%) per model and conv layer, and every row of the paper's Table 4
    for the architecture the model stands in for, paired by relative depth k/L
    (:func:`relative_depth`): each paper row sits beside the layer of ours nearest in depth, one
    each, in depth order (where every layer of ours has the paper's name, as the ResNets' stages do,
    by name); a row of either side without a partner stands alone, its other cells "—" (:data:`NO_PARTNER`;
    a paper row standing alone names the paper's network in ``model``).
    ``models``: name → ``nn.Module`` of each model in ``correlations``."""
    rows = []
    for model, per_layer in correlations.items():
        arch = paper.COUNTERPART.get(model, model)
        skeleton = _paper_skeleton(arch)
        ours = [(layer, relative_depth(models[model], layer)) for layer in per_layer]
        theirs = [(layer, relative_depth(skeleton, layer), v) for (a, layer), v in paper.TABLE4.items() if a == arch]
        ratio = lambda kl: kl[0] / kl[1]  # noqa: E731
        names = [layer for layer, _, _ in theirs]
        if all(layer in names for layer, _ in ours):  # the same stage names (ResNets): pair by name
            pairs = {i: names.index(layer) for i, (layer, _) in enumerate(ours)}
        else:
            pairs = _pair_by_depth([ratio(d) for _, d in ours], [ratio(d) for _, d, _ in theirs])
        back = {j: i for i, j in pairs.items()}
        order = sorted([("ours", i, ratio(d)) for i, (_, d) in enumerate(ours)]
                       + [("theirs", j, ratio(d)) for j, (_, d, _) in enumerate(theirs) if j not in back],
                       key=lambda t: (t[2], t[0]))
        for side, index, _ in order:
            row = {"model": model if side == "ours" else f"{arch} (paper only)", "layer": NO_PARTNER,
                   "depth k/L": NO_PARTNER, "correlation %": NO_PARTNER, "± std": NO_PARTNER, "paper layer": NO_PARTNER,
                   "paper depth": NO_PARTNER, "paper %": NO_PARTNER, "paper ± std": NO_PARTNER}
            if side == "ours":
                layer, (k, total) = ours[index]
                corr = np.asarray(per_layer[layer], dtype=float)
                row.update({"layer": layer, "depth k/L": f"{k}/{total}", "correlation %": 100 * np.nanmean(corr),
                            "± std": 100 * np.nanstd(corr)})
                index = pairs.get(index)
            if index is not None:
                p_layer, (k, total), (p_mean, p_std) = theirs[index]
                row.update({"paper layer": f"{arch} {p_layer}", "paper depth": f"{k}/{total}", "paper %": p_mean,
                            "paper ± std": p_std})
            rows.append(row)
    return rows
