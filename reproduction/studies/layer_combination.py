"""Notebook 02: the pointing game by layer and combined across layers (Tables 3, 5, 6; Figs. 2, 3, 9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import Study, figure, table
from ._parameters import BOOLEAN, COUNT, MIN_EFFECT, PATH, THRESHOLD, Common, check, method_names, models_for


@dataclass(frozen=True)
class Parameters(Common):
    """Notebook 02's parameters (their defaults: the notebook's parameters cell)."""

    cache_root: Annotated[str | None, PATH]
    pointing_models: Annotated[list[str], models_for("pointing_dataset")]
    methods: Annotated[list[str], method_names("grad_cam", "linear_approx", "selective_normgrad")]
    pointing_dataset: Annotated[str, check("dataset", "pointing")]
    pointing_n: Annotated[int | None, check("count", optional=True)]
    weight_images: Annotated[int, COUNT]
    weightings: Annotated[list[str], check("weightings", False, ("probe_accuracy",))]  # computed here
    published_weightings: Annotated[list[str], check("weightings", True)]  # the authors' published ones
    batch_size: Annotated[int, COUNT]
    fig3_model: Annotated[str, check("member_of", "pointing_models")]
    fig3_methods: Annotated[list[str], check("subset_of", "methods")]
    fig2_pair: Annotated[int, check("integer", 0)]
    data_root: Annotated[str | None, PATH]
    checkpoint_dir: Annotated[str | None, PATH]
    verify_checkpoints: Annotated[bool, BOOLEAN]
    imagenet_pretrained: Annotated[bool, BOOLEAN]
    torchray_flags: Annotated[bool, BOOLEAN]
    input_size: Annotated[int, COUNT]
    threshold_combination_gain: Annotated[float, THRESHOLD]
    threshold_gradcam_margin: Annotated[float, THRESHOLD]
    threshold_best_overall: Annotated[float, THRESHOLD]
    min_pointing_gain: Annotated[float, MIN_EFFECT]
    min_best_margin: Annotated[float, MIN_EFFECT]
    grid_model: Annotated[str, check("imagenet_model")]
    grid_mosaics: Annotated[int, COUNT]
    grid_min_confidence: Annotated[float, check("probability")]
    grid_methods: Annotated[list[str], method_names()]


STUDY = Study("02_layer_combination", "Tables 3, 5, 6; Figs. 2, 3, 9", (
    table("table03_pointing_game"),
    table("table05_best_layer", "Table 5: best single layer"),
    table("table06_weighting_gains", "Table 6: gain of each weighting over the best single layer"),
    figure("fig02_layer_combination", "Fig. 2: per-layer maps and their combination"),
    figure("fig03_pointing_by_depth", "Fig. 3: pointing accuracy by depth"),
    figure("fig09_layer_weights", "Fig. 9: layer weights"),
    table("table_grid_photos", "not in the paper: the offline photos, kept when EfficientNet-Lite0 is confident"),
    table("table_grid_pointing", "not in the paper: grid pointing game (Böhle et al. 2022) beside the testbed"),
    figure("fig_grid_pointing", "not in the paper: grid pointing game hit rates"),
    figure("fig_grid_pointing_examples", "not in the paper: one mosaic, each cell's class"),
), Parameters)
