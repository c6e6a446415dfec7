"""Argument checks shared by the public functions: clear errors that name the argument."""

from __future__ import annotations

import difflib
import numbers
from typing import Callable, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

Target = Union[int, Sequence[int], Tensor, np.ndarray, Callable[[object], Tensor]]
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
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name}: contains NaN or Inf values")
    return images


def check_layers(model: nn.Module, layers: object) -> list[str]:
    """Module names from ``model.named_modules()`` ("" = the network input), de-duplicated in order."""
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, Sequence) or not all(isinstance(n, str) for n in layers):
        raise TypeError(f"layers: expected a list of module names (str), got {layers!r}")
    if len(layers) == 0:
        raise ValueError("layers: empty; pass at least one module name (\"\" is the network input)")
    known = dict(model.named_modules())
    out: list[str] = []
    for name in layers:
        if name != INPUT_LAYER and name not in known:
            close = difflib.get_close_matches(name, [k for k in known if k], n=3, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(
                f"layers: {name!r} is not a module of this model{hint} "
                "(names come from model.named_modules(); \"\" is the network input)"
            )
        if name not in out:
            out.append(name)
    return out


def check_target(target: Target, n: int) -> Tensor | Callable[[object], Tensor]:
    """An int, N class ids, or a callable objective; ids come back as a LongTensor [N]."""
    if callable(target) and not isinstance(target, (Tensor, np.ndarray)):
        return target
    if isinstance(target, bool) or (isinstance(target, Tensor) and target.dtype == torch.bool):
        raise TypeError("target: expected a class id (int), N class ids or a callable, got a bool")
    if isinstance(target, numbers.Integral):
        ids = torch.full((n,), int(target), dtype=torch.long)
    elif isinstance(target, (Tensor, np.ndarray, Sequence)):
        t = torch.as_tensor(np.asarray(target) if isinstance(target, Sequence) else target)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"target: expected integer class ids, got dtype {t.dtype}")
        if t.dim() == 0:
            t = t.expand(n)
        if t.dim() != 1:
            raise ValueError(f"target: expected N class ids (1-D), got shape {tuple(t.shape)}")
        if t.shape[0] != n:
            raise ValueError(f"target: {t.shape[0]} class ids for a batch of {n} images")
        ids = t.long().cpu()
    else:
        raise TypeError(
            f"target: expected an int, N class ids or a callable(model_output) -> Tensor[N], "
            f"got {type(target).__name__}"
        )
    if bool((ids < 0).any()):
        raise ValueError(f"target: class ids must be ≥ 0, got {ids.tolist()}")
    return ids


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
