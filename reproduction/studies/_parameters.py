"""The vocabulary of a study's typed parameters: each field of a study's ``Parameters`` dataclass is
``Annotated[type, Check(...)]``, the check its value must pass.

A :class:`Check` only names a kind of check and its arguments (other parameters it reads, options);
:mod:`reproduction.parameter_checks` turns it into the check itself, so this module and the studies
stay stdlib-only (the Makefile reads them before anything is installed). Defaults live only in the
notebook's ``parameters`` cell; a ``Parameters`` class has none, and its fields are exactly the
names that cell declares (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated


@dataclass(frozen=True)
class Check:
    """A check of ``kind`` (a key of :data:`reproduction.parameter_checks.KINDS`) with its
    ``args``; ``optional``: None is also accepted."""

    kind: str
    args: tuple = ()
    optional: bool = False


def check(kind: str, *args, optional: bool = False) -> Check:
    return Check(kind, tuple(args), optional)


# The checks with no argument, by what they accept.
TEXT, DEVICE, INTEGER, BOOLEAN = check("text"), check("device"), check("integer"), check("boolean")
PATH = check("text", optional=True)  # a folder or file the notebook may create: data_root, cache_root…
COUNT = check("count")  # an int ≥ 1
RATE = check("positive_number")  # a learning rate, a step size
THRESHOLD = check("threshold")  # a verdict's threshold: any finite number
MIN_EFFECT = check("min_effect")  # a comparative claim's minimum effect: a finite number ≥ 0
MODEL = check("model")  # a zoo model's name
PHOTOS, PHOTO = check("photos"), check("photo")  # revisal.photos names (a list, or one)
EXISTING_FILE = check("existing_file", optional=True)


def layers_of(model_key: str, optional: bool = False, allow_input: bool = True) -> Check:
    """Module names of the zoo model that parameter ``model_key`` names (``input`` allowed unless
    ``allow_input`` is False)."""
    return check("layers_of", model_key, allow_input, optional=optional)


def module_of(model_key: str) -> Check:
    """One module name of the zoo model that parameter ``model_key`` names."""
    return check("module_of", model_key)


def class_of(model_key: str) -> Check:
    """A class name (or index) of the zoo model that parameter ``model_key`` names."""
    return check("class_of", model_key)


def models_for(dataset_key: str, single: bool = False) -> Check:
    """Zoo models (one, if ``single``) predicting the classes of the dataset parameter
    ``dataset_key`` names, their checkpoints on disk."""
    return check("models_for", dataset_key, single)


def method_names(*required: str) -> Check:
    """Names of revisal.METHODS, including ``required`` (the methods the notebook's verdicts read)."""
    return check("methods", *required)


@dataclass(frozen=True)
class Common:
    """The parameters every notebook declares."""

    profile: Annotated[str, TEXT]  # the profile the values came from (mini, paper)
    device: Annotated[str, DEVICE]
    seed: Annotated[int, INTEGER]
    figures_dir: Annotated[str, TEXT]
    bootstrap_resamples: Annotated[int, COUNT]  # the verdicts' bootstrap


@dataclass(frozen=True)
class ImageNetInput(Common):
    """Where ImageNet-class images come from and how a model sees them."""

    imagenet_root: Annotated[str | None, PATH]  # ImageNet val (paper profile), default data/imagenet/val
    imagenet_pretrained: Annotated[bool, BOOLEAN]  # a zoo model with ImageNet weights where it has them
    input_size: Annotated[int, COUNT]  # the side of the paper-profile models' inputs


@dataclass(frozen=True)
class Sensitivity(ImageNetInput):
    """Class sensitivity (Figs. 6, 7; notebooks 03 and 04) and its qualitative maps."""

    cache_root: Annotated[str | None, PATH]
    sensitivity_model: Annotated[str, models_for("image_dataset", single=True)]
    image_dataset: Annotated[str, check("dataset", "image")]
    sensitivity_n: Annotated[int, COUNT]
    sensitivity_layers: Annotated[list[str] | None, layers_of("sensitivity_model", optional=True)]
    meta_lr: Annotated[float, RATE]
    qualitative_model: Annotated[str, MODEL]
    qualitative_layer: Annotated[str, module_of("qualitative_model")]
    image_size: Annotated[int, COUNT]
    batch_size: Annotated[int, COUNT]
    min_rho_difference: Annotated[float, MIN_EFFECT]  # Δρ a comparison must clear
