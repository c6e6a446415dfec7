"""Scores for saliency maps: pointing game, rank correlation, class sensitivity, randomisation."""

from revisal.metrics.correlation import class_sensitivity, identity_trick_correlation, rank, spearman
from revisal.metrics.pointing import PointingGame, center_points, gaussian_smooth, is_hit, maxima, point, pointing_accuracy, pointing_game
from revisal.metrics.randomization import RandomizationResult, blocks_above, cascading_randomization, default_blocks, randomize, staged_blocks

__all__ = [
    "PointingGame", "pointing_accuracy", "RandomizationResult", "blocks_above", "cascading_randomization",
    "center_points", "class_sensitivity", "default_blocks", "gaussian_smooth", "identity_trick_correlation", "is_hit",
    "maxima", "point", "pointing_game", "randomize", "rank", "spearman", "staged_blocks",
]
