"""Notebook 01: the virtual identity against the real convolution (Table 4) and its pointing game."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import Study, figure, table
from ._parameters import BOOLEAN, COUNT, PATH, THRESHOLD, ImageNetInput, check, models_for


@dataclass(frozen=True)
class Parameters(ImageNetInput):
    """Notebook 01's parameters (their defaults: the notebook's parameters cell)."""

    cache_root: Annotated[str | None, PATH]
    identity_models: Annotated[list[str], models_for("image_dataset")]
    identity_layers: Annotated[dict[str, list[str]], check("identity_layers")]
    image_dataset: Annotated[str, check("dataset", "image")]
    identity_n: Annotated[int, COUNT]
    pointing_model_for: Annotated[dict[str, str], check("pointing_model_for")]
    pointing_dataset: Annotated[str, check("dataset", "pointing")]
    pointing_n: Annotated[int | None, check("count", optional=True)]
    data_root: Annotated[str | None, PATH]
    checkpoint_dir: Annotated[str | None, PATH]
    verify_checkpoints: Annotated[bool, BOOLEAN]
    threshold_correlation: Annotated[float, THRESHOLD]
    threshold_pointing_difference: Annotated[float, THRESHOLD]


STUDY = Study("01_identity_trick", "Table 4", (
    table("table04_identity_trick", "Table 4: virtual 1×1 identity vs the real conv"),
    figure("fig_identity_trick", "not in the paper: each image's identity-trick correlation by layer"),
), Parameters)
