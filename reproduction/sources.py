"""Image-class pairs for the pointing game, from the testbed, VOC07 or COCO14, ready for a model.

A source lists its pairs cheaply (class id, difficult flag, image index) and loads a group of pairs
on demand: the model input (preprocessed), each pair's ground-truth mask at the original image size
and that size. Pairs of one image share its input; testbed images all have one size, so pairs of
many images batch together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Pair:
    image: int
    class_id: int
    difficult: bool


class PointingSource(Protocol):
    num_classes: int
    tolerance: float
    batches_images: bool  # pairs of different images may share a pass (else: one image per pass)

    def describe(self) -> dict: ...
    def pairs(self) -> list[Pair]: ...
    def load(self, pairs: list[Pair]) -> tuple[Tensor, list[np.ndarray], list[tuple[int, int]]]: ...
    def same_input(self, a: Pair, b: Pair) -> bool: ...
    def image_id(self, pair: Pair) -> str: ...


class TestbedSource:
    """A testbed split; tolerance 15/500 of the image side (1.92 px at 64 px)."""

    batches_images = True

    def __init__(self, split, normalize: Callable[[Tensor], Tensor]):
        from reproduction.render import CLASSES

        self.split, self.normalize = split, normalize
        self.num_classes, self.tolerance = len(CLASSES), split.tolerance

    def describe(self) -> dict:
        return {"dataset": "testbed", "split": self.split.split, "n": len(self.split), "size": self.split.size,
                "seed": self.split.seed}

    def pairs(self) -> list[Pair]:
        return [Pair(i, c, self.split.difficult(i, c)) for i in range(len(self.split)) for c in self.split.class_ids(i)]

    def load(self, pairs):
        inputs = self.normalize(self.split.pixels([p.image for p in pairs]))
        masks = [self.split.class_mask(p.image, p.class_id) for p in pairs]
        return inputs, masks, [(self.split.size, self.split.size)] * len(pairs)

    def same_input(self, a: Pair, b: Pair) -> bool:
        return True  # every testbed image has the same size

    def image_id(self, pair: Pair) -> str:
        return str(pair.image)


class DetectionSource:
    """VOC07 or COCO14 image-class pairs through ``reproduction.datasets.pascal`` / ``reproduction.datasets.coco``,
    scored as TorchRay's ``PointingGameBenchmark`` scores them.

    Inputs: TorchRay's ``get_transform`` for the dataset: pixels in [0, 1], resized (bilinear,
    ``align_corners=False``, no antialiasing) so the shorter side is ``input_size`` and the other
    ``int(input_size · long / short)``, then the model's normalisation (Caffe's for TorchRay's
    models). Difficult subset: with ``flags`` (TorchRay's shipped flag file, ``name → per-class
    0/1``), a pair is difficult when its flag is 1 and also when its image is missing from the
    file (TorchRay skips a pair only on an explicit 0); without, the area rule of
    :func:`reproduction.datasets.pointing.is_difficult`. Each image's pairs share one pass.
    """

    batches_images = False

    def __init__(self, name: str, dataset, normalize: Callable[[Tensor], Tensor], input_size: int = 224,
                 tolerance: float = 15, flags: dict[str, list[bool]] | None = None):
        from reproduction.datasets import coco, pascal

        if name not in ("voc07", "coco14"):
            raise ValueError(f"name: expected 'voc07' or 'coco14', got {name!r}")
        self.name, self.dataset, self.normalize = name, dataset, normalize
        self.input_size, self.tolerance, self.flags = input_size, tolerance, flags
        self.num_classes = 20 if name == "voc07" else 80
        self._module = pascal if name == "voc07" else coco
        self._pairs = None

    def describe(self) -> dict:
        root = getattr(self.dataset, "root", "")
        return {"dataset": self.name, "root": str(root), "n": len(self.dataset), "input_size": self.input_size,
                "tolerance": self.tolerance, "flags": "torchray" if self.flags else "rule", "transform": "torchray"}

    def pairs(self) -> list[Pair]:
        if self._pairs is None:
            out, self._names, self._rule = [], {}, {}
            for p in self._module.pointing_pairs(self.dataset):
                difficult = p.difficult
                if self.flags is not None:
                    difficult = self.flags[p.name][p.class_id] if p.name in self.flags else True
                out.append(Pair(p.index, p.class_id, difficult))
                self._names[p.index] = p.name
                self._rule[p.index, p.class_id] = p.difficult
            self._pairs = out
        return self._pairs

    def image_id(self, pair: Pair) -> str:
        self.pairs()
        return self._names[pair.image]

    def flag_agreement(self) -> dict[str, float | int]:
        """How often the area rule's difficult flag equals the one scored here (the flag file's,
        or the rule's own without flags: 100%): ``{"pairs", "agree", "agreement" (%), "rule_only",
        "flags_only"}``."""
        pairs = self.pairs()
        rule = [self._rule[p.image, p.class_id] for p in pairs]
        agree = sum(r == p.difficult for r, p in zip(rule, pairs))
        return {"pairs": len(pairs), "agree": agree, "agreement": 100 * agree / len(pairs) if pairs else float("nan"),
                "rule_only": sum(r and not p.difficult for r, p in zip(rule, pairs)),
                "flags_only": sum(p.difficult and not r for r, p in zip(rule, pairs))}

    def load(self, pairs):
        from torchvision.transforms.functional import to_tensor


        image, target = self.dataset[pairs[0].image]
        x = self.normalize(ShorterSide(self.input_size)(to_tensor(image)))[None]
        h, w = image.height, image.width
        masks = [self._mask(target, p.class_id, h, w) for p in pairs]
        return x.expand(len(pairs), -1, -1, -1), masks, [(h, w)] * len(pairs)

    def _mask(self, target, class_id: int, h: int, w: int) -> np.ndarray:
        if self.name == "voc07":
            return self._module.class_mask(target, class_id)
        return self._module.class_mask(self.dataset.coco, target, class_id, h, w)

    def same_input(self, a: Pair, b: Pair) -> bool:
        return a.image == b.image


def acceptance_region(mask: np.ndarray, tolerance: float) -> Tensor:
    """Pixels strictly within ``tolerance`` of some mask pixel (bool [H, W]): a predicted point is a
    hit exactly when it falls in this region (the pointing game's rule, precomputed per pair)."""
    r = int(np.ceil(tolerance))
    offsets = torch.arange(-r, r + 1, dtype=torch.float64)
    disk = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) < tolerance**2).float()
    m = torch.as_tensor(mask, dtype=torch.float32)[None, None]
    hit = torch.nn.functional.conv2d(m, disk[None, None], padding=r)
    return hit[0, 0] > 0.5


class ShorterSide:
    """Resize a [C, H, W] tensor so its shorter side is ``size``, keeping the aspect ratio
    (bilinear, ``align_corners=False``, no antialiasing: the pointing-game protocol's resize)."""

    def __init__(self, size: int):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size: expected a positive int, got {size!r}")
        self.size = size

    def __call__(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if w < h:
            new = (int(self.size * h / w), self.size)
        else:
            new = (self.size, int(self.size * w / h))
        return F.interpolate(x[None].float(), size=new, mode="bilinear", align_corners=False)[0]

    def __repr__(self) -> str:
        return f"ShorterSide({self.size})"
