"""Models with their preprocessing, class names and layer presets: ``revisal.models.load(name)``."""

from .presets import LAYER_PRESETS, PRESETS, Preset
from .zoo import LOADERS, ZooModel, efficientnet_lite0, load, load_by_position, skeleton

__all__ = ["LAYER_PRESETS", "LOADERS", "PRESETS", "Preset", "ZooModel", "efficientnet_lite0", "load",
           "load_by_position", "skeleton"]
