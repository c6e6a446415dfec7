"""Models with their preprocessing, class names and layer presets: ``revisal.models.load(name)``."""

from .zoo import (
    IMAGENET_CLASSES,
    IMAGENET_NORMALIZE,
    LAYER_PRESETS,
    LOADERS,
    TF_LITE_NORMALIZE,
    Normalize,
    ZooModel,
    efficientnet_lite0,
    load,
    load_by_position,
    skeleton,
)

__all__ = [
    "IMAGENET_CLASSES", "IMAGENET_NORMALIZE", "LAYER_PRESETS", "LOADERS", "TF_LITE_NORMALIZE",
    "Normalize", "ZooModel", "efficientnet_lite0", "load", "load_by_position", "skeleton",
]
