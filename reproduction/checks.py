"""Checks of experiment parameters that read no data and compute nothing, shared by the notebooks'
parameter check (:mod:`.params`) and the command line (``python -m reproduction``).

Each check returns the value it accepted (normalised: lists for sequences, ints for counts) or
raises a ValueError whose message starts with the parameter's name. Layer and class names are
checked against :func:`revisal.models.skeleton`: the model built on the meta device, without
weights, so the check costs milliseconds and needs no checkpoint or dataset on disk.
:class:`Problems` gathers the messages of many checks so a caller can report them all at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from reproduction.storage import project_path
from reproduction.train import OBJECTIVES
from revisal.models import LOADERS, skeleton
from revisal.validation import check_int

#: Datasets a pointing source or an image set can come from, and the classes each one labels.
POINTING_DATASETS = ("testbed", "voc07", "coco14")
IMAGE_DATASETS = ("testbed", "imagenet")


class Problems:
    """Run checks, keep every failure's message; :meth:`raise_all` raises one ValueError listing them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """``fn(*args, **kwargs)``, or ``None`` after recording its TypeError/ValueError."""
        try:
            return fn(*args, **kwargs)
        except (TypeError, ValueError) as e:
            self.messages.append(str(e))
            return None

    def raise_all(self, what: str) -> None:
        if self.messages:
            listed = "\n".join(f"  - {m}" for m in self.messages)
            raise ValueError(f"{what}: {len(self.messages)} problem{'s' * (len(self.messages) > 1)}, "
                             f"nothing was computed or written:\n{listed}")


def suggest(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=3, cutoff=0.5)
    return f"; did you mean {close}?" if close else ""


def _names(value: Any, name: str, *, allow_empty: bool = False) -> list[str]:
    """A list of strings from a list/tuple of strings. A bare string is refused: code that loops
    over the list would loop over its characters."""
    if isinstance(value, str):
        raise ValueError(f"{name}: expected a list of names, got the string {value!r} (write [{value!r}])")
    items = value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ValueError(f"{name}: expected a list of names, got {value!r}")
    if not items and not allow_empty:
        raise ValueError(f"{name}: empty; give at least one name")
    duplicates = sorted({v for v in items if items.count(v) > 1})
    if duplicates:
        raise ValueError(f"{name}: {duplicates} listed more than once")
    return list(items)


# --- scalars -----------------------------------------------------------------------------------------
integer = check_int  # one int check, the library's


def positive_int(value: Any, name: str) -> int:
    return check_int(value, name, minimum=1)


def _yaml_hint(value: Any) -> str:
    """Why a number may have come as a string: YAML 1.1 reads an exponent as a float only with a
    dot and a signed exponent (``1.0e-3``); ``1e-3`` or ``1.0e3`` is text."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
        return " (text to YAML: write an exponent with a dot and a sign, e.g. 1.0e-3)"
    return ""


def positive_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}{_yaml_hint(value)}")
    return float(value)


def finite_number(value: Any, name: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}{_yaml_hint(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected a finite number ≥ {minimum:g}, got {value!r}")
    return float(value)


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def choice(value: Any, name: str, options: Sequence[str]) -> str:
    if value not in options:
        hint = suggest(value, options) if isinstance(value, str) else ""
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}{hint}")
    return value


def device(value: Any, name: str = "device", allow_auto: bool = False) -> str:
    """A torch device string; CUDA only when this machine has it."""
    if allow_auto and value == "auto":
        return value
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}: expected a torch device such as 'cpu' or 'cuda', got {value!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}: {value!r}, but this machine has no CUDA device (torch.cuda.is_available() is False)")
    return str(value)


def existing_path(value: Any, name: str, kind: str = "dir") -> str:
    """A path (relative to the repository root) that exists as a folder (``kind="dir"``) or file."""
    path = project_path(text(value, name))
    if not (path.is_dir() if kind == "dir" else path.is_file()):
        raise ValueError(f"{name}: {path} is not an existing {'folder' if kind == 'dir' else 'file'}")
    return value


def shard(value: Any, name: str = "shard") -> tuple[int, int]:
    from reproduction.cache import parse_shard

    try:
        return parse_shard(value)
    except ValueError as e:
        raise ValueError(str(e).replace("shard:", f"{name}:", 1)) from None


#: How each field of :class:`reproduction.train.TrainConfig` (and of ``CaptionerConfig``, its subclass)
#: is checked: its type and range, as training would need them.
TRAIN_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "model": text, "epochs": positive_int, "batch_size": positive_int, "lr": positive_number,
    "weight_decay": lambda v, name: finite_number(v, name, minimum=0), "train_size": positive_int,
    "val_size": positive_int, "test_size": positive_int, "image_size": positive_int,
    "seed": lambda v, name: integer(v, name, minimum=0), "threads": positive_int, "augment": boolean,
    "objective": lambda v, name: choice(v, name, OBJECTIVES), "out": text,
}


def config_fields(value: Any, config: type, name: str, exclude: Sequence[str] = ()) -> dict:
    """A mapping of a training config's field names (those not in ``exclude``) to values, each
    checked by :data:`TRAIN_FIELDS` (message ``name.field: ...``), every problem reported at once;
    ``batch_size`` (given or default) must not exceed ``train_size``: no full batch to train on."""
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a mapping of {config.__name__} fields, got {value!r}")
    fields = [f.name for f in dataclasses.fields(config) if f.name not in exclude]
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise ValueError(f"{name}: unknown {config.__name__} field(s) {unknown}"
                         f"{suggest(str(unknown[0]), fields)} Known: {fields}")
    problems = Problems()
    for key, field_value in value.items():
        problems.check(TRAIN_FIELDS[key], field_value, f"{name}.{key}")
    if not problems.messages:
        merged = {**{f.name: f.default for f in dataclasses.fields(config)}, **value}
        if merged["batch_size"] > merged["train_size"]:
            problems.messages.append(f"{name}: batch_size {merged['batch_size']} > train_size {merged['train_size']}: "
                                     "not one full batch to train on")
    if problems.messages:
        raise ValueError("; ".join(problems.messages))
    return value


# --- models, methods, layers, classes, photos -----------------------------------------------------------
def model_name(value: Any, name: str = "model") -> str:
    if not isinstance(value, str) or value not in LOADERS:
        hint = suggest(value, LOADERS) if isinstance(value, str) else ""
        raise ValueError(f"{name}: unknown model {value!r}{hint} Known: {sorted(LOADERS)}")
    return value


def model_names(value: Any, name: str) -> list[str]:
    names = _names(value, name)
    bad = [v for v in names if v not in LOADERS]
    if bad:
        raise ValueError(f"{name}: unknown model(s) {bad}{suggest(bad[0], LOADERS)} Known: {sorted(LOADERS)}")
    return names


def method_names(value: Any, name: str = "methods", required: Sequence[str] = ()) -> list[str]:
    from revisal.methods import METHODS

    names = _names(value, name)
    bad = [v for v in names if v not in METHODS]
    if bad:
        raise ValueError(f"{name}: unknown method(s) {bad}{suggest(bad[0], METHODS)} Known: {sorted(METHODS)}")
    missing = [m for m in required if m not in names]
    if missing:
        raise ValueError(f"{name}: must include {missing} (the notebook's verdict uses them)")
    return names


def weighting_names(value: Any, name: str, published: bool, required: Sequence[str] = ()) -> list[str]:
    """Names of layer weightings (:data:`reproduction.published_weights.ALL_WEIGHTINGS`): the authors'
    published ones when ``published``, else those computed here; ``required`` must be among them."""
    from reproduction.published_weights import ALL_WEIGHTINGS
    from revisal.layer_weights import check_weighting

    names = _names(value, name, allow_empty=published)
    for v in names:
        check_weighting(v, name, ALL_WEIGHTINGS)
    kinds = [n for n, w in ALL_WEIGHTINGS.items() if (w.source == "published") == published]
    bad = [v for v in names if v not in kinds]
    if bad:
        raise ValueError(f"{name}: {bad} are {'computed here' if published else 'published by the authors'}; "
                         f"this list takes {kinds}")
    missing = [m for m in required if m not in names]
    if missing:
        raise ValueError(f"{name}: must include {missing} (the notebook's figures read them)")
    return names


def modules_of(model: str | nn.Module, value: Any, name: str, *, conv: bool = False,
               allow_input: bool = True) -> list[str]:
    """Module names of a zoo model (by name, checked on its skeleton) or of a given module; ``""`` is
    the network input (when ``allow_input``); ``conv`` requires ``nn.Conv2d`` modules."""
    net = skeleton(model).model if isinstance(model, str) else model
    label = model if isinstance(model, str) else type(model).__name__
    names = _names(value, name)
    modules = dict(net.named_modules())
    problems = []
    for layer in names:
        if layer == "" and allow_input and not conv:
            continue
        if layer not in modules or layer == "":
            problems.append(f"{layer!r} is not a module of {label}{suggest(layer, [k for k in modules if k])}")
        elif conv and not isinstance(modules[layer], nn.Conv2d):
            problems.append(f"{layer!r} is a {type(modules[layer]).__name__} in {label}, not a Conv2d")
    if problems:
        raise ValueError(f"{name}: " + "; ".join(problems))
    return names


def methods_fit_layers(model: str | nn.Module, methods: Sequence[str], layers: Sequence[str],
                       name: str = "methods") -> list[str]:
    """Every method of ``methods`` (checked names) runs at every layer of ``layers`` (checked module
    names) of a zoo model (checked on its skeleton) or a given module: the library's own rule,
    :func:`revisal.validation.check_methods_at_layers` (e.g. ``normgrad_conv`` only at a Conv2d)."""
    from revisal.methods import resolve_methods
    from revisal.validation import check_methods_at_layers

    net = skeleton(model).model if isinstance(model, str) else model
    check_methods_at_layers(net, resolve_methods(list(methods)), layers, name)
    return list(methods)


def module_of(model: str | nn.Module, value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected one module name, got {value!r}")
    return modules_of(model, [value], name)[0]


def class_of(model: str, value: Any, name: str) -> str:
    classes = skeleton(model).classes
    if value not in classes:
        hint = suggest(value, classes) if isinstance(value, str) else ""
        raise ValueError(f"{name}: {model} has no class {value!r}{hint}")
    return value


def photo_names(value: Any, name: str) -> list[str]:
    from revisal.data.photos import PHOTOS

    names = _names(value, name)
    bad = [v for v in names if v not in PHOTOS]
    if bad:
        raise ValueError(f"{name}: unknown photo(s) {bad}{suggest(bad[0], PHOTOS)} Known: {sorted(PHOTOS)}")
    return names


def dataset_classes(dataset: str) -> list[str]:
    """The classes a dataset labels (what a model must predict to be scored on it)."""
    from reproduction.datasets.labels import COCO_CLASSES, VOC_CLASSES
    from reproduction.render import CLASSES
    from revisal.data.labels import IMAGENET_CLASSES

    return list({"testbed": CLASSES, "voc07": VOC_CLASSES, "coco14": COCO_CLASSES, "imagenet": IMAGENET_CLASSES}[dataset])


def fits_dataset(model: str, dataset: str, name: str) -> str:
    """``model`` predicts exactly ``dataset``'s classes (a testbed model cannot be scored on VOC07)."""
    if skeleton(model).classes != dataset_classes(dataset):
        fitting = sorted(m for m in LOADERS if skeleton(m).classes == dataset_classes(dataset))
        raise ValueError(f"{name}: {model} does not predict the classes of {dataset!r}; models that do: {fitting}")
    return model
