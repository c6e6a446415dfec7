"""Notebook 05: the cascading weight-randomisation sanity check (Figs. 8, 13)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import Study, figure, table
from ._parameters import COUNT, MIN_EFFECT, MODEL, PATH, PHOTOS, RATE, THRESHOLD, ImageNetInput, check, models_for, module_of


@dataclass(frozen=True)
class Parameters(ImageNetInput):
    """Notebook 05's parameters (their defaults: the notebook's parameters cell)."""

    cache_root: Annotated[str | None, PATH]
    meta_lr: Annotated[float, RATE]
    randomization_model: Annotated[str, models_for("image_dataset", single=True)]
    randomization_layer: Annotated[str, module_of("randomization_model")]
    randomization_n: Annotated[int, COUNT]
    randomization_blocks: Annotated[str | list[str] | None, check("randomization_blocks")]
    randomization_target: Annotated[str, check("randomization_target")]
    image_dataset: Annotated[str, check("dataset", "image")]
    qualitative_model: Annotated[str, MODEL]
    randomization_map_layer: Annotated[str, module_of("qualitative_model")]
    qualitative_blocks: Annotated[str | list[str] | None, check("randomization_blocks", "qualitative_model")]
    photos: Annotated[list[str], PHOTOS]
    image_size: Annotated[int, COUNT]
    threshold_scrambled: Annotated[float, THRESHOLD]
    threshold_meta_delay: Annotated[float, THRESHOLD]
    min_rho_difference: Annotated[float, MIN_EFFECT]


STUDY = Study("05_weight_randomization", "Figs. 8, 13", (
    figure("fig08b_randomization_curves", "Fig. 8 as curves (Adebayo et al.'s presentation)"),
    figure("fig08_randomization", "Fig. 8: cascading randomisation"),
    table("table_randomization_variants"),
    figure("fig13_randomization_examples_1"),
    figure("fig13_randomization_examples_*", "Fig. 13: more randomisation examples"),
), Parameters)
