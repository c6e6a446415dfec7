"""The compute behind notebooks 01–06: cached, resumable, shardable experiment runners.

Every runner hashes (model, weights checksum, data, parameters, code version) into a cache key
under ``data/cache/``, writes results in atomically written, digest-checked parts, and can be
re-run at no cost. ``python -m reproduction --help`` runs them from a shell.
"""

#: Each public name and the module it lives in, imported on first use: ``python -m reproduction.params``
#: and the other command lines then import only what they need (the eager imports cost ≈ 4.5 s each).
_EXPORTS = {
    **dict.fromkeys(["CACHE_ROOT", "IncompleteRun", "RunCache", "code_version", "parse_shard", "weights_checksum"],
                    "cache"),
    **dict.fromkeys(["explain_captions", "mass_check"], "caption_runs"),
    **dict.fromkeys(["cascade_blocks", "identity_trick", "meta_dynamics", "published_pointing", "randomization", "randomization_variants",
                     "run_class_sensitivity", "weights_for_layers"], "correlation_runs"),
    **dict.fromkeys(["DEFAULT_COMBINATIONS", "INPUT_SMOOTHING", "TABLE3_METHODS", "WEIGHT_KINDS", "PointingResults",
                     "run_pointing_game"], "pointing_runs"),
    **dict.fromkeys(["testbed_source", "weight_sample"], "profiles"),
    "side_by_side_selectivity": "side_by_side",
    **dict.fromkeys(["DetectionSource", "Pair", "TestbedSource", "acceptance_region"], "sources"),
    "check_parameters": "params",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "CACHE_ROOT", "DEFAULT_COMBINATIONS", "DetectionSource", "IncompleteRun", "Pair", "PointingResults", "RunCache",
    "INPUT_SMOOTHING", "TABLE3_METHODS", "TestbedSource", "WEIGHT_KINDS", "acceptance_region", "cascade_blocks",
    "check_parameters",
    "run_class_sensitivity",
    "code_version", "explain_captions", "identity_trick", "mass_check", "meta_dynamics", "parse_shard",
    "run_pointing_game", "published_pointing", "randomization", "randomization_variants", "side_by_side_selectivity",
    "testbed_source", "weight_sample", "weights_checksum", "weights_for_layers",
]
