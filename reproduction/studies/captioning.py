"""Notebook 06: explaining a captioner's words (Fig. 14, supp. F)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import Study, figure, table
from ._parameters import COUNT, EXISTING_FILE, MIN_EFFECT, THRESHOLD, Common, check


@dataclass(frozen=True)
class Parameters(Common):
    """Notebook 06's parameters (their defaults: the notebook's parameters cell)."""

    captioner_checkpoint: Annotated[str | None, EXISTING_FILE]
    caption_layers: Annotated[list[str], check("caption_layers")]
    caption_method: Annotated[str, check("method")]
    caption_examples: Annotated[int, COUNT]
    caption_n: Annotated[int, COUNT]
    caption_train: Annotated[dict | None, check("config_fields", "CaptionerConfig", (), ("out",), optional=True)]
    threshold_focus_gain: Annotated[float, THRESHOLD]
    threshold_sharper: Annotated[float, THRESHOLD]
    min_focus_gain: Annotated[float, MIN_EFFECT]
    min_mass_gain: Annotated[float, MIN_EFFECT]


STUDY = Study("06_captioning", "Fig. 14", (
    table("table_caption_quality", "supp. F: captioner quality (the paper reports none)"),
    figure("fig14_captioning", "Fig. 14: captioning explanations"),
    figure("fig14b_caption_words", "not in the paper: one map per word"),
    table("table_caption_mass", "not in the paper: mass on named vs unnamed objects"),
), Parameters)
