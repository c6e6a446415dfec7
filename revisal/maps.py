"""Making maps: :func:`layer_maps`, the only code that turns a layer's output and gradient into
maps, and :class:`SaliencyMaps`, the result type of :func:`revisal.saliency`."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revisal.aggregations import factor_stats, working_precision
from revisal.sites import Window

if TYPE_CHECKING:
    from revisal.methods import Method

Key = tuple[str, str]


def check_size(size: object, name: str = "size") -> tuple[int, int]:
    """``(H, W)`` from an int or a pair of positive ints; anything else is a ValueError naming ``name``."""
    pair = (size, size) if isinstance(size, numbers.Integral) and not isinstance(size, bool) else size
    if isinstance(pair, Tensor):
        pair = pair.tolist()
    if (isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in pair)):
        raise ValueError(f"{name}: expected (H, W) of positive ints (or one int), got {size!r}")
    return int(pair[0]), int(pair[1])


#: Relative spread below which a map is flat: (max − min) ≤ FLAT_RTOL · max(|max|, |min|).
#: A map that is constant by construction (the gradient just before a global average pool: the same
#: vector at every location) comes out of float32 arithmetic with a spread of float32 rounding only,
#: 2.2e-5 of its value for gradient-sum at EfficientNet-Lite0's last layer (a sum over 1280 channels:
#: up to 1280 · 2⁻²⁴ ≈ 7.6e-5). 1e-3 is an order of magnitude above that; a map with any structure a
#: reader could see spreads by far more.
FLAT_RTOL = 1e-3


def flat_maps(maps: Tensor, rtol: float = FLAT_RTOL) -> Tensor:
    r"""``[N]`` bool: which maps of a ``[N, ...]`` batch are flat, constant up to rounding:
    :math:`\max m - \min m \le \text{rtol} \cdot \max(|\max m|, |\min m|)` (an all-zero map is flat).

    A flat map has no maximum and no normalisation: the pointing games score it "n/a", a layer
    combination leaves it out, and the figures say so instead of drawing rounding noise.
    """
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not 0 <= rtol < 1:
        raise ValueError(f"rtol: expected a number in [0, 1), got {rtol!r}")
    if not isinstance(maps, Tensor):
        maps = torch.as_tensor(np.asarray(maps))
    flat = maps.detach().flatten(1).double()
    if flat.shape[1] == 0:
        raise ValueError(f"maps: empty maps, shape {tuple(maps.shape)}")
    hi, lo = flat.amax(1), flat.amin(1)
    return (hi - lo) <= rtol * torch.maximum(hi.abs(), lo.abs())


class SaliencyMaps(Mapping[Key, Tensor]):
    """Saliency maps for a batch, one ``Tensor[N, 1, h, w]`` per ``(method, layer)``.

    Each map keeps the resolution of the layer it was computed at; :meth:`resized` brings them all
    to a common size. ``maps.methods`` and ``maps.layers`` list what it holds in request order.

    >>> maps["normgrad", "features.29"].shape        # doctest: +SKIP
    torch.Size([4, 1, 14, 14])
    >>> maps.numpy("normgrad", "features.29")[0]     # [h, w] float32 array for plotting  # doctest: +SKIP
    """

    def __init__(self, maps: Mapping[Key, Tensor], methods: list[str], layers: list[str]):
        self._maps = dict(maps)
        self.methods = list(methods)
        self.layers = list(layers)

    def __getitem__(self, key: Key) -> Tensor:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError(f"key: expected (method, layer), got {key!r}")
        try:
            return self._maps[key]
        except KeyError:
            method, layer = key
            if method not in self.methods:
                raise KeyError(f"method {method!r} not computed; have {self.methods}") from None
            raise KeyError(f"layer {layer!r} not computed; have {self.layers}") from None

    def __iter__(self) -> Iterator[Key]:
        return iter(self._maps)

    def __len__(self) -> int:
        return len(self._maps)

    def __repr__(self) -> str:
        first = next(iter(self._maps.values()), None)
        n = 0 if first is None else first.shape[0]
        return f"SaliencyMaps(N={n}, methods={self.methods}, layers={self.layers})"

    @property
    def batch_size(self) -> int:
        return next(iter(self._maps.values())).shape[0]

    def resized(self, size: int | tuple[int, int], mode: str = "bilinear") -> "SaliencyMaps":
        """All maps interpolated to ``size`` (H, W) (bilinear, ``align_corners=False``)."""
        size = check_size(size)
        kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
        out = {
            key: m if tuple(m.shape[-2:]) == size else F.interpolate(m, size=size, mode=mode, **kwargs)
            for key, m in self._maps.items()
        }
        return SaliencyMaps(out, self.methods, self.layers)

    def numpy(self, method: str, layer: str) -> np.ndarray:
        """The maps of one ``(method, layer)`` as a float32 array [N, h, w] for plotting."""
        return self[method, layer][:, 0].detach().float().cpu().numpy()

    def stack(self, method: str) -> Tensor:
        """One method at every layer as ``Tensor[N, L, H, W]``; layers must share a size (resize first)."""
        maps = [self[method, layer] for layer in self.layers]
        sizes = {tuple(m.shape[-2:]) for m in maps}
        if len(sizes) > 1:
            raise ValueError(f"method {method!r}: layers have different sizes {sorted(sizes)}; call .resized() first")
        return torch.cat(maps, dim=1)

    def to(self, device: torch.device | str) -> "SaliencyMaps":
        return SaliencyMaps({k: v.to(device) for k, v in self._maps.items()}, self.methods, self.layers)

    @staticmethod
    def concat(parts: list["SaliencyMaps"]) -> "SaliencyMaps":
        """Concatenate maps of consecutive batch chunks (same methods and layers)."""
        first = parts[0]
        out = {key: torch.cat([p._maps[key] for p in parts], dim=0) for key in first._maps}
        return SaliencyMaps(out, first.methods, first.layers)


def layer_maps(module: nn.Module | None, output: Tensor, input_stats: dict[str, Tensor], g: Tensor,
               methods: list["Method"]) -> dict[str, Tensor]:
    """Every method's map at one layer from its output ``x``, gradient ``g`` and (for a real conv)
    the pooled statistics of its input, sharing contributions and statistics between methods."""
    g = working_precision(g)
    x = working_precision(output.detach())
    contributions: dict[str, Tensor] = {}
    stats: dict[tuple, Tensor] = {}

    def g_stat(name: str, groups: int) -> Tensor:
        if ("g", name, groups) not in stats:
            stats["g", name, groups] = factor_stats(g, (name,), groups)[name]
        return stats["g", name, groups]

    def x_stat(name: str, window: Window) -> Tensor:
        if ("x", name, window) not in stats:
            stats["x", name, window] = window.pool_stats(factor_stats(x, (name,), window.groups))[name]
        return stats["x", name, window]

    out: dict[str, Tensor] = {}
    for method in methods:
        site, agg = method.site, method.aggregation
        if site.kind == "vector":
            if site.name not in contributions:
                contributions[site.name] = site.contribution(g, x)  # type: ignore[misc]
            value = agg.reduce(contributions[site.name])
        else:
            window = site.window(module)  # type: ignore[misc]
            g_stats = {s: g_stat(s, window.groups) for s in agg.stats}
            if site.activation == "input":
                x_stats = {s: input_stats[s] for s in agg.stats}
            else:
                x_stats = {s: x_stat(s, window) for s in agg.stats}
            got = next(iter(x_stats.values())).shape[-2:]
            if got != g.shape[-2:]:
                raise ValueError(
                    f"methods: {method.name!r}: the conv window gives a {tuple(got)} grid but the gradient is "
                    f"{tuple(g.shape[-2:])}; the module pads or strides in a way nn.Conv2d's attributes do not describe"
                )
            value = agg.combine(g_stats, x_stats)
        out[method.name] = value.unsqueeze(1)
    return out
