"""Explain your own images with your own model: the library behind ``python -m revisal explain``.

Models come from :func:`revisal.models.load` (a zoo name,
``torchvision:<name>``, ``timm:<name>`` or ``module.path:callable``, with a weights file; nothing is
downloaded unless asked).

Every image is read with Pillow (:mod:`revisal.explain_images`: any mode, EXIF orientation, size
limits), its centred square resized to the model's input side, normalised with the model's
preprocessing, and explained with :func:`revisal.saliency` for every (method, layer) in one pass
per batch, with the model in eval mode.
"""

from __future__ import annotations

import difflib
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from revisal.explain_images import ImageError, check_image_files, image_paths, output_names, printable, read_image
from revisal.files import digest_file
from revisal.models import NORMALIZATIONS, WeightsNotFoundError, load, load_state
from revisal.models.zoo import ZooModel
from revisal.validation import check_int

# ---------------------------------------------------------------------------------------------- layers

@dataclass
class LayerInfo:
    """A module and what one forward pass showed about it."""

    name: str
    kind: str
    shape: tuple[int, ...] | None
    calls: int
    conv: bool  # a real layer (nn.Conv2d, or an nn.Linear applied per location): normgrad_conv applies
    layout: str = ""  # how its output is read (revisal.layouts): "nchw", "nhwc", "tokens P+h×w"; "" if it cannot be

    @property
    def explainable(self) -> bool:
        """Runs once per forward and returns a map revisal reads (a feature map, channels-last, or
        tokens on a known grid), or one of a layout it would refuse (listed as ambiguous)."""
        return self.calls == 1 and self.shape is not None and len(self.shape) in (3, 4) and (
            bool(self.layout) or len(self.shape) == 4)


def list_layers(zoo: ZooModel) -> list[LayerInfo]:
    """Every module of ``zoo.model`` (``""`` = the input) with its output shape on one image of the
    model's input size, its call count, whether it is a real layer (where ``normgrad_conv`` applies)
    and the layout revisal reads its output with (:mod:`revisal.layouts`). The model is left as found."""
    from revisal.layouts import Grid, resolve_layout
    from revisal.probes import hooked
    from revisal.state import preserved_state

    model = zoo.model
    seen: dict[str, list] = {}

    def hook(name):
        def record(_module, _args, _kwargs, output):
            seen.setdefault(name, []).append(tuple(output.shape) if isinstance(output, Tensor) else None)
        return record

    modules = [(n, m) for n, m in model.named_modules() if n]
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    pixels = torch.full((1, 3, zoo.input_size, zoo.input_size), 0.5, dtype=dtype, device=device)
    with preserved_state(model), hooked((module, "forward", hook(name)) for name, module in modules):
        with torch.no_grad():
            model.eval()(zoo.normalize(pixels))
    def layout(name: str, module: nn.Module, shape: tuple[int, ...] | None) -> str:
        if shape is None or len(shape) not in (3, 4):
            return ""
        try:
            found = resolve_layout(model, name, module, shape, (zoo.input_size, zoo.input_size))
        except ValueError:
            return ""
        if isinstance(found, Grid) and found.kind == "tokens":
            return f"tokens {found.prefix}+{found.grid[0]}×{found.grid[1]}"
        return found.kind if isinstance(found, Grid) else "given"

    out = [LayerInfo("", "input", tuple(pixels.shape), 1, False, "nchw")]
    for name, module in modules:
        shapes = seen.get(name, [])
        shape = shapes[0] if shapes else None
        real = isinstance(module, nn.Conv2d) or (isinstance(module, nn.Linear) and shape is not None and len(shape) > 2)
        out.append(LayerInfo(name, type(module).__name__, shape, len(shapes), real, layout(name, module, shape)))
    return out


def format_layers(infos: Iterable[LayerInfo], preset: Sequence[str] = ()) -> str:
    """One line per explainable module: name, type, output shape, layout; ``real`` marks a real
    layer (normgrad_conv applies), ``preset`` the model's default layers, ``ambiguous`` a map whose
    layout revisal will not guess (give ``--layout NAME=nchw|nhwc``)."""
    lines = [f"{'layer':<40} {'type':<22} {'output':<16} {'layout':<16} marks"]
    for info in infos:
        if not info.explainable:
            continue
        marks = [m for m, on in (("real", info.conv), ("preset", info.name in preset),
                                 ("ambiguous", not info.layout)) if on]
        shape = "×".join(map(str, info.shape[1:]))
        lines.append(f"{info.name or '(input)':<40} {info.kind:<22} {shape:<16} {info.layout or '?':<16} "
                     f"{' '.join(marks)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- explain

@dataclass
class Explanation:
    """One image's result: its top-5, the explained class, and maps [methods, layers, S, S] at the
    input size (raw values, bilinear from each layer's resolution)."""

    path: Path
    name: str
    pixels: Tensor
    top5: list[tuple[int, str, float]]
    target: int
    target_name: str
    maps: np.ndarray
    methods: list[str]
    layers: list[str]
    layer_shapes: dict[str, tuple[int, int]] = field(default_factory=dict)


def resolve_target(target: int | str | None, classes: Sequence[str]) -> int | None:
    """``None`` (each image's top-1), a class index or a class name (exact, else a clear error)."""
    if target is None:
        return None
    if isinstance(target, str) and target.strip().lstrip("-").isdigit():
        target = int(target)
    if isinstance(target, bool):
        raise TypeError("target: expected a class index or name, got a bool")
    if isinstance(target, int):
        if not 0 <= target < len(classes):
            raise ValueError(f"target: class index {target} out of range for {len(classes)} classes")
        return target
    if isinstance(target, str):
        if target in classes:
            return list(classes).index(target)
        close = difflib.get_close_matches(target, list(classes), n=3)
        raise ValueError(f"target: no class named {target!r}; did you mean {close}?")
    raise TypeError(f"target: expected a class index or name, got {type(target).__name__}")


def check_arguments(zoo: ZooModel, *, layers: Sequence[str] | None = None, methods: Sequence[str] | None = None,
                    target: int | str | None = None, batch_size: int = 8,
                    meta_lr: float | None = None) -> tuple[list[str], list[str], int | None]:
    """:func:`explain`'s arguments checked (errors name them): the layers and methods (defaults
    filled in) and the fixed target class (None: each image's top-1)."""
    from revisal.methods import DEFAULT_METHODS, METHODS
    from revisal.validation import check_layers

    layers = list(zoo.layers if layers is None else layers)
    check_layers(zoo.model, layers, "layers")
    methods = list(DEFAULT_METHODS if methods is None else methods)
    for m in methods:
        if m not in METHODS:
            close = difflib.get_close_matches(m, list(METHODS), n=3)
            raise ValueError(f"methods: unknown method {m!r}; did you mean {close}? Known: {sorted(METHODS)}")
    fixed = resolve_target(target, zoo.classes)
    check_int(batch_size, "batch_size", minimum=1)
    if meta_lr is not None and not (isinstance(meta_lr, (int, float)) and 0 < meta_lr < float("inf")):
        raise ValueError(f"meta: expected a positive learning rate, got {meta_lr!r}")
    return layers, methods, fixed


def explain(zoo: ZooModel, paths: Sequence[Path], *, layers: Sequence[str] | None = None,
            methods: Sequence[str] | None = None, target: int | str | None = None, meta_lr: float | None = None,
            batch_size: int = 8, device: str | torch.device = "cpu", progress: bool = True,
            check: bool = True, layout: dict[str, str] | None = None) -> Iterator[Explanation]:
    """Explain every image in ``paths`` (yielded one by one, computed ``batch_size`` at a time).

    For image i with logits z_i the explained class is ``target`` (or argmax z_i); each map is
    :func:`revisal.saliency` of that class's logit at every (method, layer), with meta-saliency
    (one inner SGD step, ``revisal.MetaStep(lr=meta_lr)``) when ``meta_lr`` is given; ``layout``
    names the layout of layers the model does not state (:mod:`revisal.layouts`).

    Every argument, and (with ``check``) every image, is checked when this is called, before any
    image is explained: one unreadable image raises :class:`~revisal.explain_images.ImageError`
    listing all of them, and nothing is yielded.

    The model is explained in eval mode (BatchNorm's running statistics, no dropout), so the
    classes are its eval-mode predictions; a model handed over in training mode gets a warning.
    Between batches, and when the iteration ends or fails, the model is exactly as it was found
    (training flags, parameters, buffers such as BatchNorm's running statistics, device).
    """
    from revisal.meta import MetaStep

    layers, methods, fixed = check_arguments(zoo, layers=layers, methods=methods, target=target,
                                             batch_size=batch_size, meta_lr=meta_lr)
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("paths: no image given")
    bad = check_image_files(paths, zoo.input_size) if check else []
    if bad:
        listed = "; ".join(reason for _, reason in bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise ImageError(f"images: {len(bad)} of {len(paths)} cannot be read, nothing was explained: {listed}")
    training = [name or "(model)" for name, m in zoo.model.named_modules() if m.training]
    if training:
        warnings.warn(f"model: {len(training)} modules in training mode (e.g. {training[0]}); explained in eval mode "
                      "(BatchNorm running statistics, no dropout) and left in training mode", stacklevel=2)
    meta = MetaStep(lr=float(meta_lr)) if meta_lr is not None else None
    return _explained(zoo, paths, layers, methods, fixed, meta, batch_size, torch.device(device), progress, layout)


def _explained(zoo: ZooModel, paths: list[Path], layers: list[str], methods: list[str], fixed: int | None,
               meta, batch_size: int, device: torch.device, progress: bool,
               layout: dict[str, str] | None = None) -> Iterator[Explanation]:
    """The batches of :func:`explain`, each computed with the model in eval mode on ``device`` and
    restored (:func:`revisal.state.preserved_state`) before its results are yielded."""
    from tqdm import tqdm

    from revisal.engine import saliency
    from revisal.state import preserved_state

    names = output_names(paths)
    model = zoo.model
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    side = (zoo.input_size, zoo.input_size)
    bar = tqdm(total=len(paths), desc="explain", unit="image", disable=not progress, file=sys.stderr)
    try:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            pixels = torch.stack([read_image(path, zoo.input_size) for path in chunk])
            with preserved_state(model, freeze_parameters=False):  # eval mode; meta-saliency needs requires_grad
                model.to(device)
                inputs = zoo.normalize(pixels.to(device, dtype))
                with torch.no_grad():
                    probs = model(inputs).float().softmax(-1)
                top = probs.topk(min(5, probs.shape[-1]), dim=-1)
                targets = [fixed if fixed is not None else int(top.indices[k, 0]) for k in range(len(chunk))]
                maps = saliency(model, inputs, torch.tensor(targets, device=device), layers, methods, meta=meta,
                                layout=layout)
            shapes = {layer: tuple(maps[methods[0], layer].shape[-2:]) for layer in layers}
            full = maps.resized(side)
            stack = torch.stack([torch.stack([full[m, layer][:, 0] for layer in layers], 1) for m in methods], 1)
            stack = stack.float().cpu().numpy()
            values, indices = top.values.cpu().tolist(), top.indices.cpu().tolist()
            for k, path in enumerate(chunk):
                yield Explanation(
                    path=path, name=names[start + k], pixels=pixels[k],
                    top5=[(c, zoo.classes[c], p) for p, c in zip(values[k], indices[k])],
                    target=targets[k], target_name=zoo.classes[targets[k]], maps=stack[k], methods=methods,
                    layers=layers, layer_shapes=shapes)
            bar.update(len(chunk))
    finally:
        bar.close()


def format_top5(result: Explanation) -> str:
    """``name: 1. tiger cat 0.62 · 2. tabby 0.21 ...``"""
    return f"{printable(result.path)}: " + " · ".join(f"{r + 1}. {name} {p:.3f}" for r, (_, name, p) in enumerate(result.top5))


def weights_digest(path: Path | None) -> str | None:
    """sha256 of a weights file (recorded in the sidecar), or None."""
    return digest_file(path) if path is not None else None


__all__ = ["Explanation", "ImageError", "LayerInfo", "NORMALIZATIONS", "WeightsNotFoundError", "check_arguments",
           "check_image_files", "explain",
           "format_layers", "format_top5", "image_paths", "list_layers", "load", "load_state", "output_names",
           "printable", "read_image", "resolve_target"]
