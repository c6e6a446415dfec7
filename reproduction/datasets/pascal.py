"""PASCAL VOC 2007 test through torchvision's ``VOCDetection`` (``make data-voc`` downloads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator
from xml.etree import ElementTree

import numpy as np

from reproduction.datasets.labels import VOC_CLASSES
from reproduction.datasets.pointing import PointingPair, is_difficult
from reproduction.storage import project_path

VOC_ROOT = "data/voc"


def voc07(root: str | Path = VOC_ROOT, image_set: str = "test", download: bool = False):
    """The VOC2007 split as a torchvision ``VOCDetection`` (items: PIL image, parsed XML dict)."""
    from torchvision.datasets import VOCDetection

    root = project_path(root)
    devkit = root / "VOCdevkit" / "VOC2007"
    if not download and not (devkit / "ImageSets" / "Main" / f"{image_set}.txt").is_file():
        raise FileNotFoundError(f"{devkit} has no {image_set} split; download it with\n    make data-voc")
    return VOCDetection(str(root), year="2007", image_set=image_set, download=download)


def objects(annotation: dict) -> list[dict]:
    """The ``object`` entries of a parsed VOC annotation, always as a list."""
    objs = annotation["annotation"].get("object", [])
    return objs if isinstance(objs, list) else [objs]


def image_size(annotation: dict) -> tuple[int, int]:
    """(height, width) of the annotated image."""
    size = annotation["annotation"]["size"]
    return int(size["height"]), int(size["width"])


def class_ids(annotation: dict) -> list[int]:
    return sorted({VOC_CLASSES.index(o["name"]) for o in objects(annotation)})


def class_mask(annotation: dict, class_id: int) -> np.ndarray:
    """Union of the class's boxes (VOC boxes are 1-based and inclusive), bool [H, W]."""
    mask = np.zeros(image_size(annotation), dtype=bool)
    for o in objects(annotation):
        if VOC_CLASSES.index(o["name"]) == class_id:
            b = o["bndbox"]
            x0, y0, x1, y1 = (int(float(b[k])) - 1 for k in ("xmin", "ymin", "xmax", "ymax"))
            mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def all_boxes_difficult(annotation: dict, class_id: int) -> bool:
    """True when every box of the class is marked PASCAL-difficult (such pairs are not scored)."""
    return all(int(o.get("difficult", 0)) for o in objects(annotation) if VOC_CLASSES.index(o["name"]) == class_id)


def pointing_pairs(dataset) -> Iterator[PointingPair]:
    """Scored image-class pairs of a VOC dataset, as TorchRay's benchmark scores them: a pair whose
    boxes are all PASCAL-difficult is skipped; otherwise the mask is the union of all its boxes."""
    for index in range(len(dataset)):
        annotation = dataset.parse_voc_xml(ElementTree.parse(dataset.annotations[index]).getroot())  # no image I/O
        present = class_ids(annotation)
        name = Path(annotation["annotation"]["filename"]).stem
        for c in present:
            if all_boxes_difficult(annotation, c):
                continue
            mask = class_mask(annotation, c)
            yield PointingPair(index, name, c, mask, is_difficult(mask, len(present)))
