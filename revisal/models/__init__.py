"""Models with their preprocessing, class names and layer presets: ``revisal.models.load(spec)``."""

from revisal.models.loading import NORMALIZATIONS, WeightsNotFoundError, load, load_state
from revisal.models.presets import PRESETS, Preset
from revisal.models.zoo import ENTRY_POINTS, LOADERS, ZooModel, efficientnet_lite0, load_by_position, skeleton, zoo_model

__all__ = ["ENTRY_POINTS", "LOADERS", "NORMALIZATIONS", "PRESETS", "Preset", "WeightsNotFoundError", "ZooModel",
           "efficientnet_lite0", "load", "load_by_position", "load_state", "skeleton", "zoo_model"]
