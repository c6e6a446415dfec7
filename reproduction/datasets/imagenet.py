"""ImageNet val from a folder the user provides (ImageNet's licence forbids redistribution).

Expected layout, as torchvision's ``ImageFolder`` reads it: ``<root>/<wnid>/<image>.JPEG`` with the
1000 WordNet ids as folder names; sorted wnids give the standard class order of torchvision models.
"""

from __future__ import annotations

from pathlib import Path

from reproduction.storage import project_path
from revisal.data.transforms import IMAGENET_NORMALIZE, Normalize

IMAGENET_ROOT = "data/imagenet/val"


def imagenet_val(root: str | Path = IMAGENET_ROOT, transform=None, per_class: int | None = None):
    """The folder as an ``ImageFolder``; ``per_class`` keeps the first N images of each class
    (the paper's class-sensitivity study uses 1 per class)."""
    from torch.utils.data import Subset
    from torchvision.datasets import ImageFolder

    root = project_path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} does not exist. ImageNet cannot be downloaded automatically: get ILSVRC2012 val from "
            "https://image-net.org, sort it into one folder per WordNet id (e.g. with the `valprep.sh` "
            f"script that circulates with PyTorch's ImageNet example), and put the folders in {root}"
        )
    dataset = ImageFolder(str(root), transform=transform)
    if per_class is None:
        return dataset
    seen: dict[int, int] = {}
    keep = []
    for i, target in enumerate(dataset.targets):
        if seen.get(target, 0) < per_class:
            keep.append(i)
            seen[target] = seen.get(target, 0) + 1
    return Subset(dataset, keep)


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
