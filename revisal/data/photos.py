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


def side_by_side(left: str | np.ndarray, right: str | np.ndarray, *, size: int = 448,
                 shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Two photos in one square RGB uint8 image [size, size, 3]: the centre strip (half as wide as
    tall, moved ``shift`` pixels sideways) of each photo's ``size``² centre crop, ``left`` on the
    left half. A two-object image, so a class-selective map of one object's class stays on its half."""
    halves = []
    for image, dx in zip((left, right), shift):
        square = to_pixels(photo(image) if isinstance(image, str) else image, size)
        start = (size - size // 2) // 2 + dx
        if not 0 <= start <= size - size // 2:
            raise ValueError(f"shift: {dx} moves the strip outside the {size}² crop")
        halves.append(square[:, :, start:start + size // 2])
    return (torch.cat(halves, dim=2).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def halves(size: int) -> np.ndarray:
    """Boolean masks [2, size, size] of the left and right halves of a :func:`side_by_side` image."""
    masks = np.zeros((2, size, size), dtype=bool)
    masks[0, :, : size // 2], masks[1, :, size // 2:] = True, True
    return masks


#: Photo name → loader of an RGB uint8 array [H, W, 3]; all bundled inside scikit-image.
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": _skimage("chelsea"),  # a tabby cat
    "coffee": _skimage("coffee"),  # a cup of espresso
    "astronaut": _skimage("astronaut"),  # Eileen Collins
    "rocket": _skimage("rocket"),  # a rocket on the launch pad
    "motorcycle": _skimage("stereo_motorcycle"),  # left view of the stereo pair
    # chelsea beside coffee (the paper's Figs. 4, 5 and 15 use a two-object image): EfficientNet-Lite0
    # ranks 'tiger cat' first and 'espresso' first after the three cat classes
    "chelsea_coffee": lambda: side_by_side("chelsea", "coffee", shift=(-20, -60)),
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


def image_file(path, size: int = 224) -> Photos:
    """Your own image (any format Pillow reads) as a one-photo batch, resized and centre-cropped to
    ``size``² like the shipped photos."""
    from pathlib import Path

    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: {path} is not a file")
    with Image.open(path) as image:
        pixels = to_pixels(np.array(image.convert("RGB")), size)  # a writable copy for torch
    return Photos(pixels[None], [path.stem])
