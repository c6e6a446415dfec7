"""Forward hooks that expose a layer's activation to ``torch.autograd.grad``.

One :class:`LayerProbe` per requested layer. Its forward hook

* keeps the module's output ``x`` (the node whose gradient ``g`` we ask autograd for),
* hands the rest of the network a *clone*, so in-place ops downstream (``ReLU(inplace=True)``,
  ``out += identity``) cannot overwrite the kept value or its place in the graph,
* for a real-conv site, reduces the module's input to the window statistics the aggregations need
  right away, so the input itself is not kept.

When nothing upstream requires grad (parameters are frozen during a saliency call), the kept output
becomes a fresh leaf: no graph is recorded below the shallowest requested layer.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import Tensor, nn

from .aggregations import factor_stats
from .sites import Window


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
    _clock: list = field(default_factory=lambda: [0], repr=False)  # shared by the probes of a pass

    def capture(self, value: Tensor) -> Tensor:
        """Keep ``value`` as this layer's activation and return what the network continues with."""
        if not isinstance(value, Tensor) or not value.is_floating_point() or (self.feature_map and value.dim() != 4):
            desc = f"shape {tuple(value.shape)}, dtype {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(
                f"layers: {self.name!r} outputs {desc}; saliency needs a floating-point feature map [N, C, H, W]"
            )
        if not value.requires_grad:
            value = value.detach().requires_grad_(True)
        self.output = value
        return value.clone()

    def hook(self, module: nn.Module, args: tuple, output: object) -> Tensor:
        self.calls += 1
        if self.calls > 1:
            raise ValueError(
                f"layers: module {self.name!r} runs more than once in one forward pass (a shared module), "
                "so its output is ambiguous; pick a module that runs once"
            )
        self.order = self._clock[0]
        self._clock[0] += 1
        if self.conv_window is not None:
            with torch.no_grad():
                stats = factor_stats(args[0], self.conv_stats, self.conv_window.groups)
                self.input_stats = self.conv_window.pool_stats(stats)
        return self.capture(output)  # type: ignore[arg-type]


@contextmanager
def attached(probes: list[LayerProbe]) -> Iterator[list[LayerProbe]]:
    """Register the probes' forward hooks for the duration of the block, then remove them."""
    handles = []
    clock = [0]
    try:
        for probe in probes:
            probe._clock = clock
            if probe.module is not None:
                handles.append(probe.module.register_forward_hook(probe.hook))
        yield probes
    finally:
        for handle in handles:
            handle.remove()
