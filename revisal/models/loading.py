"""The one way to load a model: :func:`load` takes a spec and returns a :class:`ZooModel` (the
network in eval mode with its preprocessing, class names and default layers).

A spec is one of

* a zoo name (``efficientnet_lite0``, ``vgg16``, ``resnet50`` and what installed packages add, see
  :data:`revisal.models.LOADERS`);
* ``torchvision:<name>`` (any ``torchvision.models.get_model`` name) or ``timm:<name>``;
* ``module.path:callable`` — your own code: ``callable()`` returns an ``nn.Module`` (or a
  :class:`revisal.models.ZooModel`).

``weights=FILE`` loads a state dict from disk (``torch.load(..., weights_only=True)``; a checkpoint
dict with a ``"state_dict"`` or ``"model"`` entry works too). Published weights that are not on disk
are never fetched unless ``download=True``: the error says where they would come from.

Class names come from where the weights come from: torchvision's weight metadata, timm's pretrained
config (ImageNet-1k names for its ImageNet-1k heads), the model's own ``classes`` attribute or
``classes=``; otherwise they are numbered ("class 0", …), never guessed from the output width.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from revisal.data.labels import IMAGENET_CLASSES
from revisal.data.transforms import CAFFE_NORMALIZE, IMAGENET_NORMALIZE, TF_LITE_NORMALIZE, Normalize
from revisal.models.zoo import LOADERS, ZooModel
from revisal.validation import check_int

#: Named preprocessings for models outside the zoo (pixels in [0, 1] → network input).
NORMALIZATIONS: dict[str, Normalize | None] = {
    "imagenet": IMAGENET_NORMALIZE,
    "tf_lite": TF_LITE_NORMALIZE,
    "caffe": CAFFE_NORMALIZE,
    "none": None,
}

#: The zoo models whose published weights come from the internet (the others ship or are trained here).
_TORCHVISION_ZOO = {"vgg16": "VGG16_Weights.IMAGENET1K_V1", "resnet50": "ResNet50_Weights.IMAGENET1K_V1"}


class WeightsNotFoundError(FileNotFoundError):
    """Published weights are not on disk and ``download`` was not asked for."""


def _identity(x: Tensor) -> Tensor:
    return x


def load(spec: str, *, weights: str | Path | None = None, download: bool = False,
         normalize: str | None = None, input_size: int | None = None,
         classes: Sequence[str] | str | Path | None = None, random_weights: bool = False, **options) -> ZooModel:
    """The model named by ``spec`` (see the module docstring), in eval mode, wrapped with its
    preprocessing, class names and default layers.

    >>> zoo = load("efficientnet_lite0")                  # offline ImageNet weights  # doctest: +SKIP
    >>> zoo = load("timm:resnet18", weights="r18.pth")    # your own weights, nothing fetched  # doctest: +SKIP

    Args:
        options: passed to a zoo model's loader (e.g. ``pretrained=False`` for random weights, the
            reproduction's ``checkpoint=`` / ``path=``); zoo names only.
        weights: a state-dict file to load (replaces any published weights; nothing is fetched).
        download: allow fetching published weights that are not on disk.
        random_weights: a ``torchvision:``/``timm:`` architecture with random weights (nothing read or
            fetched): enough to list its layers and their layouts.
        normalize: a key of :data:`NORMALIZATIONS`; default: the zoo preset, timm's config, or
            ImageNet mean/std.
        input_size: the square side images are cropped to (default: the preset's, else 224).
        classes: class names in output order (a list or a text file, one per line); default: the
            model's ``classes`` attribute, ImageNet's 1000 names for a 1000-way output, else "class i".

    Raises:
        ValueError / TypeError naming the argument; :class:`WeightsNotFoundError` (how to get them).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"model: expected a zoo name, 'torchvision:<name>', 'timm:<name>' or "
                        f"'module.path:callable', got {spec!r}")
    weights_path = _check_weights_file(weights)
    if normalize is not None and normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize: expected one of {sorted(NORMALIZATIONS)}, got {normalize!r}")
    if input_size is not None:
        check_int(input_size, "input_size", minimum=8)
    kind, _, rest = spec.partition(":")
    if options and rest:
        raise TypeError(f"{sorted(options)}: options are for zoo models, not {spec!r}")
    if not rest:
        zoo = _zoo(spec, weights_path, download, options)
    elif kind == "torchvision":
        zoo = _torchvision(rest, weights_path, download, random_weights)
    elif kind == "timm":
        zoo = _timm(rest, weights_path, download, random_weights)
    else:
        zoo = _user(kind, rest, weights_path)
    if normalize is not None:
        zoo.normalize = NORMALIZATIONS[normalize] or _identity
    if input_size is not None:
        zoo.input_size = input_size
    # a zoo model comes with its class list; any other model is run once to count its outputs
    n_out = len(zoo.classes) if not rest else _forward_outputs(zoo)
    if classes is not None:
        zoo.classes = _check_classes(classes)
        if len(zoo.classes) != n_out:
            raise ValueError(f"classes: {len(zoo.classes)} class names for a model with {n_out} outputs")
    elif len(zoo.classes) != n_out:
        zoo.classes = _numbered(n_out)
    zoo.model.classes = list(zoo.classes)
    return zoo


def _forward_outputs(zoo: ZooModel) -> int:
    """The number of classes the model outputs for one grey image of its input size ([1, K] logits
    expected); the model is left as found."""
    from revisal.state import preserved_state

    param = next(zoo.model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    pixels = torch.full((1, 3, zoo.input_size, zoo.input_size), 0.5, dtype=dtype, device=device)
    with preserved_state(zoo.model), torch.no_grad():
        try:
            out = zoo.model.eval()(zoo.normalize(pixels))
        except Exception as error:
            raise ValueError(f"model: {zoo.name} fails on a [1, 3, {zoo.input_size}, {zoo.input_size}] image "
                             f"({type(error).__name__}: {error}); check --size and --normalize") from None
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 1:
        raise ValueError(f"model: expected class scores [N, K] from {zoo.name}, got "
                         f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
    return int(out.shape[1])


def _check_weights_file(weights: str | Path | None) -> Path | None:
    if weights is None:
        return None
    if not isinstance(weights, (str, Path)):
        raise TypeError(f"weights: expected a path to a state-dict file, got {type(weights).__name__}")
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights: {path} is not a file (expected a state dict saved with torch.save)")
    return path


def load_state(model: nn.Module, path: Path) -> None:
    """Load the state dict in ``path`` into ``model`` (strict: every key must match)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"weights: {path} is not a state dict torch.load can read ({error})") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"weights: {path} does not hold a state dict (a mapping of names to tensors)")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    missing, unexpected = [], []
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"weights: {path} does not fit this model: missing {missing[:5]}"
                         f"{'…' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{'…' if len(unexpected) > 5 else ''}")
    shapes = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own if state[k].shape != own[k].shape]
    if shapes:
        raise ValueError(f"weights: {path}: {shapes[0][0]} has shape {shapes[0][1]}, the model expects {shapes[0][2]}")
    model.load_state_dict(state)


def _zoo(name: str, weights: Path | None, download: bool, options: dict) -> ZooModel:
    if name not in LOADERS:
        close = difflib.get_close_matches(name, list(LOADERS), n=3)
        raise ValueError(f"model: unknown zoo model {name!r}; did you mean {close}? Zoo: {sorted(LOADERS)}; "
                         "or use 'torchvision:<name>', 'timm:<name>', 'module.path:callable'")
    if weights is not None:
        zoo = LOADERS[name](**{**options, "pretrained": False})
        load_state(zoo.model, weights)
        zoo.model.eval()
        return zoo
    if name in _TORCHVISION_ZOO and not download and options.get("pretrained", True):
        _require_torchvision_cached(name, _TORCHVISION_ZOO[name])
    return LOADERS[name](**options)


def _require_torchvision_cached(name: str, weights_enum: str) -> None:
    import torchvision

    enum_name, _, member = weights_enum.partition(".")
    entry = getattr(getattr(torchvision.models, enum_name), member)
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(entry.url).name
    if not file.is_file():
        raise WeightsNotFoundError(
            f"model: the weights of {name!r} ({weights_enum}) are not on disk (expected {file}). "
            f"Pass --download to fetch them from {entry.url} into torch's hub cache, "
            f"or --weights FILE for a state dict you already have.")


def _torchvision(name: str, weights: Path | None, download: bool, random_weights: bool = False) -> ZooModel:
    import torchvision

    available = torchvision.models.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        raise ValueError(f"model: torchvision has no model {name!r}; did you mean {close}?")
    published = None
    if weights is not None or random_weights:
        model = torchvision.models.get_model(name, weights=None)
        if weights is not None:
            load_state(model, weights)
        notes = f"torchvision {name}, " + (f"weights from {weights}" if weights else "random weights")
    else:
        default = torchvision.models.get_model_weights(name).DEFAULT
        if not download:
            file = Path(torch.hub.get_dir()) / "checkpoints" / Path(default.url).name
            if not file.is_file():
                raise WeightsNotFoundError(
                    f"model: torchvision:{name} needs weights, and {default} is not on disk (expected {file}). "
                    f"Pass --download to fetch it from {default.url}, or --weights FILE for a state dict.")
        model = torchvision.models.get_model(name, weights=default)
        notes = f"torchvision {default}"
        published = default
    # the weights' own metadata: their class names and preprocessing (a file of weights has none)
    meta = published or torchvision.models.get_model_weights(name).DEFAULT
    preprocess = meta.transforms()
    n_out = _output_size(model)
    return ZooModel(name=f"torchvision:{name}", model=model.eval(),
                    normalize=Normalize(tuple(preprocess.mean), tuple(preprocess.std)),
                    classes=list(published.meta["categories"]) if published is not None else _numbered(n_out or 0),
                    layers=_default_layers(model), input_size=int(preprocess.crop_size[0]), notes=notes)


def _timm(name: str, weights: Path | None, download: bool, random_weights: bool = False) -> ZooModel:
    try:
        import timm
    except ImportError:  # pragma: no cover - a declared dependency
        raise ImportError("model: timm models need `pip install timm`") from None
    if name not in timm.list_models(pretrained=False) and name not in timm.list_models(pretrained=True):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise ValueError(f"model: timm has no model {name!r}; did you mean {close}?")
    overlay = None
    weights_needed = weights is None and not random_weights
    if weights_needed and not download:
        cfg = timm.models.get_pretrained_cfg(name)
        repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        cached = None
        if repo:
            from huggingface_hub import try_to_load_from_cache

            for fname in ("model.safetensors", "pytorch_model.bin"):
                hit = try_to_load_from_cache(repo.split("@")[0], fname)
                if isinstance(hit, str):
                    cached = hit
                    break
        if cached is None:
            raise WeightsNotFoundError(
                f"model: timm:{name} needs weights, and they are not in the Hugging Face cache"
                f"{f' (repo {repo})' if repo else ''}. Pass --download to fetch them, or --weights FILE.")
        overlay = {"file": cached}
    model = timm.create_model(name, pretrained=weights_needed,
                              **({"pretrained_cfg_overlay": overlay} if overlay else {}))
    if weights is not None:
        load_state(model, weights)
    data = timm.data.resolve_data_config(model=model)  # timm's own preprocessing for these weights
    normalize = Normalize(tuple(data["mean"]), tuple(data["std"]))
    size = int(data["input_size"][-1])
    return ZooModel(name=f"timm:{name}", model=model.eval(), normalize=normalize,
                    classes=_timm_classes(model) if weights_needed else _numbered(_output_size(model) or 0),
                    layers=_default_layers(model), input_size=size,
                    notes=f"timm {name}" + (f", weights from {weights}" if weights else ""))


def _user(module_name: str, attr: str, weights: Path | None) -> ZooModel:
    spec = f"{module_name}:{attr}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"model: cannot import {module_name!r} for {spec!r} ({error}); expected a zoo name, "
                         f"'torchvision:<name>', 'timm:<name>' or an importable 'module.path:callable' "
                         f"(is its folder on PYTHONPATH?)") from None
    factory: object = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ValueError(f"model: module {module_name!r} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise TypeError(f"model: {spec} is not callable")
    built = factory() if not isinstance(factory, nn.Module) else factory
    if isinstance(built, ZooModel):
        zoo = built
    elif isinstance(built, nn.Module):
        names = getattr(built, "classes", None)
        zoo = ZooModel(name=spec, model=built, normalize=IMAGENET_NORMALIZE,
                       classes=list(names) if names is not None else _numbered(_output_size(built) or 0),
                       layers=_default_layers(built), notes=f"user model {spec}")
    else:
        raise TypeError(f"model: {spec}() returned {type(built).__name__}, expected an nn.Module")
    if weights is not None:
        load_state(zoo.model, weights)
    zoo.model.eval()
    return zoo


def _timm_classes(model: nn.Module) -> list[str]:
    """The class names of a timm model's pretrained head (ImageNet-1k's, or the subset timm names
    in its config); numbered when timm does not say."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model)
    if subset == "imagenet-1k":
        return list(IMAGENET_CLASSES)
    if subset:
        return [d.split(",")[0] for d in ImageNetInfo(subset).label_descriptions()]
    return _numbered(_output_size(model) or 0)


def _numbered(n: int) -> list[str]:
    return [f"class {i}" for i in range(n)]


def _check_classes(classes: Sequence[str] | str | Path) -> list[str]:
    if isinstance(classes, (str, Path)):
        path = Path(classes)
        if not path.is_file():
            raise FileNotFoundError(f"classes: {path} is not a file (expected one class name per line)")
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    names = list(classes)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError("classes: expected a non-empty list of class names (str)")
    return names


def _output_size(model: nn.Module) -> int | None:
    """The out-features of the model's last ``nn.Linear`` (or out-channels of a final 1×1 conv), if any."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module.out_features
    return last


def _default_layers(model: nn.Module, count: int = 4) -> tuple[str, ...]:
    """One block per stage: a hierarchical transformer's or ConvNeXt's stage ends (timm's
    ``feature_info``; torchvision's ``features`` stages of blocks); a ViT's blocks evenly spaced (not
    the last when the head reads the class token: its patch tokens get no gradient); else ``count``
    convolutions spread from a quarter of the depth to the deepest (none → the input)."""
    names = dict(model.named_modules())
    if any(isinstance(m, nn.LayerNorm) for m in names.values()):
        blocks = [f"{path}.{name}" for path in ("blocks", "encoder.layers") if path in names
                  for name, _ in names[path].named_children()]
        if blocks:
            if getattr(model, "global_pool", "token") == "token" and len(blocks) > 1:
                blocks = blocks[:-1]
            picks = np.linspace(0, len(blocks) - 1, num=min(count, len(blocks))).round().astype(int)
            return tuple(dict.fromkeys(blocks[i] for i in picks))
        stages = [f["module"] for f in getattr(model, "feature_info", None) or [] if f.get("module") in names] or [
            f"features.{i}" for i, m in enumerate(getattr(model, "features", [])) if
            isinstance(m, nn.Sequential) and len(m) and all(type(b).__name__.endswith("Block") for b in m)]
        if len(stages) > 1:
            return tuple(stages)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return ("",)
    picks = np.linspace(len(convs) // 4, len(convs) - 1, num=min(count, len(convs))).round().astype(int)
    return tuple(dict.fromkeys(convs[i] for i in picks))


__all__ = ["NORMALIZATIONS", "WeightsNotFoundError", "load", "load_state"]
