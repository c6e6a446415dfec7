"""Each notebook's parameters: declared once, routed from a profile's config, checked before any work.

A notebook's ``parameters`` cell (papermill's tag) is the single place its parameter names and
defaults live; :func:`declared` reads them from it. A profile's config (``configs/<profile>.yaml``)
holds shared keys at its top level, passed to every notebook that declares them, and one optional
section per notebook, named after its file (``02_layer_combination:``), for keys only that notebook
declares. For a notebook, later sources win: its defaults, the shared keys, its section, then
overrides (``--set key=value``; the Makefile sets ``device`` and ``figures_dir`` this way). A key no
notebook declares, a section key its notebook does not declare, or a section naming no notebook is
an error, so a misspelt key fails instead of being ignored::

    python -m revisal.experiments.params configs/mini.yaml notebooks/*.ipynb \\
        --set device=cpu --set figures_dir=figures -o build/params/mini

checks the keys and every notebook's values (:data:`SPEC`: models, methods, layers, classes, photos,
counts, datasets, data folders), reports every problem at once, and only then writes
``build/params/mini/<notebook>.yaml`` for papermill's ``-f`` (a file is rewritten only when its
content changes, so ``make`` re-runs only the notebooks whose parameters changed). In the notebook,
the first code cell gathers and checks the same values before anything is computed or written::

    params = experiments.check_parameters("02", globals())
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from ..models import LOADERS
from ..report import atomic_write, project_path
from . import checks

NOTEBOOK_DIR = "notebooks"
#: Models with per-epoch checkpoints to train (meta-saliency dynamics, notebook 04).
MINI_MODELS = ("mini_vgg", "mini_resnet")

Check = Callable[[Mapping[str, Any], str], Any]  # (the notebook's values, parameter name) → raise if bad


# --- the notebooks and what they declare ----------------------------------------------------------------
def notebooks() -> list[Path]:
    """Every numbered notebook, in order."""
    return sorted(project_path(NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))


def notebook_path(notebook: str | Path) -> Path:
    """A notebook from its number (``"02"``), its stem (``"02_layer_combination"``) or its path."""
    path = Path(notebook)
    if path.suffix == ".ipynb":
        for candidate in (project_path(path), project_path(NOTEBOOK_DIR) / path.name):
            if candidate.is_file():
                return candidate
        raise ValueError(f"notebook: {path} does not exist")
    found = [p for p in notebooks() if p.stem == str(notebook) or p.stem.split("_")[0] == str(notebook)]
    if len(found) != 1:
        raise ValueError(f"notebook: no notebook {notebook!r}; expected one of {[p.stem for p in notebooks()]}")
    return found[0]


def declared(notebook: str | Path) -> dict[str, Any]:
    """The notebook's parameters and their defaults, read from its ``parameters``-tagged cell."""
    path = notebook_path(notebook)
    return dict(_declared(str(path), path.stat().st_mtime_ns))


@lru_cache(maxsize=None)
def _declared(path: str, mtime: int) -> tuple[tuple[str, Any], ...]:
    cells = [c for c in json.loads(Path(path).read_text())["cells"]
             if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path}: expected one code cell tagged 'parameters', found {len(cells)}")
    out = []
    for node in ast.parse("".join(cells[0]["source"])).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if not isinstance(target, ast.Name) or node.value is None:
            raise ValueError(f"{path}: the parameters cell may only assign literals to names (line {node.lineno})")
        out.append((target.id, ast.literal_eval(node.value)))
    return tuple(out)


# --- configs → one notebook's values ----------------------------------------------------------------
def load_config(config: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    data = yaml.safe_load(project_path(config).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config: {config} must hold a mapping of parameters, got {type(data).__name__}")
    return data


def route(config: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
          among: Sequence[str | Path] | None = None) -> dict[str, dict[str, Any]]:
    """Every notebook's values from a config (see the module docstring), keyed by notebook stem.

    Raises:
        ValueError: listing every key that no notebook declares, every section key its notebook
            does not declare, and every section that names no notebook.
    """
    out, problems = _route(config, overrides, among)
    if problems:
        raise ValueError(f"config: {len(problems)} unknown key{'s' * (len(problems) > 1)}:\n"
                         + "\n".join(f"  - {p}" for p in problems))
    return out


def _route(config, overrides, among) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """:func:`route`'s values and its problems (unknown keys), without raising. Keys are checked
    against every notebook; values are returned for the notebooks ``among`` (default: all)."""
    config, overrides = load_config(config), dict(overrides or {})
    names = {p.stem: declared(p) for p in notebooks()}
    everyone = sorted({k for d in names.values() for k in d})
    problems = []
    shared = {k: v for k, v in config.items() if k not in names}
    for where, keys in (("config", shared), ("--set", overrides)):
        for key in keys:
            if key[:2].isdigit():
                problems.append(f"{key}: no notebook is named so{_near(key, names)} (sections are notebook stems)")
            elif key not in everyone:
                problems.append(f"{key}: no notebook declares this parameter ({where}){_near(key, everyone)}")
    sections = {}
    for stem, declares in names.items():
        section = config.get(stem) or {}
        if not isinstance(section, dict):
            problems.append(f"{stem}: expected a section of parameters, got {section!r}")
            section = {}
        problems += [f"{stem}.{key}: {stem} declares no such parameter{_near(key, declares)}"
                     for key in section if key not in declares]
        sections[stem] = section
    wanted = [notebook_path(n).stem for n in among] if among is not None else list(names)
    out = {stem: {k: v for source in (shared, sections[stem], overrides) for k, v in source.items()
                  if k in names[stem]} for stem in wanted}
    return out, problems


def _near(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
    return f"; did you mean {close}?" if close else ""


# --- values -----------------------------------------------------------------------------------------
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


def _class_of(key: str) -> Check:
    return _with_model(key, checks.class_of)


def _checkpoint_present(model: str, p: Mapping[str, Any], name: str) -> None:
    """The TorchRay checkpoint of a ``*_voc``/``*_coco`` model is on disk (``make data-models``)."""
    from ..models.caffe import CHECKPOINT_DIR, checkpoint_path

    arch, _, dataset = model.rpartition("_")
    if dataset in ("voc", "coco"):
        path = checkpoint_path(arch, dataset, p.get("checkpoint_dir") or CHECKPOINT_DIR)
        if not path.is_file():
            raise ValueError(f"{name}: {model}'s checkpoint {path} is missing (make data-models, or set checkpoint_dir)")


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
    from ..captioning.model import Captioner
    from ..captioning.train import TESTBED_VOCAB

    checks.modules_of(_captioner_skeleton(Captioner, TESTBED_VOCAB), p[name], name, allow_input=False)


@lru_cache(maxsize=1)
def _captioner_skeleton(cls, vocab):
    import torch

    with torch.device("meta"):
        return cls(vocab)


def _config_fields(config: str, exclude: Sequence[str] = (), require: Sequence[str] = ()) -> Check:
    def run(p, name):
        if config == "TrainConfig":
            from ..train import TrainConfig as cls
        else:
            from ..captioning.train import CaptionerConfig as cls
        value = checks.config_fields(p[name], cls, name, exclude)
        missing = [k for k in require if k not in value]
        if missing:
            raise ValueError(f"{name}: needs {missing}")
    return run


_COUNT = _value(checks.positive_int)
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
    # layers and blocks of the model they belong to
    "layers": _optional(_layers_of("model")),
    "identity_layers": _identity_layers,
    "sensitivity_layers": _optional(_layers_of("sensitivity_model")),
    "dynamics_layers": _layers_of("dynamics_model"),
    "qualitative_layer": _with_model("qualitative_model", checks.module_of),
    "randomization_layer": _with_model("randomization_model", checks.module_of),
    "randomization_map_layer": _with_model("qualitative_model", checks.module_of),
    "randomization_blocks": _optional(_layers_of("randomization_model", allow_input=False)),
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
    "verify_checkpoints": _value(checks.boolean), "imagenet_pretrained": _value(checks.boolean),
    "torchray_flags": _value(checks.boolean),
    "train": _optional(_config_fields("TrainConfig", exclude=("model",))),
    "caption_train": _optional(_config_fields("CaptionerConfig", require=("out",))),
}

#: Methods a notebook's verdict reads by name, so its ``methods`` must include them.
REQUIRED_METHODS = {
    "02": ("grad_cam", "linear_approx", "selective_normgrad"),
    "03": ("excitation_backprop", "grad_cam", "gradient_sum", "guided_backprop", "linear_approx"),
}


def problems(notebook: str | Path, values: Mapping[str, Any]) -> list[str]:
    """Every problem with a notebook's values (its declared names, all of them given)."""
    path = notebook_path(notebook)
    names = declared(path)
    found = checks.Problems()
    missing = [n for n in names if n not in values]
    if missing:
        found.messages.append(f"{missing}: not set (run the parameters cell first)")
    for name in names:
        if name not in values:
            continue
        if name not in SPEC:
            found.messages.append(f"{name}: revisal.experiments.params.SPEC has no check for it")
            continue
        found.check(SPEC[name], values, name)
    required = REQUIRED_METHODS.get(path.stem[:2], ())
    if "methods" in values and "methods" in names and required:
        found.check(checks.method_names, values["methods"], "methods", required)
    return list(dict.fromkeys(found.messages))


def check_parameters(notebook: str | Path, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters gathered from ``namespace`` (its ``globals()``), in the order its
    parameters cell declares them, once every value passed :data:`SPEC`.

    Raises:
        ValueError: listing every problem; raised before the notebook computes or writes anything.
    """
    path = notebook_path(notebook)
    values = {name: namespace[name] for name in declared(path) if name in namespace}
    found = checks.Problems()
    found.messages = problems(path, values)
    found.raise_all(f"{path.stem} parameters")
    return values


# --- command line ----------------------------------------------------------------------------------
def _assignment(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m revisal.experiments.params", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a profile's config, e.g. configs/mini.yaml")
    parser.add_argument("notebooks", nargs="*", help="notebooks to write parameters for (default: all)")
    parser.add_argument("-s", "--set", dest="overrides", action="append", type=_assignment, default=[],
                        metavar="KEY=VALUE", help="override a key (YAML value) in every notebook that declares it")
    parser.add_argument("-o", "--out", help="folder for <notebook>.yaml files (or one .yaml file for one notebook); "
                                            "without it, only check")
    args = parser.parse_args(argv)
    try:
        selected = [notebook_path(n) for n in args.notebooks] or notebooks()
        routed, found = _route(args.config, dict(args.overrides), selected)
        found += [f"{path.stem}: {m}" for path in selected
                  for m in problems(path, {**declared(path), **routed[path.stem]})]
        if found:
            raise ValueError(f"{args.config}: {len(found)} problem{'s' * (len(found) > 1)}, nothing was run:\n"
                             + "\n".join(f"  - {m}" for m in found))
    except (OSError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if args.out is None:
        print(f"{args.config}: parameters of {len(selected)} notebook(s) are valid")
        return
    out = project_path(args.out)
    single = out.suffix in (".yaml", ".yml")
    if single and len(selected) != 1:
        parser.error("--out: a .yaml file takes exactly one notebook; give a folder for several")
    for path in selected:
        target = out if single else out / f"{path.stem}.yaml"
        text = yaml.safe_dump(routed[path.stem], sort_keys=False, allow_unicode=True)
        if not target.is_file() or target.read_text() != text:  # unchanged files keep their time stamp
            atomic_write(target, text)


if __name__ == "__main__":
    main(sys.argv[1:])
