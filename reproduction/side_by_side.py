"""Class selectivity on two-object images (paper Figs. 4 and 15, measured rather than shown).

Every ordered pair (a, b) of distinct photos becomes one image, a's centre strip beside b's
(:func:`revisal.data.photos.side_by_side`). Each photo's class is the model's top-1 class on the
photo alone. For the image a|b and the class of a (and then of b), a map is class selective when its
positive mass lies on that photo's half:

    share = Σ_{u ∈ half} max(s_u, 0) / Σ_u max(s_u, 0)

(0.5 when the map has no positive mass: it then singles out neither half). A unit is one (image,
side) pair, so P photos give 2·P·(P − 1) units.
"""

from __future__ import annotations

from itertools import permutations
from typing import Sequence

import numpy as np
import torch

from reproduction.cache import device_of
from reproduction.captioner import mask_mass
from revisal.data.photos import halves, side_by_side, to_pixels
from revisal.data.photos import photos as load_photos
from revisal.engine import saliency
from revisal.maps import flat_maps


def side_by_side_selectivity(zoo, photo_names: Sequence[str], methods: Sequence[str], layers: Sequence[str], *,
                             size: int = 224, device=None) -> dict:
    """Share of each map's positive mass on the target photo's half, per unit.

    Returns:
        ``{"units": ["a|b: a", …], "classes": [class name per unit], (method, layer): float64 [units]}``.
    """
    names = list(photo_names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"photo_names: expected at least two distinct photos, got {names!r}")
    device = device_of(device)
    model = zoo.model.to(device)
    with torch.no_grad():
        top = model(zoo.normalize(load_photos(names, size).pixels).to(device)).argmax(1).tolist()
    pairs = list(permutations(range(len(names)), 2))
    pixels = torch.stack([to_pixels(side_by_side(names[a], names[b]), size) for a, b in pairs])
    x = zoo.normalize(pixels).to(device)
    masks = torch.from_numpy(halves(size))
    out: dict = {"units": [], "classes": []}
    shares: dict = {}
    for side in (0, 1):  # the left photo's class, then the right one's
        target = torch.tensor([top[pair[side]] for pair in pairs])
        maps = saliency(model, x, target, list(layers), list(methods)).resized((size, size))
        out["units"] += [f"{names[a]}|{names[b]}: {names[(a, b)[side]]}" for a, b in pairs]
        out["classes"] += [zoo.classes[int(t)] for t in target]
        for key, heat in maps.items():
            positive = heat[:, 0].double().clamp_min(0).cpu()
            share = mask_mass(positive, masks[side].expand(len(pairs), 1, size, size)).numpy()[:, 0]
            share[positive.sum(dim=(1, 2)).numpy() == 0] = 0.5
            shares.setdefault(key, []).append(share)
    out.update({key: np.concatenate(parts) for key, parts in shares.items()})
    return out


def same_map(maps, tolerance: float = 1e-5) -> bool:
    """Whether ``maps`` ``[K, ...]``, one per class explained, are one map up to a positive scale and
    offset: none is flat (:func:`revisal.flat_maps`) and every pair's Pearson correlation is at least
    1 − ``tolerance`` (float64). Such a map ignores the class (e.g. NormGrad just before a global
    average pool, ``‖w_c‖‖x_u‖/HW``), so its class selectivity is chance by construction."""
    maps = torch.as_tensor(np.asarray(maps)).double().flatten(1)
    return not bool(flat_maps(maps).any()) and bool((torch.corrcoef(maps) >= 1 - tolerance).all())

