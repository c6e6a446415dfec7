"""COCO 2014 val through torchvision's ``CocoDetection`` + pycocotools masks (``make data-coco``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from reproduction.datasets.labels import COCO_CATEGORY_IDS
from reproduction.datasets.pointing import PointingPair, is_difficult
from reproduction.storage import project_path

COCO_ROOT = "data/coco"
_CLASS_OF_CATEGORY = {cat: i for i, cat in enumerate(COCO_CATEGORY_IDS)}


def coco14(root: str | Path = COCO_ROOT, split: str = "val2014"):
    """The split as a torchvision ``CocoDetection`` (items: PIL image, list of annotation dicts)."""
    from torchvision.datasets import CocoDetection

    root = project_path(root)
    images, annotations = root / split, root / "annotations" / f"instances_{split}.json"
    if not (images.is_dir() and annotations.is_file()):
        raise FileNotFoundError(f"{images} or {annotations} is missing; download them with\n    make data-coco")
    return CocoDetection(str(images), str(annotations))


def class_ids(annotations: list[dict]) -> list[int]:
    return sorted({_CLASS_OF_CATEGORY[a["category_id"]] for a in annotations})


def class_mask(coco, annotations: list[dict], class_id: int, height: int, width: int) -> np.ndarray:
    """Union of the class's segmentations (crowd regions included, as TorchRay), bool [H, W]."""
    mask = np.zeros((height, width), dtype=bool)
    for a in annotations:
        if _CLASS_OF_CATEGORY[a["category_id"]] == class_id:
            mask |= coco.annToMask(a).astype(bool)
    return mask


def pointing_pairs(dataset) -> Iterator[PointingPair]:
    """Every image-class pair of a COCO dataset with its segmentation mask and difficult flag."""
    coco = dataset.coco
    for index, image_id in enumerate(dataset.ids):
        info = coco.loadImgs(image_id)[0]
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        present = class_ids(annotations)
        for c in present:
            mask = class_mask(coco, annotations, c, info["height"], info["width"])
            yield PointingPair(index, Path(info["file_name"]).stem, c, mask, is_difficult(mask, len(present)))
