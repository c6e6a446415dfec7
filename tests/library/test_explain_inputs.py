"""``python -m revisal explain`` reads every image correctly or refuses it, before any work.

Pixels in every Pillow mode against references computed here from the raw values (numpy), EXIF
orientations against the EXIF specification's geometry, absurd sizes refused (or made harmless)
before decoding, unreadable files found before the first image is explained, and file names that
are not UTF-8 (or that matplotlib would parse as math) printed and drawn safely.
"""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest
from explain_fixtures import TINY, photos
from PIL import Image

from revisal.__main__ import main
from revisal.explain import read_image

SIDE = 6
#: A read pixel is a uint8 value / 255: within half a step of the exact value.
HALF_STEP = 0.5 / 255 + 1e-6


def _grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[None], 3, axis=0)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """[3, H, W] in [0, 1]: colour c (0..255) with opacity a (0..255) over white."""
    a = alpha.astype(np.float64) / 255
    return np.moveaxis(rgb.astype(np.float64) / 255 * a[..., None] + (1 - a[..., None]), -1, 0)


def _i16(rng):
    raw = rng.integers(0, 65536, (SIDE, SIDE), dtype=np.uint16)
    raw[0, :2] = 0, 65535
    return Image.fromarray(raw), "PNG", _grey(raw / 65535)


def _i16_tiff(rng):
    image, _, reference = _i16(rng)
    return image, "TIFF", reference


def _i32(rng):
    raw = rng.integers(0, 65536, (SIDE, SIDE)).astype(np.int32)
    return Image.fromarray(raw), "TIFF", _grey(raw / 65535)


def _float(rng):
    raw = rng.random((SIDE, SIDE)).astype(np.float32)
    return Image.fromarray(raw), "TIFF", _grey(raw.astype(np.float64))


def _la(rng):
    raw = rng.integers(0, 256, (SIDE, SIDE, 2), dtype=np.uint8)
    raw[0, 0, 1], raw[0, 1, 1] = 0, 255
    return Image.fromarray(raw, "LA"), "PNG", _over_white(np.repeat(raw[..., :1], 3, -1), raw[..., 1])


def _rgba(rng):
    raw = rng.integers(0, 256, (SIDE, SIDE, 4), dtype=np.uint8)
    return Image.fromarray(raw, "RGBA"), "PNG", _over_white(raw[..., :3], raw[..., 3])


def _palette_alpha(rng):
    """P with a tRNS alpha per palette entry."""
    index = rng.integers(0, 8, (SIDE, SIDE), dtype=np.uint8)
    palette = rng.integers(0, 256, (8, 3), dtype=np.uint8)
    alphas = rng.integers(0, 256, 8, dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.flatten().tolist())
    image.info["transparency"] = bytes(alphas)
    return image, "PNG", _over_white(palette[index], alphas[index])


def _palette_key(rng):
    """P with one transparent index."""
    index = rng.integers(0, 8, (SIDE, SIDE), dtype=np.uint8)
    palette = rng.integers(0, 256, (8, 3), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.flatten().tolist())
    image.info["transparency"] = 3
    return image, "PNG", _over_white(palette[index], np.where(index == 3, 0, 255))


def _rgb_key(rng):
    """RGB with a tRNS colour key: that colour is transparent."""
    raw = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    raw[:2] = (10, 20, 30)
    image = Image.fromarray(raw)
    image.info["transparency"] = (10, 20, 30)
    return image, "PNG", _over_white(raw, np.where((raw == (10, 20, 30)).all(-1), 0, 255))


def _cmyk(rng):
    raw = rng.integers(0, 256, (SIDE, SIDE, 4), dtype=np.uint8).astype(np.float64)
    reference = (1 - raw[..., :3] / 255) * (1 - raw[..., 3:] / 255)
    return Image.fromarray(raw.astype(np.uint8), "CMYK"), "TIFF", np.moveaxis(reference, -1, 0)


def _grey8(rng):
    raw = rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    return Image.fromarray(raw), "PNG", _grey(raw / 255)


MODES = {"I;16 png": _i16, "I;16 tiff": _i16_tiff, "I": _i32, "F": _float, "LA": _la, "RGBA": _rgba,
         "P alpha per entry": _palette_alpha, "P transparent index": _palette_key, "RGB colour key": _rgb_key,
         "CMYK": _cmyk, "L": _grey8}


@pytest.mark.parametrize("case", MODES)
def test_every_pillow_mode_is_read_against_a_reference(tmp_path, case):
    """16-bit and 32-bit integer grey are full-scale 16-bit (v / 65535), float grey is in [0, 1],
    transparency is composited over white, CMYK is (1 − C)(1 − K): each pixel within half an 8-bit
    step of the float64 value computed from the raw values."""
    image, fmt, reference = MODES[case](np.random.default_rng(len(case)))
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, format=fmt)
    with Image.open(path) as reopened:  # the file keeps the mode under test
        assert reopened.mode == image.mode and ("transparency" in reopened.info) == ("transparency" in image.info)
    got = read_image(path, SIDE).numpy().astype(np.float64)
    assert got.shape == reference.shape
    assert np.abs(got - reference).max() <= HALF_STEP


@pytest.mark.parametrize("values, message", [
    (np.full((SIDE, SIDE), 70000, dtype=np.int32), r"values span \[70000, 70000\]; expected 16-bit"),
    (np.full((SIDE, SIDE), -1, dtype=np.int32), r"values span \[-1, -1\]"),
    (np.full((SIDE, SIDE), 200.0, dtype=np.float32), r"float\) values span \[200, 200\]; expected \[0, 1\]"),
    (np.full((SIDE, SIDE), np.nan, dtype=np.float32), "NaN or infinite"),
])
def test_values_outside_a_mode_range_are_refused(tmp_path, values, message):
    path = tmp_path / "odd.tif"
    Image.fromarray(values).save(path)
    with pytest.raises(ValueError, match=f"odd.tif: .*{message}"):
        read_image(path, SIDE)


#: EXIF orientation → the displayed image from the stored one, from the specification's wording
#: ("the 0th row is the visual <side>, the 0th column is the visual <side>").
ORIENTATIONS = {
    1: lambda a: a,                                  # top, left
    2: lambda a: a[:, ::-1],                         # top, right
    3: lambda a: a[::-1, ::-1],                      # bottom, right
    4: lambda a: a[::-1, :],                         # bottom, left
    5: lambda a: a.transpose(1, 0, 2),               # left, top
    6: lambda a: a.transpose(1, 0, 2)[:, ::-1],      # right, top
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],   # right, bottom
    8: lambda a: a.transpose(1, 0, 2)[::-1, :],      # left, bottom
}


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_orientation_is_applied(tmp_path, orientation, fmt):
    """A 9×5 image (stored) is explained as displayed: its centred 5×5 square after the turn."""
    raw = np.random.default_rng(orientation).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned.{fmt.lower()}"
    Image.fromarray(raw).save(path, format=fmt, exif=exif, lossless=True)
    shown = ORIENTATIONS[orientation](raw)
    top, left = (shown.shape[0] - 5) // 2, (shown.shape[1] - 5) // 2
    reference = np.moveaxis(shown[top:top + 5, left:left + 5], -1, 0) / 255
    np.testing.assert_array_equal(read_image(path, 5).numpy(), reference.astype(np.float32))


@pytest.mark.parametrize("shape", [(1, 200_000), (200_000, 1), (3, 150_000)])
def test_very_elongated_images_cost_only_their_square(tmp_path, shape):
    """Resizing the shorter side first would allocate ~100 GB; the centred square comes first."""
    h, w = shape
    raw = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path = tmp_path / "long.png"
    Image.fromarray(raw).save(path)
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = raw[top:top + side, left:left + side]
    got = read_image(path, 224)
    assert got.shape == (3, 224, 224)
    if side == 1:  # one pixel, everywhere
        np.testing.assert_array_equal(got.numpy(), np.broadcast_to(square[0, 0, :, None, None] / 255, got.shape)
                                      .astype(np.float32))
    else:
        assert np.isclose(float(got.mean()), square.mean() / 255, atol=2 / 255)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width``×``height`` grey pixels and holds one byte of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_absurd_sizes_are_refused_before_decoding(tmp_path, capsys, monkeypatch):
    """A decompression bomb (Pillow's own refusal) and an image over the pixel limit (Pillow only
    warns) are refused by the CLI with the file and its size, exit status 2, nothing written; a
    JPEG whose reduced decoding fits the limit is read."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(40_000, 40_000))
    out = tmp_path / "out"
    rc = main(["explain", str(bomb), *TINY, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "bomb.png" in err and "1600000000 pixels" in err and "Traceback" not in err
    assert not out.exists()

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    Image.fromarray(np.zeros((60, 100, 3), dtype=np.uint8)).save(tmp_path / "large.png")  # 6000: a warning
    Image.fromarray(np.zeros((96, 96, 3), dtype=np.uint8)).save(tmp_path / "draft.jpg")  # 9216, 24×24 decoded
    rc = main(["explain", str(tmp_path / "large.png"), str(tmp_path / "draft.jpg"), *TINY, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "large.png is 100×60 = 6,000 pixels, over the limit of 5,000" in err
    assert "draft.jpg" not in err and not out.exists()
    assert read_image(tmp_path / "draft.jpg", 16).shape == (3, 16, 16)


def test_every_image_is_checked_before_any_is_explained(tmp_path, capsys):
    """Unreadable files among good ones (not an image, empty, truncated) stop the run before the
    first image is explained: all of them are listed, nothing is written. With --skip-unreadable
    the others are explained, the unreadable ones listed, and the exit status is 1."""
    folder = tmp_path / "photos"
    photos(folder, 3)
    (folder / "zz_text.png").write_text("not an image")
    (folder / "zz_empty.jpg").write_bytes(b"")
    good = (folder / "img0.png").read_bytes()
    (folder / "zz_truncated.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    rc = main(["explain", str(folder), *TINY, "--batch-size", "1", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "" and not out.exists()
    for name in ("zz_text.png", "zz_empty.jpg", "zz_truncated.png"):
        assert f"cannot read {folder / name}" in captured.err
    assert "3 of 6 images cannot be read" in captured.err and "Traceback" not in captured.err

    rc = main(["explain", str(folder), *TINY, "--out", str(out), "--skip-unreadable", "--maps-only"])
    captured = capsys.readouterr()
    assert rc == 1 and len(captured.out.splitlines()) == 3
    assert captured.err.count("revisal explain: skipped ") == 3
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"img{i}.{ext}" for i in range(3) for ext in ("npy", "json")] + ["explanations.csv"])
    assert len((out / "explanations.csv").read_text().splitlines()) == 1 + 3


NAMES = [b"\xff.png", b"caf\xe9 latin-1.png", "café ✓.png".encode(), b"math $\\frac$ $x^$.png", b"tab\tand\nnewline.png"]


def test_file_names_are_printed_and_drawn_safely(tmp_path, capsys):
    """Names that are not UTF-8, valid non-ASCII names, names matplotlib would parse as (broken)
    math, and names with control characters: printed escaped, drawn as text, written under the
    same bytes, recorded as valid UTF-8 JSON."""
    folder = os.fsencode(tmp_path / "names")
    os.mkdir(folder)
    rng = np.random.default_rng(0)
    for name in NAMES:
        with open(os.path.join(folder, name), "wb") as f:
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(f, format="PNG")
    out = tmp_path / "out"
    rc = main(["explain", os.fsdecode(folder), *TINY, "--methods", "gradient", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.splitlines()
    assert len(lines) == len(NAMES)
    for shown in ("\\xff.png: 1. ", "caf\\xe9 latin-1.png: 1. ", "café ✓.png: 1. ", "math $\\frac$ $x^$.png: 1. ",
                  "tab\\tand\\nnewline.png: 1. "):
        assert sum(shown in line for line in lines) == 1
    base = os.fsencode(out)
    written = set(os.listdir(base))
    for name in NAMES:
        stem = name[: -len(b".png")]
        assert {stem + ext for ext in (b".npy", b".png", b".json")} <= written
        with open(os.path.join(base, stem + b".json"), "rb") as f:
            record = json.loads(f.read().decode("utf-8"))
        escaped = name.decode("utf-8", "backslashreplace").replace("\t", "\\t").replace("\n", "\\n")
        assert record["image"].endswith(escaped)
        with Image.open(os.path.join(base, stem + b".png")) as figure:
            assert figure.size[0] > 300
    rc = main(["explain", os.fsdecode(folder), *TINY, "--methods", "gradient", "--out", str(tmp_path / "pdf"), "--pdf"])
    assert rc == 0 and len(list((tmp_path / "pdf").glob("*.pdf"))) == len(NAMES)
