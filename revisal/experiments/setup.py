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
    if torchray_flags and flags is None:
        raise ValueError(f"torchray_flags: TorchRay's difficult flags for {dataset} come with the torchray package "
                         "(pip install torchray); install it or set torchray_flags: false (the area rule)")
    return DetectionSource(dataset, data, zoo.normalize, input_size, flags=flags)


def weight_sample(zoo, dataset: str = "testbed", m: int = 400, size: int = 64, seed: int = 0,
                  source: DetectionSource | None = None) -> tuple[Tensor, Tensor]:
    """M images (and multi-hot labels) to compute data-driven layer weights from: testbed validation
    scenes (never the scored test split), or every k-th image of a detection source."""
    if dataset == "testbed":
        split = testbed.load("val", m, size, seed, progress=False)
        return zoo.normalize(split.pixels(range(len(split)))), split.labels
    if source is None:
        raise ValueError("source: detection datasets draw the weight sample from their source")
    from torchvision.transforms.functional import center_crop, to_tensor

    from ..data.transforms import ShorterSide

    step = max(1, len(source.dataset) // m)
    images, labels = [], []
    for i in range(0, len(source.dataset), step)[:m]:
        image, target = source.dataset[i]
        x = center_crop(ShorterSide(source.input_size)(to_tensor(image)), [source.input_size] * 2)
        images.append(source.normalize(x))
        y = torch.zeros(source.num_classes)
        y[[p.class_id for p in source.pairs() if p.image == i]] = 1
        labels.append(y)
    return torch.stack(images), torch.stack(labels)
