"""revisal: Extract & Aggregate backpropagation saliency (Rebuffi, Fong, Ji, Vedaldi, CVPR 2020).

>>> import revisal
>>> maps = revisal.saliency(model, images, target=282, layers=["features.29"],
...                         methods=["normgrad", "selective_normgrad"])      # doctest: +SKIP
"""

from . import metrics
from .aggregations import AGGREGATIONS, Aggregation
from .combine import combine
from .engine import saliency
from .layer_weights import layer_weights
from .maps import FLAT_RTOL, SaliencyMaps, flat_maps
from .meta import MetaStep
from .methods import DEFAULT_METHODS, METHODS, Method, register_method
from .sites import SITES, Site
from .validation import NonFiniteMapError

__version__ = "0.1.0"

__all__ = [
    "AGGREGATIONS",
    "FLAT_RTOL",
    "Aggregation",
    "DEFAULT_METHODS",
    "METHODS",
    "Method",
    "MetaStep",
    "NonFiniteMapError",
    "SITES",
    "SaliencyMaps",
    "combine",
    "flat_maps",
    "layer_weights",
    "metrics",
    "Site",
    "register_method",
    "saliency",
]
