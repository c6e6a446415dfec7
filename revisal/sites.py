"""Phase 1 of Extract & Aggregate: where the weight-gradient contributions come from.

For a layer with spatially shared parameters the gradient of those parameters is a sum over
locations u of per-location contributions (paper eqs. 2-3, Table 1). A *site* says which layer's
gradient we decompose and what its contribution ``c_u`` is. ``g`` is always the gradient of the
objective at the **output** of the named module; ``x`` is that module's output for the virtual
identity sites (§ 3.1.2: an identity inserted after the module) and its input for a real conv.

================  =========================  ======================================
site              contribution at u          shape
================  =========================  ======================================
``bias``          g_u                        vector K
``scale``         g_u ⊙ x_u                  vector K
``scale_avg``     ḡ ⊙ x_u, ḡ = mean_u g_u    vector K   (Grad-CAM's averaged gradient)
``conv1x1``       g_u x_uᵀ                   matrix K × K
``conv3x3``       g_u x_{u,3×3}ᵀ             matrix K × 9K (identity 3×3 conv, padding 1)
``conv``          g_u x^{in}_{u,N×N}ᵀ        matrix K' × N²K/groups per group (the real Conv2d; a
                                                        Linear applied per location is its 1×1 case)
================  =========================  ======================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from revisal.aggregations import STAT_POOLING


@dataclass(frozen=True)
class Window:
    """The N×N patch geometry of a convolution: which input locations feed output location u."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, right, top, bottom (F.pad order)
    padding_mode: str = "zeros"
    groups: int = 1

    @property
    def is_pointwise(self) -> bool:
        return self.kernel == (1, 1) and self.stride == (1, 1) and not any(self.pads)

    @classmethod
    def identity(cls, size: int) -> "Window":
        """An identity N×N convolution: stride 1, 'same' zero padding."""
        p = size // 2
        return cls(kernel=(size, size), pads=(p, size - 1 - p, p, size - 1 - p))

    @classmethod
    def of_layer(cls, module: nn.Module) -> "Window":
        """The patch geometry of a real layer: a conv's, or 1×1 for a Linear applied to every location
        (a token, or a pixel of a channels-last map: its weight gradient is ``Σ_u g_u x^{in}_uᵀ``)."""
        return cls.of_conv(module) if isinstance(module, nn.Conv2d) else cls(kernel=(1, 1))

    @classmethod
    def of_conv(cls, conv: nn.Conv2d) -> "Window":
        """The patch geometry of a real ``nn.Conv2d`` (any kernel, stride, padding, dilation)."""
        kh, kw = conv.kernel_size
        dh, dw = conv.dilation
        if conv.padding == "valid":
            pads = (0, 0, 0, 0)
        elif conv.padding == "same":
            th, tw = dh * (kh - 1), dw * (kw - 1)
            pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        else:
            ph, pw = conv.padding  # type: ignore[misc]
            pads = (pw, pw, ph, ph)
        return cls(
            kernel=(kh, kw),
            stride=tuple(conv.stride),  # type: ignore[arg-type]
            dilation=(dh, dw),
            pads=pads,
            padding_mode=conv.padding_mode,
            groups=conv.groups,
        )

    def pool(self, stat: Tensor, how: Literal["sum", "max"]) -> Tensor:
        """Combine a per-location statistic [N, G, H, W] over every patch of this window.

        Padding pads the statistic: zero padding gives a zero statistic, and reflect/replicate/
        circular padding copy locations, which commutes with any per-location statistic.
        """
        if self.is_pointwise:
            return stat
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        if any(self.pads):
            stat = F.pad(stat, self.pads, mode=mode)
        if how == "max":
            return F.max_pool2d(stat, self.kernel, self.stride, 0, self.dilation)
        groups = stat.shape[1]
        ones = stat.new_ones(groups, 1, *self.kernel)
        return F.conv2d(stat, ones, stride=self.stride, dilation=self.dilation, groups=groups)

    def pool_stats(self, stats: dict[str, Tensor]) -> dict[str, Tensor]:
        return {name: self.pool(value, STAT_POOLING[name]) for name, value in stats.items()}


@dataclass(frozen=True)
class Site:
    """An extraction site.

    Attributes:
        name: registry key.
        formula: the per-location contribution in the paper's notation.
        kind: ``"vector"`` (contribution computed explicitly) or ``"outer"`` (kept factorised).
        activation: which ``x`` pairs with ``g``: the module's ``"output"`` or its ``"input"``.
        contribution: for vector sites, ``(g, x) → c`` with shapes [N, K, H, W].
        window: for outer sites, the module → patch geometry of ``x``.
    """

    name: str
    formula: str
    kind: Literal["vector", "outer"]
    activation: Literal["output", "input", "none"]
    contribution: Callable[[Tensor, Tensor | None], Tensor] | None = None
    window: Callable[[nn.Module | None], Window] | None = None

    @property
    def needs_conv(self) -> bool:
        return self.activation == "input"

    def __repr__(self) -> str:
        return f"Site({self.name!r}: {self.formula})"


def _conv_window(module: nn.Module | None) -> Window:
    assert isinstance(module, (nn.Conv2d, nn.Linear))
    return Window.of_layer(module)


BIAS = Site("bias", "g_u", "vector", "none", contribution=lambda g, x: g)
SCALE = Site("scale", "g_u ⊙ x_u", "vector", "output", contribution=lambda g, x: g * x)
SCALE_AVG = Site(
    "scale_avg",
    "ḡ ⊙ x_u with ḡ = mean_u g_u",
    "vector",
    "output",
    contribution=lambda g, x: g.mean((2, 3), keepdim=True) * x,
)
CONV1X1 = Site("conv1x1", "g_u x_uᵀ", "outer", "output", window=lambda m: Window.identity(1))
CONV3X3 = Site("conv3x3", "g_u x_{u,3×3}ᵀ", "outer", "output", window=lambda m: Window.identity(3))
CONV = Site("conv", "g_u x^{in}_{u,N×N}ᵀ (real Conv2d)", "outer", "input", window=_conv_window)

SITES: dict[str, Site] = {s.name: s for s in (BIAS, SCALE, SCALE_AVG, CONV1X1, CONV3X3, CONV)}
