"""Notebook 04: meta-saliency (Figs. 7, 10, 11, 12)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import Study, figure, table
from ._parameters import COUNT, MIN_EFFECT, PHOTOS, RATE, THRESHOLD, Sensitivity, check, layers_of, method_names


@dataclass(frozen=True)
class Parameters(Sensitivity):
    """Notebook 04's parameters (their defaults: the notebook's parameters cell)."""

    methods: Annotated[list[str], method_names()]
    dynamics_model: Annotated[str, check("dynamics_model")]
    dynamics_layers: Annotated[list[str], layers_of("dynamics_model")]
    dynamics_methods: Annotated[list[str], method_names()]
    dynamics_n: Annotated[int, COUNT]
    dynamics_lr: Annotated[float, RATE]
    dynamics_seeds: Annotated[list[int], check("seeds")]
    train: Annotated[dict | None, check("config_fields", "TrainConfig", ("model",), (), optional=True)]
    photos: Annotated[list[str], PHOTOS]
    threshold_meta_share: Annotated[float, THRESHOLD]
    threshold_val_gap: Annotated[float, THRESHOLD]
    min_fit_gap: Annotated[float, MIN_EFFECT]  # the epochs Fig. 10 reads
    threshold_stabilisation: Annotated[float, THRESHOLD]


STUDY = Study("04_meta_saliency", "Figs. 7, 10, 11, 12", (
    figure("fig07_meta_class_sensitivity", "Fig. 7: class sensitivity with meta-saliency"),
    table("table_meta_step_readings"),
    table("table_meta_class_sensitivity_variants"),
    figure("fig10_meta_dynamics", "Fig. 10: meta vs plain maps over training"),
    figure("fig11_meta_stabilisation", "Fig. 11: stabilisation over training"),
    figure("fig12_meta_examples", "Fig. 12: negative, plain and positive meta-saliency"),
), Parameters)
