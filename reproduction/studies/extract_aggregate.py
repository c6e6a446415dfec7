"""Notebook 00: the framework as code (Tables 1–2), Fig. 15 (methods × depth) and Fig. 4 (Grad-CAM
across depth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import Study, figure, table
from ._parameters import BOOLEAN, COUNT, EXISTING_FILE, MIN_EFFECT, MODEL, PHOTO, PHOTOS, THRESHOLD, Common, class_of, layers_of


@dataclass(frozen=True)
class Parameters(Common):
    """Notebook 00's parameters (their defaults: the notebook's parameters cell)."""

    model: Annotated[str, MODEL]
    imagenet_pretrained: Annotated[bool, BOOLEAN]
    photo: Annotated[str, PHOTO]
    image_path: Annotated[str | None, EXISTING_FILE]  # a photo of one's own instead of ``photo``
    target_class: Annotated[str | int, class_of("model")]
    contrast_class: Annotated[str | int, class_of("model")]
    image_size: Annotated[int, COUNT]
    layers: Annotated[list[str] | None, layers_of("model", optional=True)]
    selectivity_photos: Annotated[list[str], PHOTOS]
    threshold_selectivity_gain: Annotated[float, THRESHOLD]
    threshold_selective_share: Annotated[float, THRESHOLD]
    min_selectivity_gain: Annotated[float, MIN_EFFECT]
    interactive: Annotated[bool, BOOLEAN]  # the optional widgets


STUDY = Study("00_extract_aggregate", "Tables 1–2, Fig. 15, Fig. 4", (
    table("table02_methods", "Table 2 (printed from the registry)"),
    figure("fig15_methods_by_depth", "Fig. 15: gradient, linear approx., NormGrad, selective NormGrad at 5 depths"),
    figure("fig04_gradcam_by_depth", "Fig. 4: Grad-CAM by depth, for each object's class"),
    figure("fig04b_selectivity_by_depth", "not in the paper: class selectivity by depth on two-photo images"),
), Parameters)
