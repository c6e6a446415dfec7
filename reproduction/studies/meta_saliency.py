"""Notebook 04: meta-saliency (Figs. 7, 10, 11, 12)."""

from . import Study, figure, table

STUDY = Study("04_meta_saliency", "Figs. 7, 10, 11, 12", (
    figure("fig07_meta_class_sensitivity", "Fig. 7: class sensitivity with meta-saliency"),
    table("table_meta_step_readings"),
    figure("fig10_meta_dynamics", "Fig. 10: meta vs plain maps over training"),
    figure("fig11_meta_stabilisation", "Fig. 11: stabilisation over training"),
    figure("fig12_meta_examples", "Fig. 12: negative, plain and positive meta-saliency"),
))
