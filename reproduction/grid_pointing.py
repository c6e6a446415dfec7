"""The grid pointing game on a real ImageNet network (Böhle et al., CVPR 2022): 2×2 mosaics of real
photos of distinct classes (:mod:`reproduction.mosaics`); explaining each cell's class, a map hits
when its maximum lies in that cell (:func:`reproduction.grid_cells.grid_hits`). Every method at every
layer, plus layer combinations whose weights need no labels (uniform, linear in depth).

Maps are cached per mosaic (:class:`reproduction.cache.RunCache`), so re-scoring or
re-plotting costs no network pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

from reproduction.cache import CACHE_ROOT, RunCache, device_of, weights_checksum
from reproduction.grid_cells import grid_hits
from reproduction.mosaics import Classified, arrangements, mosaic
from reproduction.side_by_side import same_map
from reproduction.storage import digest_arrays
from revisal.combine import combine
from revisal.engine import saliency
from revisal.layer_weights import layer_weights
from revisal.maps import flat_maps

#: Layer combinations scored: label → (layer_weights kind, combine mode). No training labels needed.
COMBINATIONS: dict[str, tuple[str, str]] = {
    "uniform sum": ("uniform", "sum"),
    "linear sum": ("linear", "sum"),
    "linear product": ("linear", "product"),
}


@dataclass
class GridResults:
    """Hits ``[methods, layers + combinations, trials]`` (one trial = one cell of one mosaic) and
    what they rest on. ``scored`` (same shape) is False where the map was flat
    (:func:`revisal.maps.flat_maps`): "n/a", left out of the hit rate."""

    methods: list[str]
    layers: list[str]
    combinations: list[str]
    hits: np.ndarray
    photos: list[Classified]
    mosaics: list[tuple[int, ...]]
    trial_photo: np.ndarray
    trial_cell: np.ndarray
    maps: dict = field(default_factory=dict, repr=False)  # (method, layer) → [trials, h, w] float32
    scored: np.ndarray | None = None  # bool like hits; None: every map scored

    def __post_init__(self) -> None:
        if self.scored is None:
            self.scored = np.ones_like(self.hits, dtype=bool)

    @property
    def columns(self) -> list[str]:
        return [*self.layers, *self.combinations]

    def __len__(self) -> int:
        return self.hits.shape[-1]

    def take(self, index: np.ndarray) -> "GridResults":
        """The same results on trials ``index`` (for bootstrap resampling)."""
        return GridResults(self.methods, self.layers, self.combinations, self.hits[..., index], self.photos,
                           self.mosaics, self.trial_photo[index], self.trial_cell[index],
                           scored=self.scored[..., index])

    def class_agnostic(self, tolerance: float = 1e-5) -> np.ndarray:
        """``[methods, layers]``: True where, in every mosaic, the maps for its four cells' classes are
        one map (:func:`reproduction.side_by_side.same_map`): the map ignores the class, so its hit rate
        is chance by construction. False where a layer's maps were not kept."""
        out = np.zeros((len(self.methods), len(self.layers)), dtype=bool)
        for i, m in enumerate(self.methods):
            for j, layer in enumerate(self.layers):
                if (m, layer) not in self.maps:
                    continue
                by_mosaic = np.asarray(self.maps[m, layer]).reshape(-1, 4, *np.shape(self.maps[m, layer])[1:])
                out[i, j] = all(same_map(group, tolerance) for group in by_mosaic)
        return out

    def accuracy_table(self) -> np.ndarray:
        """Hit rates in percent over the scored trials, ``[methods, layers + combinations]``; NaN
        ("n/a") where every map was flat."""
        counted = self.scored.sum(-1)
        hits = (self.hits & self.scored).sum(-1)
        return np.where(counted > 0, 100 * hits / np.maximum(counted, 1), np.nan)

    def flat_share(self) -> np.ndarray:
        """Share of flat ("n/a") maps, ``[methods, layers + combinations]``."""
        return 1 - self.scored.mean(-1)

    def rows(self) -> list[dict]:
        """One row per method: hit rate (%) at each layer and combination."""
        table = self.accuracy_table()
        return [{"method": m, **{c or "input": float(v) for c, v in zip(self.columns, table[i])}}
                for i, m in enumerate(self.methods)]


def _key(i: int, j: int) -> str:
    return f"m{i}_l{j}"


def grid_pointing_game(zoo, photos: dict[str, np.ndarray], kept: Sequence[Classified], methods: Sequence[str],
                       layers: Sequence[str], *, mosaics: int, seed: int = 0, cell: int = 224,
                       device: str | torch.device = "cpu", cache_root: str | None = CACHE_ROOT,
                       progress: bool = True) -> GridResults:
    r"""Score every (method, layer) and every :data:`COMBINATIONS` entry on ``mosaics`` 2×2 mosaics.

    Mosaic k shows kept photos :func:`reproduction.mosaics.arrangements` picks, each a ``cell``²
    crop; for each of its 4 cells the target is that photo's top-1 class ``t`` (as classified on
    its own), the map is :func:`revisal.saliency` of the logit ``z_t`` on the whole mosaic, and
    the hit is ``argmax_u \hat m_u ∈ cell`` on the map bilinearly resized to the mosaic
    (:func:`reproduction.grid_cells.grid_hits`). Combinations: ``combine(maps over layers, γ, mode)``
    with γ from :func:`revisal.layer_weights` (uniform or linear in depth).
    """
    kept = [c for c in kept if c.kept]
    if len({c.class_id for c in kept}) != len(kept):
        raise ValueError("kept: the photos must show distinct classes")
    methods, layers = list(methods), list(layers)
    plan = arrangements(len(kept), mosaics, seed)
    device = device_of(device)
    model = zoo.model.to(device)
    spec = {
        "model": zoo.name, "weights": weights_checksum(model), "methods": methods, "layers": layers, "cell": cell,
        "photos": {c.name: digest_arrays({"p": photos[c.name]})[:16] for c in kept},
        "classes": [c.class_id for c in kept], "mosaics": plan,
    }
    cache = RunCache("grid_pointing", spec, cache_root)
    parts = []
    for k, order in enumerate(tqdm(plan, desc="grid pointing", unit="mosaic", disable=not progress)):
        part = cache.load(k)
        if part is None:
            pixels = mosaic([photos[kept[i].name] for i in order], cell).to(device)
            dtype = next(model.parameters()).dtype
            inputs = zoo.normalize(pixels[None].to(dtype)).expand(4, -1, -1, -1)
            targets = torch.tensor([kept[i].class_id for i in order], device=device)
            maps = saliency(model, inputs, targets, layers, methods)
            part = {_key(i, j): maps[m, layer][:, 0].float().cpu().numpy()
                    for i, m in enumerate(methods) for j, layer in enumerate(layers)}
            cache.save(k, part)
        parts.append(part)
    size = (2 * cell, 2 * cell)
    cells = np.tile(np.arange(4), len(plan))
    joined = {(m, layer): np.concatenate([p[_key(i, j)] for p in parts])
              for i, m in enumerate(methods) for j, layer in enumerate(layers)}
    combos = list(COMBINATIONS)
    hits = np.zeros((len(methods), len(layers) + len(combos), len(cells)), dtype=bool)
    scored = np.ones_like(hits)
    for i, m in enumerate(methods):
        per_layer = [torch.from_numpy(joined[m, layer])[:, None] for layer in layers]
        for j, layer_maps in enumerate(per_layer):
            hits[i, j] = grid_hits(layer_maps, cells, size=size)
            scored[i, j] = ~flat_maps(layer_maps).numpy()
        for c, (kind, mode) in enumerate(COMBINATIONS.values()):
            gamma = layer_weights(kind, num_layers=len(layers))
            combined = combine(per_layer, gamma, mode=mode)  # flat layers left out of each trial's combination
            hits[i, len(layers) + c] = grid_hits(combined, cells, size=size)
            scored[i, len(layers) + c] = ~flat_maps(combined).numpy()
    trial_photo = np.array([i for order in plan for i in order])
    return GridResults(methods, layers, combos, hits, list(kept), plan, trial_photo, cells, joined, scored)


__all__ = ["COMBINATIONS", "GridResults", "grid_pointing_game"]
