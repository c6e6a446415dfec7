"""Notebook 02: the pointing game by layer and combined across layers (Tables 3, 5, 6; Figs. 2, 3, 9)."""

from . import Study, figure, table

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
))
