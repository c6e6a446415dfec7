"""Argument checks shared by the public functions: clear errors that name the argument."""

from __future__ import annotations

import difflib
import numbers
from typing import Callable, Iterable, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

Target = Union[int, str, Sequence[Union[int, str]], Tensor, np.ndarray, Callable[[object], Tensor]]
INPUT_LAYER = ""


def check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return model


def check_images(images: object, name: str = "images") -> Tensor:
    """A finite floating-point batch ``[N, C, H, W]`` with N ≥ 1."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [N, C, H, W], got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {images.dtype} (convert with .float())")
    if images.dim() != 4:
        hint = " (add a batch dimension with .unsqueeze(0))" if images.dim() == 3 else ""
        raise ValueError(f"{name}: expected rank 4 [N, C, H, W], got shape {tuple(images.shape)}{hint}")
    if images.shape[0] == 0:
        raise ValueError(f"{name}: empty batch")
    if images.is_meta:
        raise ValueError(f"{name}: on the meta device, which holds no values; pass real images")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name}: contains NaN or Inf values")
    return images


def check_materialised(model: nn.Module) -> list[Tensor]:
    """The model's parameters and buffers, refused (naming ``model``) if any is on the meta device."""
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.is_meta for t in tensors):
        raise ValueError("model: its parameters are on the meta device (no values); materialise them first, "
                         "e.g. model.to_empty(device='cpu') and load its weights")
    return tensors


def check_images_fit_model(model: nn.Module, images: Tensor, name: str = "images") -> None:
    """``images`` on one of the model's devices and of its parameters' floating-point dtype (any
    dtype under autocast on that device). A model without parameters or buffers takes any input."""
    tensors = check_materialised(model)
    devices = {t.device for t in tensors}
    if devices and images.device not in devices:
        device = next(iter(devices))
        raise ValueError(f"{name}: on {images.device} but the model is on {', '.join(sorted(map(str, devices)))}; "
                         f"move them with {name}.to('{device}')")
    floating = [t for t in tensors if t.is_floating_point()]
    dtypes = {t.dtype for t in floating if isinstance(t, nn.Parameter)} or {t.dtype for t in floating}
    if dtypes and images.dtype not in dtypes and not torch.is_autocast_enabled(images.device.type):
        dtype = next(t.dtype for t in floating if t.dtype in dtypes)
        raise TypeError(f"{name}: dtype {images.dtype} but the model's parameters are {dtype}; "
                        f"convert them with {name}.to({dtype}) (or the model with .to({images.dtype}))")


def check_int(value: object, name: str, minimum: int | None = None) -> int:
    """``value`` as an int (a bool is not one), at least ``minimum``; a ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int ≥ {minimum}, got {value!r}")
    return int(value)


def check_layers(model: nn.Module, layers: object, name: str = "layers") -> list[str]:
    """Module names from ``model.named_modules()`` ("" = the network input): a str or any iterable
    of str (list, tuple, generator, dict keys, numpy array...), de-duplicated in order."""
    items = check_names(layers, name, "module names")
    if len(items) == 0:
        raise ValueError(f"{name}: empty; pass at least one module name (\"\" is the network input)")
    known = dict(model.named_modules())
    out: list[str] = []
    for item in items:
        if item != INPUT_LAYER and item not in known:
            close = difflib.get_close_matches(item, [k for k in known if k], n=3, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(
                f"{name}: {item!r} is not a module of this model{hint} "
                "(names come from model.named_modules(); \"\" is the network input)"
            )
        if item not in out:
            out.append(item)
    return out


def check_methods_at_layers(model: nn.Module, methods: Iterable[object], layers: Iterable[str],
                            name: str = "methods") -> None:
    """Every method can run at every layer: a method whose site is the layer's own weights
    (``normgrad_conv``: ``x^in`` of a real ``nn.Conv2d``, or of an ``nn.Linear`` applied per token or
    pixel) only at such layers, never at the network input or another module. ``methods`` are :class:`revisal.Method` objects; the
    model may be a skeleton on the meta device (only its module types are read)."""
    modules = dict(model.named_modules())
    for method in methods:
        if method.site.needs_conv:  # type: ignore[attr-defined]
            for layer in layers:
                module = modules.get(layer) if layer != INPUT_LAYER else None
                if not isinstance(module, (nn.Conv2d, nn.Linear)):
                    kind = "the network input" if module is None else type(module).__name__
                    raise ValueError(
                        f"{name}: {method.name!r} uses the layer's own weights, but layer {layer!r} is "  # type: ignore[attr-defined]
                        f"{kind}, not an nn.Conv2d or a per-location nn.Linear; request it only at such layers"
                    )


def check_names(value: object, name: str, what: str) -> list[str]:
    """A str, or any iterable of str, as a list of plain ``str``; anything else is a TypeError."""
    if isinstance(value, str):
        return [str(value)]
    if isinstance(value, (bytes, Tensor)) or not isinstance(value, Iterable):
        raise TypeError(f"{name}: expected {what} (a str or an iterable of str), got {type(value).__name__}")
    items = list(value)
    bad = [item for item in items if not isinstance(item, str)]
    if bad:
        raise TypeError(f"{name}: expected {what} (str), got {bad[0]!r} of type {type(bad[0]).__name__}")
    return [str(item) for item in items]


def check_target(target: Target, n: int, classes: object = None) -> Tensor | Callable[[object], Tensor]:
    """An int, N class ids, class names, or a callable objective; ids come back as a LongTensor [N].

    Class ids are integers of any type (Python, NumPy, integer tensors) in [0, 2⁶³). Class names
    (a str, or str entries of a list or array) are looked up in ``classes``, the model's
    ``classes`` attribute: a sequence of class names in output order, as revisal's zoo models have.
    """
    if callable(target) and not isinstance(target, (Tensor, np.ndarray)):
        return target
    if isinstance(target, (Tensor, np.ndarray)):
        if isinstance(target, Tensor):
            integral = not (target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool)
        else:
            integral = target.dtype.kind not in "fcb"
        if not integral:
            raise TypeError(f"target: expected integer class ids or class names, got dtype {target.dtype}")
        if target.ndim > 1:
            raise ValueError(f"target: expected N class ids (1-D), got shape {tuple(target.shape)}")
        values = target.tolist()
    elif isinstance(target, (str, numbers.Integral)) or (isinstance(target, Sequence) and not isinstance(target, bytes)):
        values = target
    else:
        raise TypeError(
            f"target: expected an int, N class ids, class names or a callable(model_output) -> Tensor[N], "
            f"got {type(target).__name__}"
        )
    if isinstance(values, (str, numbers.Integral)):
        values = [values] * n
    elif len(values) != n:
        raise ValueError(f"target: {len(values)} class ids for a batch of {n} images")
    lookup = None
    ids = []
    for value in values:
        if isinstance(value, (Tensor, np.ndarray)) and value.ndim == 0:
            value = value.item()
        if isinstance(value, str):
            lookup = lookup or _class_lookup(classes, value)
            if value not in lookup:
                close = difflib.get_close_matches(value, list(lookup), n=3)
                raise ValueError(f"target: no class {value!r} in model.classes; did you mean {close}?")
            value = lookup[value]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"target: expected integer class ids or class names, got {value!r} of type "
                            f"{type(value).__name__}")
        value = int(value)
        if value < 0:
            raise ValueError(f"target: class ids must be ≥ 0, got {value}")
        if value >= 2**63:
            raise ValueError(f"target: class id {value} out of range (a class id is below the number of outputs)")
        ids.append(value)
    return torch.tensor(ids, dtype=torch.long)


def _class_lookup(classes: object, name: str) -> dict[str, int]:
    if not isinstance(classes, Sequence) or isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
        raise TypeError(f"target: class name {name!r} needs model.classes, a sequence of class names in output "
                        f"order; this model has {'none' if classes is None else type(classes).__name__}; "
                        "pass the class id instead")
    return {c: i for i, c in reversed(list(enumerate(classes)))}  # the first index of a repeated name


def check_class_ids(ids: Tensor, classes: int) -> None:
    if bool((ids >= classes).any()):
        raise ValueError(f"target: class id {int(ids.max())} out of range for a model with {classes} outputs")


def objective(output: object, target: Tensor | Callable[[object], Tensor], n: int) -> Tensor:
    """The per-sample scalar to explain: the target logit, or the callable's value."""
    if callable(target) and not isinstance(target, Tensor):
        value = target(output)
        if not isinstance(value, Tensor) or value.shape != (n,):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"target: the callable must return a Tensor of shape [{n}] (one scalar per sample), got {shape}")
        return value
    if not isinstance(output, Tensor) or output.dim() != 2 or output.shape[0] != n:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(
            f"target: class ids need a model output of shape [N, classes], got {shape}; "
            "pass a callable target that maps the output to Tensor[N]"
        )
    check_class_ids(target, output.shape[1])
    index = target.to(output.device).clone()  # a normal tensor even if made under inference_mode
    return output.gather(1, index[:, None]).squeeze(1)


class NonFiniteMapError(FloatingPointError, ValueError):
    """A saliency map has NaN or Inf values although the images are finite: the model overflowed
    in its forward or backward pass (or a meta step went too far). A ``FloatingPointError``, and a
    ``ValueError`` too, so that code catching bad-argument errors catches it as well."""


def check_finite_maps(maps: dict[tuple[str, str], Tensor], hint: str = "") -> None:
    """Raise :class:`NonFiniteMapError` naming the first (method, layer) whose map is not finite."""
    for (method, layer), m in maps.items():
        bad = ~torch.isfinite(m)
        if bool(bad.any()):
            where = "the network input ('')" if layer == INPUT_LAYER else f"layer {layer!r}"
            raise NonFiniteMapError(
                f"methods: {method!r} at {where} gave NaN or Inf in {float(bad.double().mean()):.1%} of the map "
                f"values ({m.dtype}), although the images are finite: the model's forward or backward pass "
                f"overflowed{hint}"
            )
