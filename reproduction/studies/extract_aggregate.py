"""Notebook 00: the framework as code (Tables 1–2), Fig. 15 (methods × depth) and Fig. 4 (Grad-CAM
across depth)."""

from . import Study, figure, table

STUDY = Study("00_extract_aggregate", "Tables 1–2, Fig. 15, Fig. 4", (
    table("table02_methods", "Table 2 (printed from the registry)"),
    figure("fig15_methods_by_depth", "Fig. 15: gradient, linear approx., NormGrad, selective NormGrad at 5 depths"),
    figure("fig04_gradcam_by_depth", "Fig. 4: Grad-CAM by depth, for each object's class"),
    figure("fig04b_selectivity_by_depth", "not in the paper: class selectivity by depth on two-photo images"),
))
