"""Forward hooks that expose a layer's activation to ``torch.autograd.grad``.

One :class:`LayerProbe` per requested layer. Its forward hook

* keeps the module's output ``x`` (the node whose gradient ``g`` we ask autograd for),
* hands the rest of the network a *clone*, so in-place ops downstream (``ReLU(inplace=True)``,
  ``out += identity``) cannot overwrite the kept value or its place in the graph,
* for a real-conv site, reduces the module's input to the window statistics the aggregations need
  right away, so the input itself is not kept.

When nothing upstream requires grad (parameters are frozen during a saliency call), the kept output
becomes a fresh leaf: no graph is recorded below the shallowest requested layer.

A module that runs again once the forward pass is over is being recomputed for the backward pass
(``torch.utils.checkpoint`` with ``use_reentrant=False``): its probe then hands on the same kind of
clone, so that the recomputation saves the tensors the forward saved, and keeps nothing.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import Tensor, nn

from .aggregations import factor_stats
from .sites import Window


@dataclass
class PassClock:
    """Shared by the probes of one pass: how many probed modules ran, and whether the forward is over."""

    ticks: int = 0
    forward_done: bool = False


def module_input(module: nn.Module, args: tuple, kwargs: dict) -> Tensor:
    """The first argument of a module call, also when passed by keyword (``conv(input=x)``)."""
    if args:
        return args[0]
    first = next(iter(inspect.signature(module.forward).parameters))
    return kwargs[first]


def _leaf(value: Tensor) -> Tensor:
    """``value``, or a fresh leaf with its values when nothing upstream requires grad."""
    return value if value.requires_grad else value.detach().requires_grad_(True)


@dataclass
class LayerProbe:
    name: str
    module: nn.Module | None  # None: the network input
    conv_window: Window | None = None  # real-conv site: patch geometry of the module input
    conv_stats: tuple[str, ...] = ()  # statistics of the module input to pool over that window
    output: Tensor | None = field(default=None, repr=False)
    input_stats: dict[str, Tensor] = field(default_factory=dict, repr=False)
    calls: int = 0
    order: int = -1  # position in forward execution (-1: the network input)
    feature_map: bool = True  # False for a probe kept only for its place in the forward order
    _clock: PassClock = field(default_factory=PassClock, repr=False)  # shared by the probes of a pass

    def capture(self, value: Tensor) -> Tensor:
        """Keep ``value`` as this layer's activation and return what the network continues with."""
        if not isinstance(value, Tensor) or not value.is_floating_point() or (self.feature_map and value.dim() != 4):
            desc = f"shape {tuple(value.shape)}, dtype {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(
                f"layers: {self.name!r} outputs {desc}; saliency needs a floating-point feature map [N, C, H, W]"
            )
        self.output = _leaf(value)
        return self.output.clone()

    def hook(self, module: nn.Module, args: tuple, kwargs: dict, output: object) -> Tensor:
        if self._clock.forward_done:  # recomputed for the backward pass (torch.utils.checkpoint)
            return _leaf(output).clone()  # type: ignore[arg-type]
        if not torch.is_grad_enabled():
            raise ValueError(
                f"layers: module {self.name!r} runs with gradients disabled inside the forward pass (in a "
                "torch.utils.checkpoint block with use_reentrant=True, or under torch.no_grad), so it has no "
                "gradient; checkpoint with use_reentrant=False or pick a layer outside that block"
            )
        self.calls += 1
        if self.calls > 1:
            raise ValueError(
                f"layers: module {self.name!r} runs more than once in one forward pass (a shared module), "
                "so its output is ambiguous; pick a module that runs once"
            )
        self.order = self._clock.ticks
        self._clock.ticks += 1
        if self.conv_window is not None:
            with torch.no_grad():
                stats = factor_stats(module_input(module, args, kwargs), self.conv_stats, self.conv_window.groups)
                self.input_stats = self.conv_window.pool_stats(stats)
        return self.capture(output)  # type: ignore[arg-type]


@contextmanager
def attached(probes: list[LayerProbe]) -> Iterator[PassClock]:
    """Register the probes' forward hooks for the duration of the block, then remove them. Set the
    clock's ``forward_done`` once the forward pass is over."""
    handles = []
    clock = PassClock()
    try:
        for probe in probes:
            probe._clock = clock
            if probe.module is not None:
                handles.append(probe.module.register_forward_hook(probe.hook, with_kwargs=True))
        yield clock
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def recomputation_refused(model: nn.Module, who: str) -> Iterator[None]:
    """Refuse, with an error naming ``who``, any module of ``model`` that runs during the block:
    in a backward pass that is ``torch.utils.checkpoint`` re-running part of the forward."""

    def refuse(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            raise ValueError(
                f"{who} cannot run through torch.utils.checkpoint: module {name!r} is recomputed during the "
                "backward pass, where the modified backward rules do not apply; turn the model's checkpointing "
                "off, or use a non-invasive method"
            )
        return hook

    handles = [module.register_forward_pre_hook(refuse(name)) for name, module in model.named_modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
