"""Preprocessing as composable callables (work inside ``torchvision.transforms.Compose``): each model
family's per-channel normalisation and the pointing game's resize.

>>> from torchvision.transforms import Compose, ToTensor
>>> caffe = Compose([ToTensor(), ShorterSide(224), CAFFE_NORMALIZE])     # TorchRay's VOC/COCO models
>>> imagenet = Compose([ToTensor(), ShorterSide(224), IMAGENET_NORMALIZE])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Normalize", "ShorterSide", "CAFFE_NORMALIZE", "IMAGENET_NORMALIZE", "TESTBED_NORMALIZE",
           "TF_LITE_NORMALIZE", "torchray_imagenet"]


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
# The mini models see testbed pixels centred and scaled to roughly unit variance.
TESTBED_NORMALIZE = Normalize((0.5,) * 3, (0.25,) * 3)
# Caffe preprocessing: RGB in 0..255 minus the ImageNet mean (BGR means 103.939, 116.779, 123.68).
CAFFE_NORMALIZE = Normalize((123.68 / 255, 116.779 / 255, 103.939 / 255), (1 / 255,) * 3)


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


def torchray_imagenet(size: int = 224, normalize: Normalize = IMAGENET_NORMALIZE):
    """The authors' ImageNet preprocessing (TorchRay's ``get_transform('imagenet', size=(S, S))``,
    used by their class-sensitivity, identity-trick, meta-saliency and sanity-check scripts): the
    whole PIL image resized to ``size × size`` (bilinear with antialiasing; the aspect ratio is *not*
    kept and nothing is cropped), then ``[0, 1]`` pixels, then ``normalize``. Takes a PIL image."""
    from torchvision.transforms import Compose, InterpolationMode, Resize, ToTensor

    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    return Compose([Resize((size, size), interpolation=InterpolationMode.BILINEAR, antialias=True), ToTensor(),
                    normalize])
