"""Reading the user's images for ``python -m revisal explain``: found, checked, decoded, printed.

Every image goes through :func:`open_rgb`, in this order, so that nothing larger than needed is
ever allocated:

1. Pillow opens it lazily (the header only). An image of more than ``PIL.Image.MAX_IMAGE_PIXELS``
   pixels (after JPEG's reduced decoding, step 2) is refused before its pixels are decoded, naming
   the file and its size: a decompression bomb or an absurd size.
2. A JPEG is decoded directly at 1/2, 1/4 or 1/8 scale when both sides stay ≥ the model's input side
   (``Image.draft``).
3. The EXIF orientation is applied (the photo as a viewer shows it).
4. The centred square (side = the shorter side) is cropped *before* any resize: a very wide image
   costs no more than its square.
5. The pixels become 8-bit RGB by mode (:func:`rgb_array`). A square of at least four times the
   input side is box-reduced by an integer factor (``Image.reduce``) to between 2× and 4× of it.
6. :func:`revisal.data.photos.to_pixels` resizes it (antialiased bilinear) to the input side.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from torch import Tensor

#: Pillow modes with 16 bits per pixel (read as full-scale 16-bit: v / 65535).
MODES_16 = ("I;16", "I;16L", "I;16B", "I;16N")
#: Modes Pillow cannot turn into RGB correctly (``LAB`` would need a colour profile).
REFUSED_MODES = {"LAB": "convert it to RGB with PIL.ImageCms (a colour profile) first"}


class ImageError(ValueError):
    """An input that is not an image explain can read; the message names the file."""


def printable(path: str | os.PathLike) -> str:
    """``path`` as text any terminal, figure or JSON file can show: bytes that are not UTF-8 (a
    Linux file name such as ``b'\\xff.png'``) as ``\\xff``, control characters as escapes."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def image_paths(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by ``inputs``: files as given, folders by their files (recursively,
    sorted) with an extension Pillow reads. Missing paths and empty folders are errors."""
    from PIL import Image

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    extensions = {ext.lower() for ext in Image.registered_extensions()}
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            if not found:
                raise ValueError(f"images: folder {printable(path)} holds no image Pillow reads "
                                 f"(extensions such as .jpg, .png, .webp, .tif)")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"images: {printable(path)} is neither a file nor a folder")
    if not out:
        raise ValueError("images: no image given")
    return out


def output_names(paths: Sequence[Path]) -> list[str]:
    """A distinct file stem per image: the stem, or ``stem_ext`` (then ``_2``, ``_3``...) on a clash."""
    stems = [p.stem for p in paths]
    out, used = [], set()
    for p, stem in zip(paths, stems):
        name = stem if stems.count(stem) == 1 else f"{stem}_{p.suffix.lstrip('.').lower()}"
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        out.append(name)
    return out


def rgb_array(image) -> np.ndarray:
    """A Pillow image as RGB uint8 [H, W, 3], by mode:

    * 16-bit grey (``I;16*``) and 32-bit integer grey (``I``, values in [0, 65535]): round(v · 255 / 65535);
    * float grey (``F``, values in [0, 1]): round(v · 255);
    * with transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a transparency key):
      composited over white, round(c · a + 255 · (1 − a)) with a = alpha / 255;
    * any other mode Pillow converts (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``HSV``...): Pillow's RGB.

    Raises:
        ImageError (without the file name; :func:`open_rgb` adds it): values out of range, or a
        mode that has no correct conversion.
    """
    mode = image.mode
    if mode in REFUSED_MODES:
        raise ImageError(f"mode {mode} is not read here: {REFUSED_MODES[mode]}")
    if mode in MODES_16 or mode == "I":
        values = np.asarray(image)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise ImageError(f"mode {mode} values span [{low}, {high}]; expected 16-bit values in [0, 65535]")
        grey = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257), never a tie
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode == "F":
        values = np.asarray(image)
        if not np.isfinite(values).all():
            raise ImageError("mode F (float) holds NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 1:
            raise ImageError(f"mode F (float) values span [{low:g}, {high:g}]; expected [0, 1]")
        grey = np.rint(values.astype(np.float64) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if "A" in mode or "a" in mode or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        alpha = rgba[..., 3:].astype(np.uint16)
        # c·a/255 + 255·(255 − a)/255 ≤ 255, so the numerator fits 16 bits; + 127 rounds (255 is odd: no ties)
        return ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    try:
        return np.array(image.convert("RGB"))  # a writable copy
    except ValueError as error:
        raise ImageError(f"mode {mode} cannot be converted to RGB ({error})") from None


def open_rgb(path: Path, size: int) -> np.ndarray:
    """The centred square of ``path`` as it is displayed (EXIF orientation applied), RGB uint8
    [S, S, 3] with size ≤ S < 4·size (or the image's shorter side, when smaller); see the module
    docstring for the steps and limits.

    Raises:
        ImageError naming the file: not an image, truncated, too many pixels, an unreadable mode.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    shown = printable(path)
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, by our own rule
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise ImageError(f"images: {shown}: refused before decoding: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageError(f"images: {shown} is not an image Pillow can read ({error})") from None
    with image:
        try:
            image.draft(None, (size, size))  # JPEG: decode at a reduced scale, both sides still ≥ size
            width, height = image.size
            if limit is not None and width * height > limit:
                raise ImageError(f"images: {shown} is {width}×{height} = {width * height:,} pixels, over the "
                                 f"limit of {limit:,} (PIL.Image.MAX_IMAGE_PIXELS); refused before decoding "
                                 "(a decompression bomb or an absurd size)")
            if width < 1 or height < 1:
                raise ImageError(f"images: {shown} is {width}×{height}: no pixels")
            upright = ImageOps.exif_transpose(image)
            side = min(upright.size)
            left, top = (upright.width - side) // 2, (upright.height - side) // 2
            square = upright.crop((left, top, left + side, top + side))
            rgb = rgb_array(square)
        except ImageError as error:
            if str(error).startswith("images: "):
                raise
            raise ImageError(f"images: {shown}: {error}") from None
        except (OSError, ValueError, SyntaxError, EOFError) as error:  # truncated or corrupt pixel data
            raise ImageError(f"images: {shown}: its pixels cannot be decoded ({error})") from None
    factor = side // (2 * size)
    if factor >= 2:
        rgb = np.array(Image.fromarray(rgb).reduce(factor))
    return rgb


def read_image(path: Path, size: int) -> Tensor:
    """``path`` as float pixels [3, size, size] in [0, 1] (RGB; the centred square of the upright
    image, resized to ``size`` with antialiased bilinear interpolation); see :func:`open_rgb`."""
    from revisal.data.photos import to_pixels

    return to_pixels(open_rgb(path, size), size)


def check_image_files(paths: Sequence[Path], size: int) -> list[tuple[Path, str]]:
    """Decode every image of ``paths`` as :func:`read_image` will (nothing is kept): the
    ``(path, reason)`` of each that cannot be explained, in order; empty when all can."""
    bad = []
    for path in paths:
        try:
            open_rgb(path, size)
        except ImageError as error:
            bad.append((path, str(error).removeprefix("images: ")))
    return bad


__all__ = ["ImageError", "check_image_files", "image_paths", "open_rgb", "output_names", "printable", "read_image",
           "rgb_array"]
