"""Wiring shared by the notebooks and the command line: sources and weight samples per dataset."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import testbed
from .sources import DetectionSource, TestbedSource


def testbed_source(zoo, split: str = "test", n: int | None = None, size: int = 64, seed: int = 0,
                   progress: bool = False) -> TestbedSource:
    return TestbedSource(testbed.load(split, n, size, seed, progress=progress), zoo.normalize)


def detection_source(zoo, dataset: str, root: str | None = None, input_size: int = 224,
                     torchray_flags: bool = False) -> DetectionSource:
    """VOC07 test or COCO14 val for a model taking Caffe- or ImageNet-normalised input."""
    from ..data import coco, pascal, pointing

    data = pascal.voc07(root or pascal.VOC_ROOT) if dataset == "voc07" else coco.coco14(root or coco.COCO_ROOT)
    flags = pointing.torchray_flags(dataset) if torchray_flags else None
    return DetectionSource(dataset, data, zoo.normalize, input_size, flags=flags)


def weight_sample(zoo, dataset: str = "testbed", m: int = 400, size: int = 64, seed: int = 0,
                  source: DetectionSource | None = None) -> tuple[Tensor, Tensor]:
    """M images (and multi-hot labels) to compute data-driven layer weights from: testbed validation
    scenes (never the scored test split), or M images of a detection source sampled uniformly across
    classes, as the paper's § 4.2 says (:func:`revisal.layer_weights.sample_across_classes`)."""
    if dataset == "testbed":
        split = testbed.load("val", m, size, seed, progress=False)
        return zoo.normalize(split.pixels(range(len(split)))), split.labels
    if source is None:
        raise ValueError("source: detection datasets draw the weight sample from their source")
    from torchvision.transforms.functional import center_crop, to_tensor

    from ..data.transforms import ShorterSide

    from ..layer_weights import sample_across_classes

    labels = torch.zeros(len(source.dataset), source.num_classes)
    for p in source.pairs():
        labels[p.image, p.class_id] = 1
    chosen = sample_across_classes(labels, min(m, len(labels)), seed)
    images = []
    for i in chosen.tolist():
        image, _ = source.dataset[i]
        x = center_crop(ShorterSide(source.input_size)(to_tensor(image)), [source.input_size] * 2)
        images.append(source.normalize(x))
    return torch.stack(images), labels[chosen]
