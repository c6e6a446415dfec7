"""revisal: Extract & Aggregate backpropagation saliency (Rebuffi, Fong, Ji, Vedaldi, CVPR 2020).

>>> import revisal
>>> maps = revisal.saliency(model, images, target=282, layers=["features.29"],
...                         methods=["normgrad", "selective_normgrad"])      # doctest: +SKIP
"""

from revisal import metrics
from revisal.aggregations import AGGREGATIONS, Aggregation
from revisal.combine import combine
from revisal.engine import saliency
from revisal.layer_weights import layer_weights
from revisal.maps import FLAT_RTOL, SaliencyMaps, flat_maps
from revisal.meta import MetaStep
from revisal.methods import DEFAULT_METHODS, METHODS, Method, register_method
from revisal.sites import SITES, Site
from revisal.validation import NonFiniteMapError

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
