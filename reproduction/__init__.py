"""The compute behind notebooks 01–06: cached, resumable, shardable experiment runners.

Every runner hashes (model, weights checksum, data, parameters, code version) into a cache key
under ``data/cache/``, writes results in atomically written, digest-checked parts, and can be
re-run at no cost. ``python -m reproduction --help`` runs them from a shell.
"""

from reproduction.cache import CACHE_ROOT, IncompleteRun, RunCache, code_version, parse_shard, weights_checksum
from reproduction.caption_runs import explain_captions, mass_check
from reproduction.correlation_runs import (
    identity_trick,
    meta_dynamics,
    published_pointing,
    randomization,
    randomization_variants,
    run_class_sensitivity,
    weights_for_layers,
)
from reproduction.pointing_runs import (
    DEFAULT_COMBINATIONS,
    INPUT_SMOOTHING,
    TABLE3_METHODS,
    WEIGHT_KINDS,
    PointingResults,
    run_pointing_game,
)
from reproduction.profiles import testbed_source, weight_sample
from reproduction.side_by_side import side_by_side_selectivity
from reproduction.sources import DetectionSource, Pair, TestbedSource, acceptance_region


def __getattr__(name: str):
    # Imported on first use, so that `python -m reproduction.params` runs a fresh module.
    if name == "check_parameters":
        from reproduction.params import check_parameters

        return check_parameters
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CACHE_ROOT", "DEFAULT_COMBINATIONS", "DetectionSource", "IncompleteRun", "Pair", "PointingResults", "RunCache",
    "INPUT_SMOOTHING", "TABLE3_METHODS", "TestbedSource", "WEIGHT_KINDS", "acceptance_region", "check_parameters",
    "run_class_sensitivity",
    "code_version", "explain_captions", "identity_trick", "mass_check", "meta_dynamics", "parse_shard",
    "run_pointing_game", "published_pointing", "randomization", "randomization_variants", "side_by_side_selectivity",
    "testbed_source", "weight_sample", "weights_checksum", "weights_for_layers",
]
