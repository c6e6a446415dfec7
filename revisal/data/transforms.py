"""Each model family's per-channel normalisation, as a callable that works inside
``torchvision.transforms.Compose``.

>>> from torchvision.transforms import Compose, ToTensor
>>> imagenet = Compose([ToTensor(), IMAGENET_NORMALIZE])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Normalize", "CAFFE_NORMALIZE", "IMAGENET_NORMALIZE", "TF_LITE_NORMALIZE"]


@dataclass(frozen=True)
class Normalize:
    """``(pixels - mean) / std`` per channel, for pixels in [0, 1] shaped [N, 3, H, W] or [3, H, W]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, pixels: Tensor) -> Tensor:
        shape = (3, 1, 1)
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device).view(shape)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device).view(shape)
        return (pixels - mean) / std


IMAGENET_NORMALIZE = Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# The TF EfficientNet-Lite checkpoints were trained on (x - 127) / 128 in 0..255 pixel units.
TF_LITE_NORMALIZE = Normalize((127 / 255,) * 3, (128 / 255,) * 3)
# Caffe preprocessing: RGB in 0..255 minus the ImageNet mean (BGR means 103.939, 116.779, 123.68).
CAFFE_NORMALIZE = Normalize((123.68 / 255, 116.779 / 255, 103.939 / 255), (1 / 255,) * 3)


