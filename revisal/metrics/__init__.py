"""Scores for saliency maps (pointing game, rank correlation, class sensitivity, randomisation)
and for the models that produce them (average precision, caption BLEU)."""

from .classification import average_precision, mean_average_precision
from .correlation import class_sensitivity, identity_trick_correlation, rank, spearman
from .pointing import PointingGame, center_points, gaussian_smooth, is_hit, maxima, point, pointing_game
from .randomization import (AUTHORS_STAGES, RandomizationResult, blocks_above, cascading_randomization, default_blocks,
                            randomize, staged_blocks)
from .text import caption_scores, corpus_bleu

__all__ = [
    "AUTHORS_STAGES", "PointingGame", "RandomizationResult", "average_precision", "blocks_above", "caption_scores", "cascading_randomization",
    "center_points", "corpus_bleu",
    "class_sensitivity", "default_blocks", "gaussian_smooth", "identity_trick_correlation", "is_hit",
    "maxima", "mean_average_precision", "point", "pointing_game", "randomize", "rank", "spearman", "staged_blocks",
]
