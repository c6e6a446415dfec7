"""The checks a study's parameters name: :func:`resolve` turns a
:class:`reproduction.studies._parameters.Check` (a kind and its arguments, the annotation of a
``Parameters`` field) into a check of the value, given all of that notebook's values (a layer is
checked against the model another parameter names). Checks read no weights and no data beyond
testing that folders and checkpoints exist; :mod:`.params` runs them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

from reproduction import checks
from reproduction.storage import project_path
from reproduction.studies._parameters import Check as Declared
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


def _randomization_blocks(key: str = "randomization_model") -> Check:
    """A cascade's blocks for the model named by ``key``: None (every parameter-holding module),
    "authors" (the authors' stages, for the models they have them for:
    :data:`reproduction.paper.AUTHORS_STAGES`), or module names of that model."""
    from reproduction.paper import AUTHORS_STAGES

    def check(p: Mapping[str, Any], name: str):
        value, model = p[name], p.get(key)
        if value is None:
            return None
        if value == "authors":
            if model in LOADERS and model not in AUTHORS_STAGES:
                raise ValueError(f"{name}: the authors' stages exist for {sorted(AUTHORS_STAGES)}, not {model!r}; "
                                 "give module names or None")
            return value
        return _layers_of(key, allow_input=False)(p, name)

    return check


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

def _methods(*required: str) -> Check:
    return _value(checks.method_names, tuple(required)) if required else _value(checks.method_names)


def _dataset_of(kind: str) -> Check:
    if kind == "pointing":
        return _dataset(checks.POINTING_DATASETS, "data_root", {"voc07": "data/voc", "coco14": "data/coco"})
    return _dataset(checks.IMAGE_DATASETS, "imagenet_root", {"imagenet": "data/imagenet/val"})


#: Each kind of check a ``Parameters`` field may name, built from the :class:`Declared` arguments.
KINDS: dict[str, Callable[..., Check]] = {
    "text": lambda: _value(checks.text), "device": lambda: _value(checks.device),
    "integer": lambda *low: _value(checks.integer, *low), "boolean": lambda: _value(checks.boolean),
    "count": lambda: _value(checks.positive_int), "positive_number": lambda: _value(checks.positive_number),
    "threshold": lambda: _value(checks.finite_number), "min_effect": lambda: _value(checks.finite_number, 0.0),
    "probability": lambda: _probability, "seeds": lambda: _seeds,
    "existing_file": lambda: _value(checks.existing_path, "file"),
    # models: names, classes that fit their data, checkpoints on disk
    "model": lambda: _value(checks.model_name), "models_for": _models_for, "imagenet_model": lambda: _imagenet_model,
    "member_of": _member_of, "pointing_model_for": lambda: _pointing_model_for,
    "dynamics_model": lambda: _value(checks.choice, MINI_MODELS),
    # methods and layer weightings (revisal.layer_weights)
    "methods": _methods, "method": lambda: _single(checks.method_names), "subset_of": _subset_of,
    "weightings": lambda *args: _value(checks.weighting_names, *args),
    # layers and blocks of the model they belong to
    "layers_of": lambda key, allow_input: _layers_of(key, allow_input=allow_input),
    "module_of": lambda key: _with_model(key, checks.module_of),
    "identity_layers": lambda: _identity_layers, "caption_layers": lambda: _caption_layers,
    "randomization_blocks": lambda key="randomization_model": _randomization_blocks(key),
    "randomization_target": lambda: _value(checks.choice, TARGET_RULES),
    # classes, photos, data, nested training configs
    "class_of": _class_of, "photos": lambda: _value(checks.photo_names), "photo": lambda: _single(checks.photo_names),
    "dataset": _dataset_of,
    "config_fields": lambda config, exclude, require: _config_fields(config, exclude, require),
}


def resolve(declared: Declared) -> Check:
    """The check a field's annotation names (None passes it when it is ``optional``).

    Raises:
        TypeError: an unknown kind, or arguments that kind does not take (a defect of the study).
    """
    if declared.kind not in KINDS:
        raise TypeError(f"{declared}: no such kind of check; expected one of {sorted(KINDS)}")
    built = KINDS[declared.kind](*declared.args)
    return _optional(built) if declared.optional else built
