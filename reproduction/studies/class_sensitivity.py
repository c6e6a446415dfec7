"""Notebook 03: class sensitivity by depth (Figs. 5, 6)."""

from . import Study, figure, table

STUDY = Study("03_class_sensitivity", "Figs. 5, 6", (
    figure("fig06_class_sensitivity", "Fig. 6: class sensitivity by depth"),
    figure("fig05_class_sensitivity_examples", "Fig. 5: maps for the ground-truth, max and min class"),
    table("table_class_sensitivity_variants"),
    table("table_meta_epsilon", "not in the paper: how far one meta step of size ε moves the maps of Fig. 5"),
))
