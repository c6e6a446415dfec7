"""Forward hooks: :func:`hooked`, the one way revisal registers them, and the layer probe.

One :class:`LayerProbe` per requested layer. Its forward hook

* keeps the module's output ``x``, reads its layout (:mod:`revisal.layouts`), and hands the rest of the network ``x + δ`` with ``δ = 0``: the
  gradient at ``x`` is the gradient with respect to ``δ``, also under ``torch.func`` (where ``δ`` is
  an argument), and in-place ops downstream write the sum, never the kept ``x``;
* for a real-layer site (a conv, or a Linear applied per location), reduces the module's input,
  laid out as the output, to the window statistics the aggregations need right away, so the input
  itself is not kept.

When nothing upstream requires grad (parameters are frozen during a saliency call), no graph is
recorded below the shallowest requested layer. The hook runs outside any rule's mode, and stays
through the backward, where ``torch.utils.checkpoint`` may recompute the module.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from revisal.aggregations import factor_stats
from revisal.layouts import NCHW, Layout
from revisal.sites import Window


@contextmanager
def hooked(hooks: Iterable[tuple[nn.Module, str, Callable]]) -> Iterator[None]:
    """Register each ``(module, kind, fn)`` for the block and remove them all on exit, also on
    error. ``kind``: ``"forward"`` (``fn(module, args, kwargs, output)``) or ``"pre"`` (``fn(module, args)``)."""
    handles = []
    try:
        for module, kind, fn in hooks:
            handles.append(module.register_forward_hook(fn, with_kwargs=True) if kind == "forward"
                           else module.register_forward_pre_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


def module_input(module: nn.Module, args: tuple, kwargs: dict) -> Tensor:
    """The first argument of a module call, also when passed by keyword (``conv(input=x)``)."""
    if args:
        return args[0]
    first = next(iter(inspect.signature(module.forward).parameters))
    return kwargs[first]


@dataclass
class LayerProbe:
    name: str
    module: nn.Module | None  # None: the network input
    window: Window | None = None  # real-layer site: patch geometry of the module input
    stats: tuple[str, ...] = ()  # statistics of the module input to pool over that window
    feature_map: bool = True  # False for a probe kept only for its place in the forward order
    resolve: Callable[[tuple[int, ...]], Layout] | None = field(default=None, repr=False)  # output shape → layout
    layout: Layout = field(default=NCHW, repr=False)
    delta: Tensor | None = field(default=None, repr=False)  # given under torch.func, else made here
    output: Tensor | None = field(default=None, repr=False)
    input_stats: dict[str, Tensor] = field(default_factory=dict, repr=False)
    order: int = -1  # position in forward execution (-1: the network input)
    clock: list[int] = field(default_factory=lambda: [0, 0], repr=False)  # ticks, forward done: one per pass

    def capture(self, value: object) -> Tensor:
        """Keep ``value`` as this layer's activation and return what the network continues with."""
        if not isinstance(value, Tensor) or not value.is_floating_point():
            desc = f"shape {tuple(value.shape)}, dtype {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"layers: {self.name!r} outputs {desc}; saliency needs a floating-point feature map "
                             "[N, C, H, W], [N, H, W, C] or tokens [N, T, C]")
        if self.feature_map and self.resolve is not None:
            self.layout = self.resolve(tuple(value.shape))
        self.output = value
        with torch._C.DisableTorchFunction():  # not an op of the model: no rule applies
            if self.delta is None:
                self.delta = torch.zeros_like(value, requires_grad=True)
            return value + self.delta

    def hook(self, module: nn.Module, args: tuple, kwargs: dict, output: object) -> Tensor:
        if self.clock[1]:  # recomputed for the backward pass (torch.utils.checkpoint): the same graph
            with torch._C.DisableTorchFunction():
                return output + self.delta  # type: ignore[operator]
        if not torch.is_grad_enabled():
            raise ValueError(
                f"layers: module {self.name!r} runs with gradients disabled inside the forward pass (in a "
                "torch.utils.checkpoint block with use_reentrant=True, or under torch.no_grad), so it has no "
                "gradient; checkpoint with use_reentrant=False or pick a layer outside that block"
            )
        if self.order >= 0:
            raise ValueError(
                f"layers: module {self.name!r} runs more than once in one forward pass (a shared module), "
                "so its output is ambiguous; pick a module that runs once"
            )
        self.order, self.clock[0] = self.clock[0], self.clock[0] + 1
        out = self.capture(output)
        if self.window is not None:
            with torch.no_grad(), torch._C.DisableTorchFunction():
                self.input_stats = self.window.pool_stats(
                    factor_stats(self.layout(module_input(module, args, kwargs)), self.stats, self.window.groups))
        return out
