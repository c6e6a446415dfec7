"""ImageNet's class names (index = the models' output index)."""

import importlib.resources

#: The 1000 ImageNet class names in index order (``imagenet_classes.txt``, one per line; the names
#: torchvision's ImageNet models use, e.g. 282 "tiger cat").
IMAGENET_CLASSES: tuple[str, ...] = tuple(
    importlib.resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8").splitlines())
assert len(IMAGENET_CLASSES) == 1000
