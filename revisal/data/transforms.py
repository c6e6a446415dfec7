"""Preprocessing as composable callables (work inside ``torchvision.transforms.Compose``).

>>> from torchvision.transforms import Compose, ToTensor
>>> caffe = Compose([ToTensor(), ShorterSide(224), CAFFE_NORMALIZE])     # TorchRay's VOC/COCO models
>>> imagenet = Compose([ToTensor(), ShorterSide(224), IMAGENET_NORMALIZE])
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..models.caffe import CAFFE_NORMALIZE
from ..models.zoo import IMAGENET_NORMALIZE, TESTBED_NORMALIZE, TF_LITE_NORMALIZE

__all__ = ["ShorterSide", "CAFFE_NORMALIZE", "IMAGENET_NORMALIZE", "TESTBED_NORMALIZE", "TF_LITE_NORMALIZE"]


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
