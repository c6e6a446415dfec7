"""Scores for saliency maps: pointing game, rank correlation, class sensitivity, randomisation."""

from revisal.metrics.correlation import class_sensitivity, class_sensitivity_variants, identity_trick_correlation, rank, spearman
from revisal.metrics.pointing import PointingGame, center_points, gaussian_smooth, is_hit, maxima, point, pointing_accuracy, pointing_game
from revisal.metrics.randomization import RandomizationResult, blocks_above, cascading_randomization, default_blocks, late_stage, randomize, staged_blocks

__all__ = [
    "PointingGame", "pointing_accuracy", "RandomizationResult", "blocks_above", "cascading_randomization", "late_stage",
    "center_points", "class_sensitivity", "class_sensitivity_variants", "default_blocks", "gaussian_smooth", "identity_trick_correlation", "is_hit",
    "maxima", "point", "pointing_game", "randomize", "rank", "spearman", "staged_blocks",
]
