"""The synthetic localisation testbed: the ``mini`` profile's stand-in for PASCAL VOC.

Multi-object scenes of 12 shape classes (see :mod:`reproduction.render`) with exact per-object
masks and boxes, multi-label targets, the pointing game's "difficult" flag, and a caption per
scene. Splits are pure functions of ``(seed, split, index)``; generated arrays are cached as
compressed ``.npz`` under ``data/testbed/``, keyed by a hash of every generator parameter and
verified by a content checksum on load (a corrupt or stale file is regenerated, never used).

>>> from revisal.data import testbed
>>> test = testbed.load_split("test", n=256)                       # doctest: +SKIP
>>> pixels, labels = test[0]                                 # [3, 64, 64] in [0, 1], [12] multi-hot
>>> test.class_mask(0, int(labels.argmax()))                 # exact bool [64, 64] mask
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal

from reproduction.render import CLASSES, COLOUR_NAMES, SceneSpec, caption, render
from reproduction.storage import digest_arrays, digest_json, project_path, save_npz
from revisal.data.transforms import Normalize
from revisal.files import atomic_write

SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_SIZES = {"train": 16000, "val": 1000, "test": 2000}
GENERATOR_VERSION = 1  # bump when render() changes what a seed produces
#: Pointing-game tolerance as a fraction of the longer image side: TorchRay's 15 px on ~500 px VOC
#: images. At the default 64 px that is 1.92 px.
TOLERANCE_FRACTION = 15 / 500
ARRAYS = ("images", "instances", "classes", "colours", "boxes", "areas", "drawn")


class TestbedSplit(Dataset):
    """One split: ``dataset[i] → (pixels [3, S, S] float in [0, 1], labels [C] float multi-hot)``."""

    classes = CLASSES

    def __init__(self, arrays: dict[str, np.ndarray], split: str, spec: SceneSpec, seed: int):
        self.arrays = arrays
        self.split, self.spec, self.seed = split, spec, seed
        present = np.zeros((len(arrays["classes"]), len(CLASSES)), dtype=np.float32)
        rows, slots = np.nonzero(arrays["classes"] >= 0)
        present[rows, arrays["classes"][rows, slots]] = 1.0
        self.labels = torch.from_numpy(present)

    def __len__(self) -> int:
        return len(self.arrays["images"])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.pixels([i])[0], self.labels[i]

    @property
    def size(self) -> int:
        return self.spec.size

    @property
    def tolerance(self) -> float:
        """Pointing-game tolerance in pixels for this image size (15 px at 500 px, scaled)."""
        return TOLERANCE_FRACTION * self.spec.size

    def pixels(self, indices) -> Tensor:
        """Images ``[B, 3, S, S]`` float in [0, 1]."""
        return torch.from_numpy(self.arrays["images"][np.asarray(indices)]).permute(0, 3, 1, 2).float().div(255)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 [S, S, 3]."""
        return self.arrays["images"][i]

    def class_ids(self, i: int) -> list[int]:
        """Classes present in scene ``i``."""
        return sorted({int(c) for c in self.arrays["classes"][i] if c >= 0})

    def class_mask(self, i: int, class_id: int) -> np.ndarray:
        """Union of the visible pixels of every object of ``class_id`` in scene ``i`` (bool [S, S])."""
        slots = np.nonzero(self.arrays["classes"][i] == class_id)[0] + 1
        return np.isin(self.arrays["instances"][i], slots)

    def difficult(self, i: int, class_id: int) -> bool:
        """The pointing game's "difficult" flag (Zhang et al.; paper supp. A): the class covers less
        than 25% of the image and at least one other class is present."""
        area = self.class_mask(i, class_id).mean()
        return bool(area < 0.25 and len(self.class_ids(i)) > 1)

    def caption(self, i: int) -> str:
        a = self.arrays
        return caption(a["classes"][i], a["colours"][i], a["boxes"][i], a["areas"][i])

    def largest_classes(self) -> Tensor:
        """Every scene's largest object's class (by visible area; the first such object on a tie),
        ``LongTensor [N]``: the single label of scenes used as classification images."""
        a = self.arrays
        areas = np.where(a["classes"] >= 0, a["areas"], -1)
        return torch.from_numpy(np.take_along_axis(a["classes"], areas.argmax(1)[:, None], 1)[:, 0].astype(np.int64))

    def objects(self, i: int) -> list[dict]:
        """Per-object records of scene ``i``: class, colour, box (x0, y0, x1, y1), visible area."""
        a = self.arrays
        return [
            {"class": CLASSES[c], "class_id": int(c), "colour": COLOUR_NAMES[a["colours"][i][j]],
             "box": tuple(int(v) for v in a["boxes"][i][j]), "area": int(a["areas"][i][j])}
            for j, c in enumerate(a["classes"][i]) if c >= 0
        ]


def _render_range(args: tuple[int, int, int, int, dict]) -> dict[str, np.ndarray]:
    seed, split_id, start, stop, spec_kwargs = args
    spec = SceneSpec(**spec_kwargs)
    scenes = [render(np.random.default_rng([seed, split_id, i]), spec) for i in range(start, stop)]
    return {name: np.stack([getattr(s, "image" if name == "images" else name) for s in scenes]) for name in ARRAYS}


def generate(split: str, n: int, spec: SceneSpec, seed: int = 0, workers: int = 2,
             progress: bool = True) -> dict[str, np.ndarray]:
    """Render scenes ``0..n-1`` of ``split`` (in ``workers`` processes, same result for any count)."""
    chunk = 500
    jobs = [(seed, SPLITS[split], a, min(a + chunk, n), _spec_kwargs(spec)) for a in range(0, n, chunk)]
    bar = tqdm(total=n, desc=f"testbed {split}", unit="scene", disable=not progress)
    parts = []
    if workers > 1 and len(jobs) > 1:
        with get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
            for part in pool.imap(_render_range, jobs):
                parts.append(part)
                bar.update(len(part["images"]))
    else:
        for job in jobs:
            parts.append(_render_range(job))
            bar.update(len(parts[-1]["images"]))
    bar.close()
    return {name: np.concatenate([p[name] for p in parts]) for name in ARRAYS}


def _spec_kwargs(spec: SceneSpec) -> dict:
    return {k: v for k, v in asdict(spec).items() if not k.startswith("_")}


def cache_key(split: str, n: int, spec: SceneSpec, seed: int) -> str:
    params = {"version": GENERATOR_VERSION, "split": split, "n": n, "seed": seed, "spec": _spec_kwargs(spec)}
    return digest_json(params)[:16]


def load_split(split: str = "train", n: int | None = None, size: int = 64, seed: int = 0, *,
         cache_dir: str | os.PathLike | None = "data/testbed", workers: int = 2, progress: bool = True,
         **spec_kwargs) -> TestbedSplit:
    """A testbed split, generated on first use and cached (``cache_dir=None``: never cached).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (independent scenes).
        n: number of scenes (default :data:`DEFAULT_SIZES`).
        size: image side in pixels.
        seed: the testbed's seed; scene ``i`` depends only on ``(seed, split, i)``.
        spec_kwargs: further :class:`~reproduction.render.SceneSpec` knobs.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    n = DEFAULT_SIZES[split] if n is None else n
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive number of scenes, got {n!r}")
    spec = SceneSpec(size=size, **spec_kwargs)
    if cache_dir is None:
        return TestbedSplit(generate(split, n, spec, seed, workers, progress), split, spec, seed)
    folder = project_path(cache_dir)
    key = cache_key(split, n, spec, seed)
    path, meta_path = folder / f"{split}-{size}px-{n}-{key}.npz", folder / f"{split}-{size}px-{n}-{key}.json"
    arrays = _read_verified(path, meta_path, key)
    if arrays is None:
        arrays = generate(split, n, spec, seed, workers, progress)
        save_npz(path, arrays)
        atomic_write(meta_path, json.dumps({"sha256": digest_arrays(arrays), "key": key, "split": split, "n": n,
                                            "seed": seed, "spec": _spec_kwargs(spec), "version": GENERATOR_VERSION},
                                           indent=2))
    return TestbedSplit(arrays, split, spec, seed)


def _read_verified(path: Path, meta_path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if present, written for this ``key`` (not copied from another split or
    size) and their checksum matches; ``None`` otherwise."""
    if not (path.is_file() and meta_path.is_file()):
        return None
    try:
        with np.load(path) as z:
            arrays = {name: z[name] for name in ARRAYS}
        meta = json.loads(meta_path.read_text())
    except Exception:  # unreadable or truncated: regenerate
        return None
    return arrays if meta.get("key") == key and digest_arrays(arrays) == meta.get("sha256") else None


# The mini models see testbed pixels centred and scaled to roughly unit variance.
TESTBED_NORMALIZE = Normalize((0.5,) * 3, (0.25,) * 3)
