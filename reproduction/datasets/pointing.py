"""Image-class pairs for the pointing game (Zhang et al., ECCV 2016; paper supp. A).

For every image and every class present: the class's ground-truth region at the image's original
size, and the "difficult" flag: the region covers less than 25% of the image *and* at least one
other class is present. TorchRay ships precomputed flags for VOC07 test and COCO14 val; when a
copy is available, :func:`flag_agreement` compares them with the flags computed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class PointingPair:
    index: int  # image index in its dataset
    name: str  # image name without extension (the key of TorchRay's flag files)
    class_id: int
    mask: np.ndarray  # bool [H, W] at the original image size
    difficult: bool


def is_difficult(mask: np.ndarray, classes_present: int) -> bool:
    """Paper supp. A: class area < 25% of the image and at least one other class in the image."""
    return bool(mask.mean() < 0.25 and classes_present > 1)


def read_flag_file(path: str | Path) -> dict[str, list[bool]]:
    """TorchRay's flag format: one line per image, ``name<TAB>f_0<TAB>…<TAB>f_{C-1}`` with 0/1 flags."""
    flags = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            name, *values = line.rstrip("\n").split("\t")
            flags[name] = [bool(int(v)) for v in values]
    return flags


def flag_agreement(pairs: list[PointingPair], reference: dict[str, list[bool]]) -> dict[str, float | int]:
    """How often our "difficult" flags equal a reference file's, over the pairs it covers."""
    compared = [(p.difficult, reference[p.name][p.class_id]) for p in pairs if p.name in reference]
    agree = sum(a == b for a, b in compared)
    return {"pairs": len(compared), "agree": agree, "agreement": agree / len(compared) if compared else float("nan"),
            "ours_only": sum(a and not b for a, b in compared), "reference_only": sum(b and not a for a, b in compared)}


def torchray_flags(dataset: str) -> dict[str, list[bool]] | None:
    """TorchRay's precomputed difficult flags for ``"voc07"`` or ``"coco14"``, if TorchRay is
    installed (it is CC-BY-NC, so revisal does not ship them); ``None`` otherwise."""
    names = {"voc07": "pointing_game_ebp_voc07_difficult.txt", "coco14": "pointing_game_ebp_coco_difficult.txt"}
    if dataset not in names:
        raise ValueError(f"dataset: expected one of {sorted(names)}, got {dataset!r}")
    try:
        from importlib import resources

        path = resources.files("torchray.benchmark") / names[dataset]
        return read_flag_file(path) if path.is_file() else None
    except ModuleNotFoundError:
        return None
