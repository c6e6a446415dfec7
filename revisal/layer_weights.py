r"""Per-layer weights γ_j for :func:`revisal.combine.combine` (paper § 4.2, supp. C), by name.

:data:`WEIGHTINGS` names every weighting; :func:`layer_weights` computes one. Two sources:

* rules from J alone: ``"uniform"`` γ_j = 1/J; ``"linear"`` γ_j = j/J, j = 1 (shallowest) … J,
  the authors' ``linspace(0, 1, J + 1)[1:]``;
* the paper's data-driven formulas, from each layer's activations on M images sampled uniformly
  across classes (:func:`sample_across_classes`): ``"feature_spread"``, ``"probe_accuracy"`` (the
  paper's: the probe's accuracy on the M images it was trained on) and ``"probe_accuracy_heldout"``
  (this project's variant: trained on part of the images, scored on the rest).

(The numbers the authors published in their script are data of the reproduction, not of the
library: ``reproduction.published_weights``.)

Every weighting gives J non-negative weights, normalised to sum 1 by :func:`revisal.combine.combine`
(and by :func:`normalized`). None has a weight for the input layer: the authors combine the network's
layers only.
"""

from __future__ import annotations

import difflib
import numbers
import warnings
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Weighting:
    """A named weighting: where its numbers come from, the row of the paper's Table 6 it stands for
    (a key kind of :data:`reproduction.paper.TABLE6`, or None) and its formula."""

    name: str
    #: "rule" (from J alone), "activations" (from the layers' features) or "published" (numbers
    #: given elsewhere, e.g. a paper's tables)
    source: Literal["rule", "activations", "published"]
    table6: str | None
    formula: str


WEIGHTINGS: dict[str, Weighting] = {w.name: w for w in (
    Weighting("uniform", "rule", "uniform", "γ_j = 1/J"),
    Weighting("linear", "rule", "linear", "γ_j = j/J, j = 1 (shallowest) … J"),
    Weighting("feature_spread", "activations", "feature_spread", "γ_j = mean_i,c |x̄^i − x̄^μ|, x̄^μ = mean_i |x̄^i|"),
    Weighting("probe_accuracy", "activations", "probe_accuracy",
              "γ_j = (1/M) Σ_i δ(Ψ_j(x^i), y^i), Ψ_j a linear probe trained on the same M images"),
    Weighting("probe_accuracy_heldout", "activations", "probe_accuracy",
              "γ_j = the probe's accuracy on held-out images (trained on the others)"),
)}
#: The paper's own weightings (Table 6's rows), computed here.
PAPER_WEIGHTINGS = ("probe_accuracy", "feature_spread", "linear", "uniform")


def check_weighting(name: object, argument: str = "kind",
                    known: Mapping[str, Weighting] = WEIGHTINGS) -> Weighting:
    """The :class:`Weighting` called ``name`` in ``known``; a ValueError naming ``argument`` and the
    known names otherwise."""
    if not isinstance(name, str) or name not in known:
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5) if isinstance(name, str) else []
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"{argument}: unknown weighting {name!r}{hint} Known: {sorted(known)}")
    return known[name]


def normalized(gamma: Sequence[float] | np.ndarray) -> np.ndarray:
    r"""γ_j / Σ_k γ_k (float64)."""
    g = np.asarray(gamma, dtype=np.float64)
    return g / g.sum()


def layer_weights(kind: str, *, num_layers: int | None = None, features: Sequence[Tensor] | None = None,
                  labels: Tensor | None = None, holdout: float = 0.5, seed: int = 0, steps: int = 300) -> np.ndarray:
    r"""Per-layer weights γ_j of the weighting ``kind`` (a name in :data:`WEIGHTINGS`), unnormalised
    (:func:`revisal.combine.combine` normalises them).

    * ``"uniform"``: γ_j = 1/J.
    * ``"linear"``: γ_j = j/J for j = 1..J, shallow to deep (``linspace(0, 1, J + 1)[1:]``).
    * ``"feature_spread"``: with :math:`\bar x^i` the spatial mean of layer j's activations for
      image i (one value per channel) over M images sampled across classes and
      :math:`\bar x^\mu = \frac1M\sum_i |\bar x^i|`, γ_j = :math:`\frac1M\sum_i |\bar x^i - \bar x^\mu|`,
      the absolute values taken per channel and averaged over channels (the paper's formula leaves
      the reduction over channels implicit; it writes the spatial mean as a sum, and a sum would
      scale each layer by its H·W, so the mean, as its words say, is used).
    * ``"probe_accuracy"`` (the paper's): a linear probe Ψ_j trained on the globally average-pooled,
      standardised features of the M images, :math:`γ_j = \frac1M \sum_i δ(Ψ_j(x^i), y^i)` on
      those same M images.
    * ``"probe_accuracy_heldout"``: the same probe trained on a ``1 − holdout`` fraction of the
      images, γ_j its accuracy on the held-out rest.

      For both probes, multi-label data (``labels`` [M, C] multi-hot) trains a per-class logistic
      loss and counts an image as correct when its top-scoring class is one of its labels;
      single-label data (``labels`` [M] class ids) trains a softmax probe.

    Args:
        features: for the data-driven kinds, J tensors ``[M, C_j, H_j, W_j]`` (layer activations;
            :func:`revisal.activations.layer_activations` collects them).
        labels: for the probes.
    """
    source = check_weighting(kind).source
    if source == "rule":
        j = num_layers if num_layers is not None else (len(features) if features is not None else None)
        if isinstance(j, bool) or not isinstance(j, numbers.Integral) or j < 1:
            raise ValueError(f"num_layers: expected the number of layers (a positive int) for {kind!r} weights, "
                             f"got {j!r}")
        return np.full(j, 1 / j) if kind == "uniform" else np.linspace(0, 1, j + 1)[1:]
    pooled = _pooled_features(features, kind)
    if kind.startswith("probe_accuracy"):
        labels = _check_probe_labels(labels, pooled[0].shape[0])
        if kind == "probe_accuracy_heldout" and (not 0 < holdout < 1 or round(holdout * len(labels)) >= len(labels)):
            raise ValueError(f"holdout: expected a fraction in (0, 1) that leaves training images, got {holdout!r} "
                             f"of {len(labels)} images")
    if kind == "feature_spread":
        gamma = np.array([float((p - p.abs().mean(0, keepdim=True)).abs().mean()) for p in pooled])
    else:
        split = holdout if kind == "probe_accuracy_heldout" else None
        gamma = np.array([_probe_accuracy(p, labels, split, seed, steps) for p in pooled])
    if not gamma.any():  # e.g. every probe misses a tiny held-out set: no layer is preferred
        warnings.warn(f"layer_weights: every layer scored 0 under {kind!r} on {pooled[0].shape[0]} images; "
                      "using uniform weights", RuntimeWarning, stacklevel=2)
        return np.full(len(pooled), 1 / len(pooled))
    return gamma


def sample_across_classes(labels: Tensor | np.ndarray, m: int, seed: int = 0) -> Tensor:
    """Indices of ``m`` images sampled uniformly across classes: the classes take turns (in class
    order), each drawing a not yet chosen image that has it, at random (``seed``), until ``m`` are
    drawn; a class that runs out of images drops out of the turns. ``labels``: [N] class ids or
    [N, C] multi-hot (an image counts for each of its classes)."""
    t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).detach().cpu()
    if t.dim() == 1:
        t = F.one_hot(t.long(), int(t.max()) + 1) if len(t) else t[:, None]
    if t.dim() != 2 or len(t) == 0:
        raise ValueError(f"labels: expected [N] class ids or [N, C] multi-hot labels, got shape {tuple(t.shape)}")
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or not 1 <= m <= len(t):
        raise ValueError(f"m: expected a number of images in 1..{len(t)}, got {m!r}")
    g = torch.Generator().manual_seed(seed)
    queues = [[int(i) for i in torch.nonzero(t[:, c])[:, 0][torch.randperm(int(t[:, c].gt(0).sum()), generator=g)]]
              for c in range(t.shape[1])]
    chosen: list[int] = []
    taken: set[int] = set()
    while len(chosen) < m and any(queues):
        for queue in queues:
            while queue and queue[0] in taken:
                queue.pop(0)
            if queue and len(chosen) < m:
                chosen.append(queue.pop(0))
                taken.add(chosen[-1])
    if len(chosen) < m:  # images with no label at all
        rest = [i for i in torch.randperm(len(t), generator=g).tolist() if i not in taken]
        chosen += rest[:m - len(chosen)]
    return torch.tensor(chosen, dtype=torch.long)


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
        raise ValueError("labels: probe accuracy weights need the images' labels")
    t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).detach().cpu()
    if t.dim() not in (1, 2) or t.shape[0] != m:
        raise ValueError(f"labels: expected [M] class ids or [M, C] multi-hot labels for M = {m} images, "
                         f"got shape {tuple(t.shape)}")
    if t.dim() == 1 and (t.is_floating_point() or t.dtype == torch.bool or bool((t < 0).any())):
        raise ValueError("labels: 1-D labels must be non-negative integer class ids")
    if t.dim() == 2 and not bool(((t == 0) | (t == 1)).all()):
        raise ValueError("labels: 2-D labels must be multi-hot 0/1")
    return t


def _probe_accuracy(x: Tensor, labels: Tensor, holdout: float | None, seed: int, steps: int) -> float:
    """Accuracy of a linear probe ``W z + b`` on standardised features ``z = (x − μ)/σ`` (μ, σ from
    the training images), fitted by L-BFGS to cross-entropy (multi-label: per-class logistic loss)
    plus ``1e-4 ‖W‖²``: on the training images themselves (``holdout`` None, the paper's), or on a
    held-out ``holdout`` fraction."""
    g = torch.Generator().manual_seed(seed)
    m = x.shape[0]
    order = torch.randperm(m, generator=g)
    if holdout is None:  # the paper's: scored on the images it was trained on
        test = train = order
    else:
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
