"""What each notebook parameter must be: :data:`SPEC` maps a parameter's name (it means the same in
every notebook that declares it) to a check of its value, given all of that notebook's values (a
layer is checked against the model another parameter names). Checks read no weights and no data
beyond testing that folders and checkpoints exist; :mod:`.params` runs them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

from reproduction import checks
from reproduction.storage import project_path
from revisal.metrics.randomization import TARGET_RULES
from revisal.models import LOADERS

#: Models with per-epoch checkpoints to train (meta-saliency dynamics, notebook 04).
MINI_MODELS = ("mini_vgg", "mini_resnet")

Check = Callable[[Mapping[str, Any], str], Any]  # (the notebook's values, parameter name) → raise if bad


def _value(check: Callable, *args) -> Check:
    return lambda p, name: check(p[name], name, *args)


def _optional(check: Check) -> Check:
    return lambda p, name: None if p[name] is None else check(p, name)


def _single(check: Callable) -> Check:
    """One name, checked as a list of one by ``check``."""
    def run(p, name):
        if not isinstance(p[name], str):
            raise ValueError(f"{name}: expected one name, got {p[name]!r}")
        return check([p[name]], name)
    return run


def _with_model(key: str, check: Callable) -> Check:
    """A check that needs the zoo model named by parameter ``key`` (skipped when that is wrong: its
    own check reports it)."""
    return lambda p, name: check(p[key], p[name], name) if p.get(key) in LOADERS else None


def _layers_of(key: str, **kwargs) -> Check:
    return _with_model(key, lambda model, value, name: checks.modules_of(model, value, name, **kwargs))


def _randomization_blocks(p: Mapping[str, Any], name: str):
    """None (every parameter-holding module), "authors" (the authors' stages, for the models they have
    them for: :data:`reproduction.paper.AUTHORS_STAGES`), or module names of ``randomization_model``."""
    from reproduction.paper import AUTHORS_STAGES

    value, model = p[name], p.get("randomization_model")
    if value is None:
        return None
    if value == "authors":
        if model in LOADERS and model not in AUTHORS_STAGES:
            raise ValueError(f"{name}: the authors' stages exist for {sorted(AUTHORS_STAGES)}, not {model!r}; "
                             "give module names or None")
        return value
    return _layers_of("randomization_model", allow_input=False)(p, name)


def _class_of(key: str) -> Check:
    return _with_model(key, checks.class_of)


def _checkpoint_present(model: str, p: Mapping[str, Any], name: str) -> None:
    """The TorchRay checkpoint of a ``*_voc``/``*_coco`` model is on disk (``make data-models``)."""
    from reproduction.caffe_models import CHECKPOINT_DIR, checkpoint_path

    arch, _, dataset = model.rpartition("_")
    if dataset in ("voc", "coco"):
        path = checkpoint_path(arch, dataset, p.get("checkpoint_dir") or CHECKPOINT_DIR)
        if not path.is_file():
            raise ValueError(f"{name}: {model}'s checkpoint {path} is missing "
                             "(make data-models, or set checkpoint_dir)")


def _models_for(dataset_key: str, single: bool = False) -> Check:
    """Zoo models that predict the classes of the dataset named by ``dataset_key``, checkpoints present."""
    def run(p, name):
        models = [checks.model_name(p[name], name)] if single else checks.model_names(p[name], name)
        problems = checks.Problems()
        for model in models:
            if p.get(dataset_key) in checks.POINTING_DATASETS + checks.IMAGE_DATASETS:
                problems.check(checks.fits_dataset, model, p[dataset_key], name)
            problems.check(_checkpoint_present, model, p, name)
        if problems.messages:
            raise ValueError("; ".join(problems.messages))
    return run


def _dataset(options: Sequence[str], root_key: str, defaults: Mapping[str, str]) -> Check:
    """A dataset name; a dataset read from disk must be there (``root_key`` or its default folder)."""
    def run(p, name):
        dataset = checks.choice(p[name], name, options)
        if dataset in defaults:
            root = p.get(root_key) or defaults[dataset]
            if not isinstance(root, str) or not project_path(root).is_dir():
                raise ValueError(f"{name}: {dataset!r} needs its data in {root!r}, which is not a folder "
                                 f"(make data, or set {root_key})")
    return run


def _member_of(key: str) -> Check:
    def run(p, name):
        known = p.get(key) or []
        if p[name] not in known:
            hint = checks.suggest(p[name], known) if isinstance(p[name], str) else ""
            raise ValueError(f"{name}: {p[name]!r} is not one of {key} {known}{hint}")
    return run


def _subset_of(key: str) -> Check:
    def run(p, name):
        try:
            checks.method_names(p.get(key), key)
        except ValueError:
            return checks.method_names(p[name], name)  # `key` is wrong itself: its own check says so
        missing = [m for m in checks.method_names(p[name], name) if m not in (p.get(key) or [])]
        if missing:
            raise ValueError(f"{name}: {missing} are not in {key}, so they are not computed")
    return run


def _pointing_model_for(p, name):
    value = p[name]
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a mapping of identity model → pointing model, got {value!r}")
    extra = [k for k in value if k not in (p.get("identity_models") or [])]
    if extra:
        raise ValueError(f"{name}: {extra} are not in identity_models {p.get('identity_models')}")
    if value:
        _models_for("pointing_dataset")({**p, name: list(value.values())}, name)


def _identity_layers(p, name):
    value, models = p[name], p.get("identity_models") or []
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a mapping of model → conv layers, got {value!r}")
    missing = [m for m in models if m not in value]
    if missing:
        raise ValueError(f"{name}: no layers for {missing}")
    routes = p.get("pointing_model_for") or {}
    for model in models:
        for scored in dict.fromkeys([model, routes.get(model, model)]):
            if scored in LOADERS:  # the identity trick needs real convolutions in both models
                checks.modules_of(scored, value[model], f"{name}[{model!r}]", conv=True)


def _caption_layers(p, name):
    checks.modules_of(_captioner_skeleton(), p[name], name, allow_input=False)


@lru_cache(maxsize=1)
def _captioner_skeleton():
    import torch

    from reproduction.captioner.model import Captioner
    from reproduction.captioner.train import TESTBED_VOCAB

    with torch.device("meta"):
        return Captioner(TESTBED_VOCAB)


def _config_fields(config: str, exclude: Sequence[str] = (), require: Sequence[str] = ()) -> Check:
    def run(p, name):
        if config == "TrainConfig":
            from reproduction.train import TrainConfig as cls
        else:
            from reproduction.captioner.train import CaptionerConfig as cls
        value = checks.config_fields(p[name], cls, name, exclude)
        missing = [k for k in require if k not in value]
        if missing:
            raise ValueError(f"{name}: needs {missing}")
    return run


_COUNT = _value(checks.positive_int)


def _probability(p: Mapping[str, Any], name: str) -> float:
    """A number strictly between 0 and 1."""
    value = checks.finite_number(p[name], name)
    if not 0 < value < 1:
        raise ValueError(f"{name}: expected a probability in (0, 1), got {value!r}")
    return value


def _seeds(p: Mapping[str, Any], name: str) -> list[int]:
    """A non-empty list of distinct training seeds (ints ≥ 0)."""
    value = p[name]
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name}: expected a non-empty list of training seeds (ints ≥ 0), got {value!r}")
    seeds = [checks.integer(v, f"{name}[{k}]", 0) for k, v in enumerate(value)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name}: the seeds must differ, got {seeds}")
    return seeds


def _imagenet_model(p: Mapping[str, Any], name: str) -> str:
    """A zoo model with ImageNet's 1000 classes (the grid pointing game's photos are ImageNet classes)."""
    model = checks.model_name(p[name], name)
    if model not in ("efficientnet_lite0", "vgg16", "resnet50"):
        raise ValueError(f"{name}: expected an ImageNet model (efficientnet_lite0, vgg16, resnet50), got {model!r}")
    return model

#: The thresholds the notebooks' verdict tables compare their statistics with (any finite number).
THRESHOLDS = (
    "threshold_selectivity_gain", "threshold_selective_share",  # 00
    "threshold_correlation", "threshold_pointing_difference",  # 01
    "threshold_combination_gain", "threshold_gradcam_margin", "threshold_best_overall",  # 02
    "threshold_near_one", "threshold_anticorrelated", "threshold_closest",  # 03
    "threshold_meta_share", "threshold_val_gap", "threshold_stabilisation",  # 04
    "threshold_scrambled", "threshold_meta_delay",  # 05
    "threshold_focus_gain", "threshold_sharper",  # 06
)
#: The minimum effects of the comparative claims ("X beats Y" by at least this much; any number ≥ 0).
MIN_EFFECTS = (
    "min_selectivity_gain",  # 00
    "min_pointing_gain", "min_best_margin",  # 02
    "min_rho_difference",  # 03, 04, 05
    "min_focus_gain", "min_mass_gain",  # 06
)
_PATH = _optional(_value(checks.text))

#: How each parameter (by name, the same meaning in every notebook that declares it) is checked.
SPEC: dict[str, Check] = {
    "profile": _value(checks.text), "device": _value(checks.device), "seed": _value(checks.integer),
    "figures_dir": _value(checks.text), "cache_root": _PATH,
    # models: names, classes that fit their data, checkpoints on disk
    "model": _value(checks.model_name),
    "identity_models": _models_for("image_dataset"),
    "pointing_models": _models_for("pointing_dataset"),
    "pointing_model_for": _pointing_model_for,
    "fig3_model": _member_of("pointing_models"),
    "sensitivity_model": _models_for("image_dataset", single=True),
    "randomization_model": _models_for("image_dataset", single=True),
    "qualitative_model": _value(checks.model_name),
    "dynamics_model": _value(checks.choice, MINI_MODELS),
    # methods
    "methods": _value(checks.method_names),
    "fig3_methods": _subset_of("methods"),
    "dynamics_methods": _value(checks.method_names),
    "caption_method": _single(checks.method_names),
    # layer weightings (revisal.layer_weights): computed here (Fig. 2 reads probe_accuracy), the authors' published
    "weightings": _value(checks.weighting_names, False, ("probe_accuracy",)),
    "published_weightings": _value(checks.weighting_names, True),
    # layers and blocks of the model they belong to
    "layers": _optional(_layers_of("model")),
    "identity_layers": _identity_layers,
    "sensitivity_layers": _optional(_layers_of("sensitivity_model")),
    "dynamics_layers": _layers_of("dynamics_model"),
    "qualitative_layer": _with_model("qualitative_model", checks.module_of),
    "randomization_layer": _with_model("randomization_model", checks.module_of),
    "randomization_map_layer": _with_model("qualitative_model", checks.module_of),
    "randomization_blocks": _randomization_blocks,
    "randomization_target": _value(checks.choice, TARGET_RULES),
    "qualitative_blocks": _optional(_layers_of("qualitative_model", allow_input=False)),
    "caption_layers": _caption_layers,
    # classes and photos
    "target_class": _class_of("model"),
    "gt_class": _class_of("qualitative_model"),
    "photo": _single(checks.photo_names),
    "photos": _value(checks.photo_names),
    # data
    "pointing_dataset": _dataset(checks.POINTING_DATASETS, "data_root", {"voc07": "data/voc", "coco14": "data/coco"}),
    "image_dataset": _dataset(checks.IMAGE_DATASETS, "imagenet_root", {"imagenet": "data/imagenet/val"}),
    "data_root": _PATH, "imagenet_root": _PATH, "checkpoint_dir": _PATH,
    "captioner_checkpoint": _optional(_value(checks.existing_path, "file")),
    # counts, rates, switches
    "identity_n": _COUNT, "sensitivity_n": _COUNT, "dynamics_n": _COUNT, "randomization_n": _COUNT,
    "caption_n": _COUNT, "caption_examples": _COUNT, "weight_images": _COUNT, "batch_size": _COUNT,
    "image_size": _COUNT, "input_size": _COUNT, "pointing_n": _optional(_COUNT),
    "fig2_pair": _value(checks.integer, 0),
    "meta_lr": _value(checks.positive_number), "dynamics_lr": _value(checks.positive_number),
    "dynamics_seeds": _seeds,
    "verify_checkpoints": _value(checks.boolean), "imagenet_pretrained": _value(checks.boolean),
    "torchray_flags": _value(checks.boolean),
    "train": _optional(_config_fields("TrainConfig", exclude=("model",))),
    "caption_train": _optional(_config_fields("CaptionerConfig", require=("out",))),
    # verdict tables: the bootstrap, the two-object images of 00, and each claim's threshold
    "bootstrap_resamples": _COUNT,
    # 02's grid pointing game on real photos; 00's optional widgets
    "grid_model": _imagenet_model, "grid_mosaics": _COUNT, "grid_min_confidence": _probability,
    "grid_methods": _value(checks.method_names),
    "interactive": _value(checks.boolean),
    "selectivity_photos": _value(checks.photo_names),
    "contrast_class": _class_of("model"),
    "image_path": _optional(_value(checks.existing_path, "file")),
    **{name: _value(checks.finite_number) for name in THRESHOLDS},
    **{name: _value(checks.finite_number, 0.0) for name in MIN_EFFECTS},
    "min_fit_gap": _value(checks.finite_number, 0.0),  # 04: the epochs Fig. 10 reads
}

#: Methods a notebook's verdict reads by name, so its ``methods`` must include them.
REQUIRED_METHODS = {
    "02": ("grad_cam", "linear_approx", "selective_normgrad"),
    "03": ("contrastive_excitation_backprop", "excitation_backprop", "grad_cam", "gradient_sum", "guided_backprop",
           "linear_approx"),
}
