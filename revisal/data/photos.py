"""Real photographs shipped with scikit-image, as ready tensors (no download)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: left view

    return read


#: Photo name → loader of an RGB uint8 array [H, W, 3]; all bundled inside scikit-image.
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": _skimage("chelsea"),  # a tabby cat
    "coffee": _skimage("coffee"),  # a cup of espresso
    "astronaut": _skimage("astronaut"),  # Eileen Collins
    "rocket": _skimage("rocket"),  # a rocket on the launch pad
    "motorcycle": _skimage("stereo_motorcycle"),  # left view of the stereo pair
}


def photo(name: str) -> np.ndarray:
    """One photo as an RGB uint8 array [H, W, 3]."""
    if name not in PHOTOS:
        raise ValueError(f"name: unknown photo {name!r}; expected one of {sorted(PHOTOS)}")
    return PHOTOS[name]()


def to_pixels(image: np.ndarray, size: int = 224) -> Tensor:
    """uint8 [H, W, 3] → float [3, size, size] in [0, 1]: shorter side to ``size`` (antialiased
    bilinear), then a centre crop."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected an RGB uint8 array [H, W, 3], got {image.dtype} {image.shape}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)[None]
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return x[0, :, top : top + size, left : left + size].clamp(0, 1).contiguous()


@dataclass
class Photos:
    """A batch of photos: ``pixels`` [N, 3, S, S] in [0, 1] (normalise per model) and their names."""

    pixels: Tensor
    names: list[str]

    def numpy(self, index: int) -> np.ndarray:
        """Photo ``index`` as a float [S, S, 3] array for ``imshow``."""
        return self.pixels[index].permute(1, 2, 0).cpu().numpy()


def photos(names: Sequence[str] | None = None, size: int = 224) -> Photos:
    """The named photos (default: all of :data:`PHOTOS`) resized and centre-cropped to ``size``²."""
    names = list(PHOTOS) if names is None else ([names] if isinstance(names, str) else list(names))
    if not names:
        raise ValueError("names: empty; pass at least one photo name")
    return Photos(torch.stack([to_pixels(photo(n), size) for n in names]), names)
