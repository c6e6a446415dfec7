"""Notebook 05: the cascading weight-randomisation sanity check (Figs. 8, 13)."""

from . import Study, figure, table

STUDY = Study("05_weight_randomization", "Figs. 8, 13", (
    figure("fig08b_randomization_curves", "Fig. 8 as curves (Adebayo et al.'s presentation)"),
    figure("fig08_randomization", "Fig. 8: cascading randomisation"),
    table("table_randomization_variants"),
    figure("fig13_randomization_examples_1"),
    figure("fig13_randomization_examples_*", "Fig. 13: more randomisation examples"),
))
