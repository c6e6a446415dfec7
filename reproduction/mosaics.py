"""2×2 mosaics of real photographs for the grid pointing game (Böhle et al., CVPR 2022).

The photos are every real colour photograph that installed packages ship on disk (no download):

* scikit-image: ``astronaut``, ``chelsea`` (its ``cat`` is the same photo), ``coffee``, ``rocket``,
  ``stereo_motorcycle`` (left view), ``hubble_deep_field``, ``immunohistochemistry``, ``retina``;
* scikit-learn: ``load_sample_images()`` — ``china`` (a temple) and ``flower``;
* matplotlib's sample data: ``grace_hopper.jpg`` and ``Minduka_Present_Blue_Pack.png``.

Left out: drawings and renders (``colorwheel``, ``logo``), greyscale images (``camera``, ``coins``...),
and the images scikit-image fetches over the network (``eagle``, ``lily``...). A network can only be
scored on a photo whose class it knows, so :func:`select_confident` keeps the photos the network
itself classifies with top-1 probability ≥ a threshold, one photo per class.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from revisal.data.photos import to_pixels


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        return image[0] if isinstance(image, tuple) else image

    return read


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")

    return read


def _matplotlib(file: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        import matplotlib
        from PIL import Image

        with Image.open(os.path.join(matplotlib.get_data_path(), "sample_data", file)) as image:
            return np.array(image.convert("RGB"))

    return read


#: name → (package, loader of an RGB uint8 array [H, W, 3]).
SOURCES: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    **{name: ("scikit-image", _skimage(key)) for name, key in (
        ("astronaut", "astronaut"), ("chelsea", "chelsea"), ("coffee", "coffee"), ("rocket", "rocket"),
        ("motorcycle", "stereo_motorcycle"), ("hubble_deep_field", "hubble_deep_field"),
        ("immunohistochemistry", "immunohistochemistry"), ("retina", "retina"))},
    "china": ("scikit-learn", _sklearn("china")),
    "flower": ("scikit-learn", _sklearn("flower")),
    "grace_hopper": ("matplotlib", _matplotlib("grace_hopper.jpg")),
    "present_blue_pack": ("matplotlib", _matplotlib("Minduka_Present_Blue_Pack.png")),
}


def offline_photos() -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every photo of :data:`SOURCES` that loads here (name → RGB uint8 array), and for each one
    that does not, why (its package is missing or it needs a download)."""
    photos, missing = {}, {}
    for name, (package, read) in SOURCES.items():
        try:
            image = read()
        except Exception as error:  # an uninstalled package, a file that needs a download
            missing[name] = f"{package}: {type(error).__name__}: {error}"
            continue
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            missing[name] = f"{package}: not an RGB uint8 photo ({image.dtype} {image.shape})"
            continue
        photos[name] = np.array(image)  # a writable copy (torch warns on read-only arrays)
    return photos, missing


@dataclass(frozen=True)
class Classified:
    """A photo and the network's top-1 class for it on its own (``size``² centre crop)."""

    name: str
    source: str
    class_id: int
    class_name: str
    probability: float
    kept: bool
    reason: str


def classify_photos(zoo, photos: dict[str, np.ndarray], *, min_confidence: float = 0.3, size: int = 224,
                    device: str | torch.device = "cpu") -> list[Classified]:
    """Each photo's top-1 class under ``zoo`` and whether the grid pointing game keeps it: top-1
    probability ≥ ``min_confidence``, and the most confident photo of its class (mosaic cells must
    show distinct classes). Sorted by name."""
    if not 0 < min_confidence < 1:
        raise ValueError(f"min_confidence: expected a probability in (0, 1), got {min_confidence!r}")
    if not photos:
        raise ValueError("photos: none to classify")
    names = sorted(photos)
    model = zoo.model.to(device)
    dtype = next(model.parameters()).dtype
    pixels = torch.stack([to_pixels(photos[n], size) for n in names]).to(device, dtype)
    with torch.no_grad():
        probs = model(zoo.normalize(pixels)).float().softmax(-1).cpu()
    p, c = probs.max(-1)
    best: dict[int, str] = {}
    for k, name in enumerate(names):
        if p[k] >= min_confidence and (int(c[k]) not in best or p[k] > p[names.index(best[int(c[k])])]):
            best[int(c[k])] = name
    out = []
    for k, name in enumerate(names):
        cid, prob = int(c[k]), float(p[k])
        if prob < min_confidence:
            kept, reason = False, f"top-1 probability {prob:.2f} < {min_confidence:g}"
        elif best[cid] != name:
            kept, reason = False, f"{best[cid]} is a more confident photo of the same class"
        else:
            kept, reason = True, f"top-1 probability {prob:.2f} ≥ {min_confidence:g}"
        out.append(Classified(name, SOURCES[name][0] if name in SOURCES else "user", cid, zoo.classes[cid], prob,
                              kept, reason))
    return out


def arrangements(n_photos: int, count: int, seed: int = 0, grid: tuple[int, int] = (2, 2)) -> list[tuple[int, ...]]:
    """``count`` distinct mosaics of ``rows·cols`` distinct photos out of ``n_photos`` (tuples of photo
    indices, row-major): the photo subsets in turn (sorted combinations, each photo used equally
    often), each in a seeded random order, then further orders of the same subsets."""
    k = grid[0] * grid[1]
    if n_photos < k:
        raise ValueError(f"photos: a {grid[0]}×{grid[1]} mosaic needs {k} photos of distinct classes, got {n_photos}")
    subsets = list(itertools.combinations(range(n_photos), k))
    total = len(subsets) * int(np.prod(range(1, k + 1)))
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= total:
        raise ValueError(f"count: expected 1..{total} mosaics of {n_photos} photos, got {count!r}")
    rng = np.random.default_rng(seed)
    orders = []
    for subset in subsets:  # every order of each subset, shuffled
        perms = list(itertools.permutations(subset))
        orders.append([perms[i] for i in rng.permutation(len(perms))])
    rounds = (orders[s][r] for r in range(len(orders[0])) for s in range(len(subsets)))
    return list(itertools.islice(rounds, count))


def mosaic(images: Sequence[np.ndarray], cell: int = 224, grid: tuple[int, int] = (2, 2)) -> Tensor:
    """``rows·cols`` photos in one float image [3, rows·cell, cols·cell] in [0, 1], row-major, each
    resized (shorter side) and centre-cropped to ``cell``²."""
    rows, cols = grid
    if len(images) != rows * cols:
        raise ValueError(f"images: a {rows}×{cols} mosaic takes {rows * cols} photos, got {len(images)}")
    tiles = [to_pixels(image, cell) for image in images]
    return torch.cat([torch.cat(tiles[r * cols:(r + 1) * cols], dim=2) for r in range(rows)], dim=1)


__all__ = ["Classified", "SOURCES", "arrangements", "classify_photos", "mosaic", "offline_photos"]
