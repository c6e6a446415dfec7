"""Notebook 01: the virtual identity against the real convolution (Table 4) and its pointing game."""

from . import Study, figure, table

STUDY = Study("01_identity_trick", "Table 4", (
    table("table04_identity_trick", "Table 4: virtual 1×1 identity vs the real conv"),
    figure("fig_identity_trick", "not in the paper: each image's identity-trick correlation by layer"),
))
