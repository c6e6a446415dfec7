"""Notebook 06: explaining a captioner's words (Fig. 14, supp. F)."""

from . import Study, figure, table

STUDY = Study("06_captioning", "Fig. 14", (
    table("table_caption_quality", "supp. F: captioner quality (the paper reports none)"),
    figure("fig14_captioning", "Fig. 14: captioning explanations"),
    figure("fig14b_caption_words", "not in the paper: one map per word"),
    table("table_caption_mass", "not in the paper: mass on named vs unnamed objects"),
))
