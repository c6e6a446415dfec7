"""Notebook 03: class sensitivity by depth (Figs. 5, 6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import Study, figure, table
from ._parameters import PHOTO, THRESHOLD, Sensitivity, class_of, method_names


@dataclass(frozen=True)
class Parameters(Sensitivity):
    """Notebook 03's parameters (their defaults: the notebook's parameters cell)."""

    methods: Annotated[list[str], method_names("contrastive_excitation_backprop", "excitation_backprop", "grad_cam",
                                          "gradient_sum", "guided_backprop", "linear_approx")]
    photo: Annotated[str, PHOTO]
    gt_class: Annotated[str | int, class_of("qualitative_model")]
    threshold_near_one: Annotated[float, THRESHOLD]
    threshold_anticorrelated: Annotated[float, THRESHOLD]
    threshold_closest: Annotated[float, THRESHOLD]


STUDY = Study("03_class_sensitivity", "Figs. 5, 6", (
    figure("fig06_class_sensitivity", "Fig. 6: class sensitivity by depth"),
    figure("fig05_class_sensitivity_examples", "Fig. 5: maps for the ground-truth, max and min class"),
    table("table_class_sensitivity_variants"),
    table("table_meta_epsilon", "not in the paper: how far one meta step of size ε moves the maps of Fig. 5"),
    table("table_meta_epsilon_by_network", "not in the paper: how far each ε moves the maps, per network"),
), Parameters)
