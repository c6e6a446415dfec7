"""Per-layer weights the authors published in their benchmark script, as data (numbers only).

Source: :data:`SOURCE`, the dict ``weights`` of ``examples/attribution_benchmark.py`` at commit
832524e83a5a75fc2595b72bccdf30f50f9c258c of github.com/ruthcfong/TorchRay (branch ``normgrad``), read
with ``torchray/attribution/weighted_saliency.py`` at the same commit. Stored here shallow → deep
along :data:`LAYERS` (VGG16 features.3 … features.29, ResNet-50 layer1 … layer4); the input layer has
no weight: the authors combine the network's layers only.

What the script does with them (facts read from those two files):

* ``accuracy`` and ``activation``: one set per architecture, for every method. They sum to 1 (to
  rounding) and follow the paper's two data-driven weightings (supp. Fig. 9): ``accuracy`` rises
  with depth as the linear-probe accuracy does, ``activation`` falls at VGG16's last two layers as
  the feature spread does. This module pairs them with Table 6's "accuracy" and "spread" rows.
* ``pointing_accuracy``: one set per architecture and method (the method's pointing accuracy at
  each layer; ``<method>_meta`` when meta-saliency is on).
* ``activation_in`` is never read: the script sends every strategy other than ``accuracy``,
  ``activation`` and ``pointing_accuracy`` to ``weights["activation"]``, and ``weighted_saliency``
  keeps those values for any name containing "activation", so the authors' ``activation_in`` runs
  combined with the ``activation`` numbers. It is recorded for completeness.
* ``linear`` and ``uniform`` take ``activation``'s layer order (shallow → deep) and replace the
  values with ``linspace(0, 1, L + 1)[1:]`` and 1; every set is divided by its sum before use.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from revisal.layer_weights import WEIGHTINGS, Weighting, check_weighting, layer_weights

SOURCE = {"repository": "https://github.com/ruthcfong/TorchRay",
          "commit": "832524e83a5a75fc2595b72bccdf30f50f9c258c",
          "path": "examples/attribution_benchmark.py", "name": "weights"}

#: The layers each set is given for, shallow → deep (torchvision module names).
LAYERS: Mapping[str, tuple[str, ...]] = {
    "vgg16": ("features.3", "features.8", "features.15", "features.22", "features.29"),
    "resnet50": ("layer1", "layer2", "layer3", "layer4"),
}

#: One set per architecture, along :data:`LAYERS`.
PER_ARCH: Mapping[str, Mapping[str, tuple[float, ...]]] = {
    "accuracy": {
        "vgg16": (0.0326937514514653, 0.1252633500153707, 0.2119629074318453, 0.304091764091923, 0.3259882270093957),
        "resnet50": (0.0777636622102207, 0.1120188314949383, 0.1960376762879433, 0.6141798300068978),
    },
    "activation": {
        "vgg16": (0.2119383764047884, 0.3225606074029479, 0.3907056723433652, 0.0674916783223005, 0.0073036655265981),
        "resnet50": (0.1698746686351632, 0.1950209363640008, 0.1930607604361503, 0.4420436345646859),
    },
    "activation_in": {
        "vgg16": (0.1533106022599574, 0.2196877151286012, 0.3078518139348388, 0.1812688130049373, 0.1378810556716654),
        "resnet50": (0.0876279093517559, 0.0712395003421224, 0.0493272299610808, 0.791805360345041),
    },
}

#: ``pointing_accuracy``: one set per architecture and method (the authors' method names), along :data:`LAYERS`.
POINTING_ACCURACY: Mapping[str, Mapping[str, tuple[float, ...]]] = {
    "vgg16": {
        "contrastive_excitation_backprop": (0.75997, 0.75707, 0.75653, 0.7774, 0.82117),
        "excitation_backprop": (0.73782, 0.73756, 0.73681, 0.7532, 0.77578),
        "grad_cam": (0.59072, 0.5835, 0.55421, 0.58151, 0.86642),
        "gradient": (0.76415, 0.78116, 0.80649, 0.82091, 0.39528),
        "gradient_sum": (0.75507, 0.76842, 0.74177, 0.66369, 0.55581),
        "guided_backprop": (0.75383, 0.72592, 0.70552, 0.73107, 0.25494),
        "guided_backprop_sum": (0.74108, 0.74321, 0.75111, 0.75753, 0.50958),
        "linear_approx": (0.81499, 0.83012, 0.8311, 0.84617, 0.86486),
        "norm_grad": (0.78859, 0.8101, 0.81867, 0.81925, 0.77689),
        "norm_grad_selective": (0.81393, 0.81372, 0.81942, 0.84845, 0.86022),
        "norm_grad_meta": (0.78991, 0.81163, 0.81843, 0.81928, 0.78212),
        "norm_grad_selective_meta": (0.81466, 0.81314, 0.81639, 0.84724, 0.86101),
    },
    "resnet50": {
        "contrastive_excitation_backprop": (0.88073, 0.89327, 0.90722, 0.89735),
        "excitation_backprop": (0.82129, 0.83304, 0.84524, 0.84555),
        "grad_cam": (0.54451, 0.52873, 0.66292, 0.90372),
        "gradient": (0.78599, 0.83924, 0.82786, 0.18019),
        "gradient_sum": (0.79594, 0.80046, 0.70437, 0.06718),
        "guided_backprop": (0.76874, 0.77696, 0.82317, 0.18019),
        "guided_backprop_sum": (0.26723, 0.23333, 0.1262, 0.06718),
        "linear_approx": (0.83281, 0.85528, 0.85595, 0.90241),
        "norm_grad": (0.81853, 0.84045, 0.84613, 0.78765),
        "norm_grad_selective": (0.8227, 0.86304, 0.86891, 0.87439),
        "norm_grad_meta": (0.81596, 0.84667, 0.85823, 0.80883),
        "norm_grad_selective_meta": (0.81809, 0.8628, 0.88088, 0.88634),
    },
}

#: Our method names → the authors' (the others are spelled alike).
AUTHORS_METHOD = {"normgrad": "norm_grad", "selective_normgrad": "norm_grad_selective"}

#: The authors' unused set (see the module docstring).
UNUSED = ("activation_in",)


#: The authors' published sets as named weightings (Table 6's row each stands for, or None).
PUBLISHED: dict[str, Weighting] = {w.name: w for w in (
    Weighting("accuracy", "published", "probe_accuracy", "the authors' published per-layer accuracy weights"),
    Weighting("activation", "published", "feature_spread", "the authors' published per-layer activation weights"),
    Weighting("activation_in", "published", None, "the authors' published activation_in weights (unused by them)"),
    Weighting("pointing_accuracy", "published", None, "the authors' published pointing accuracy of each layer, per method"),
)}
PUBLISHED_WEIGHTINGS = tuple(PUBLISHED)
#: Every weighting the reproduction knows: the library's (computed here) and the authors' published sets.
ALL_WEIGHTINGS: dict[str, Weighting] = {**WEIGHTINGS, **PUBLISHED}


def weights_of(kind: str, *, arch: str | None = None, layers: Sequence[str] | None = None,
               method: str | None = None, meta: bool = False, **computed) -> np.ndarray:
    """γ_j of any weighting in :data:`ALL_WEIGHTINGS`: the authors' published set ``kind`` for ``arch``
    (:func:`published_layer_weights`), or :func:`revisal.layer_weights.layer_weights` with ``computed``."""
    if check_weighting(kind, known=ALL_WEIGHTINGS).source == "published":
        return published_layer_weights(kind, arch, layers, method, meta)
    return layer_weights(kind, **computed)


def published_layer_weights(kind: str, arch: object, layers: Sequence[str] | None = None, method: str | None = None,
                            meta: bool = False) -> np.ndarray:
    """The authors' set ``kind`` for ``arch`` ("vgg16", "resnet50" or a model standing in for one,
    :data:`reproduction.paper.COUNTERPART`), in the order of ``layers`` (default: the authors' layers,
    shallow → deep); ``pointing_accuracy`` is per ``method`` (and ``meta``)."""
    from reproduction.paper import COUNTERPART

    check_weighting(kind, known=PUBLISHED)
    known = sorted(LAYERS)
    family = COUNTERPART.get(arch, arch) if isinstance(arch, str) else arch
    if family not in LAYERS:
        raise ValueError(f"arch: the authors published {kind!r} weights for {known} (or a model standing in for "
                         f"one), got {arch!r}")
    theirs = LAYERS[family]
    layers = list(theirs if layers is None else ([layers] if isinstance(layers, str) else layers))
    if "" in layers:
        raise ValueError(f"layers: the authors' weights have no entry for the input layer ''; their combinations "
                         f"use the network's layers {list(theirs)} only")
    if sorted(layers) != sorted(theirs):
        raise ValueError(f"layers: the authors' {kind!r} weights for {family} are given at {list(theirs)}, "
                         f"got {layers}")
    if kind == "pointing_accuracy":
        sets = POINTING_ACCURACY[family]
        if not isinstance(method, str):
            raise ValueError(f"method: 'pointing_accuracy' weights are per method; pass one of {sorted(sets)} "
                             "(or our name for it)")
        name = AUTHORS_METHOD.get(method, method) + ("_meta" if meta else "")
        if name not in sets:
            raise ValueError(f"method: the authors published no 'pointing_accuracy' weights for {method!r}"
                             f"{' with meta-saliency' if meta else ''}; they did for {sorted(sets)}")
        values = sets[name]
    else:
        values = PER_ARCH[kind][family]
    by_layer = dict(zip(theirs, values))
    return np.array([by_layer[layer] for layer in layers], dtype=np.float64)
