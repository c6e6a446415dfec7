"""Leave the model exactly as it was found, whatever happens inside."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn


class _ModuleState:
    """One module's attributes: which object each name is bound to, and the contents of its
    containers (``_parameters``, ``_buffers``, ``_modules``, the hook dicts, user lists...)."""

    def __init__(self, module: nn.Module):
        self.module, self.cls = module, type(module)  # torch.nn.utils.parametrize swaps the class
        self.attributes = dict(vars(module))
        self.contents = {k: copy.copy(v) for k, v in self.attributes.items() if isinstance(v, (dict, list, set))}

    def restore(self) -> None:
        if type(self.module) is not self.cls:
            self.module.__class__ = self.cls
        current = vars(self.module)
        for name in [k for k in current if k not in self.attributes]:
            del current[name]
        for name, value in self.attributes.items():
            if current.get(name, self) is not value:
                current[name] = value
        for name, saved in self.contents.items():
            container = self.attributes[name]
            if isinstance(container, list):
                if len(container) != len(saved) or any(a is not b for a, b in zip(container, saved)):
                    container[:] = saved
            elif isinstance(container, dict):
                if container.keys() != saved.keys() or any(container[k] is not v for k, v in saved.items()):
                    container.clear()
                    container.update(saved)
            elif container != saved:
                container.clear()
                container.update(saved)


class _TensorState:
    """A tensor's values (a copy: kernels such as batch norm's running-statistics update write in
    place without bumping the version counter, so only the values tell), storage,
    ``requires_grad`` and ``.grad``."""

    def __init__(self, tensor: Tensor):
        self.tensor = tensor
        self.data = tensor.data  # the original storage, kept alive
        self.values = tensor.detach().clone()
        self.requires_grad = tensor.requires_grad
        self.grad = tensor.grad if tensor.is_leaf else None

    def restore(self) -> None:
        t = self.tensor
        if t.is_leaf:
            if t.requires_grad != self.requires_grad:
                t.requires_grad_(self.requires_grad)
            if t.grad is not self.grad:
                t.grad = self.grad
        if t.data_ptr() != self.data.data_ptr() or t.shape != self.data.shape or t.dtype != self.data.dtype \
                or t.device != self.data.device:
            t.data = self.data  # `t.data = other` rebound the storage
        if not t.is_meta and not torch.equal(t, self.values):
            with torch.no_grad():
                t.copy_(self.values)


def _tensors(model: nn.Module) -> list[Tensor]:
    """Every parameter, buffer and plain tensor attribute of every submodule, each once."""
    seen: dict[int, Tensor] = {}
    for module in model.modules():
        for value in (*module._parameters.values(), *module._buffers.values(), *vars(module).values()):
            if isinstance(value, Tensor):
                seen.setdefault(id(value), value)
    return list(seen.values())


@contextmanager
def preserved_state(model: nn.Module, *, eval_mode: bool = True, freeze_parameters: bool = True) -> Iterator[None]:
    """Run a block with the model in eval mode and parameters frozen, then restore everything.

    Restored on exit, also when the block raises, for every submodule: which object each attribute
    is bound to (parameters and buffers replaced, added or deleted, submodules swapped, plain tensor
    attributes rebound, counters, ``training`` flags), the contents of its dicts, lists and sets
    (hooks a forward registers, items a forward appends), and the values, storage,
    ``requires_grad`` and ``.grad`` of every parameter, buffer and plain tensor attribute (e.g.
    BatchNorm statistics updated in training mode, ``w.add_(1)``, ``w.data = ...``).

    The values are copied on entry (one copy of the parameters and buffers) and written back
    where they differ on exit.

    Freezing parameters (``requires_grad=False``) is what makes saliency cheap: the forward pass
    records no graph for weight gradients and the backward computes none.
    """
    modules = [_ModuleState(m) for m in model.modules()]
    tensors = [_TensorState(t) for t in _tensors(model)]
    try:
        if eval_mode:
            model.eval()
        if freeze_parameters:
            for p in model.parameters():
                p.requires_grad_(False)
        yield
    finally:
        for state in modules:
            state.restore()
        for state in tensors:
            state.restore()
