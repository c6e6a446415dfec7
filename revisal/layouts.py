"""Where a layer's channels and locations are: the layout of its output, read from the model.

The paper's formulas hold per location u of a feature map ``[N, C, H, W]``. Other networks give
other shapes, which :func:`resolve_layout` puts on that grid before any method runs:

* ``"tokens"``: a sequence ``[N, T, C]`` (ViT, DeiT, BEiT, EVA) with ``T = P + h·w``: P prefix
  tokens (class, register, distillation), dropped, then the h·w patch tokens in row-major order.
  A location u is then a patch token. P and the grid come from the model for the input's size:
  timm's ``patch_embed`` and ``num_prefix_tokens``, torchvision's ``patch_size`` and class token;
* ``"nhwc"``: channels-last maps ``[N, H, W, C]`` (Swin stages, MaxViT's attention blocks, ConvNeXt's MLPs, any map
  after a ``permute``), recognised from the width of the module that made the map;
* ``"nchw"``: ``[N, C, H, W]``, the convolutional layout.

Nothing is guessed: a shape that fits two readings (a LayerNorm/Linear width equal to both H and
C), or none, is refused with the layer's name. ``layout={layer: "nchw" | "nhwc" | "tokens" | f}``
says it instead, where ``f(t) -> [N, C, h, w]`` is a reshape like pytorch-grad-cam's
``reshape_transform`` (it must only move and drop entries: it is applied to activations and
gradients alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from torch import Tensor, nn

LAYOUTS = ("nchw", "nhwc", "tokens")
Layout = Callable[[Tensor], Tensor]  # [N, ...] → [N, C, h, w]
#: Modules whose width is their channel count and which work on axis 1 (the rest: on the last axis).
_CHANNELS_FIRST = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)


@dataclass(frozen=True)
class Grid:
    """A named layout: ``kind`` in :data:`LAYOUTS`; for tokens, ``prefix`` tokens then an ``h × w`` grid."""

    kind: str
    prefix: int = 0
    grid: tuple[int, int] = (0, 0)

    def __call__(self, t: Tensor) -> Tensor:
        if self.kind == "nchw":
            return t
        if self.kind == "nhwc":
            return t.permute(0, 3, 1, 2)
        return t[:, self.prefix:].transpose(1, 2).unflatten(2, self.grid)


NCHW = Grid("nchw")


def token_grid(model: nn.Module, size: tuple[int, int]) -> tuple[int, tuple[int, int]] | None:
    """(prefix tokens, (h, w)) of a vision transformer's sequence for an input of ``size`` (H, W), as
    the model states them (timm: ``patch_embed`` and ``num_prefix_tokens``; torchvision:
    ``patch_size`` and ``class_token``), found in ``model`` or the first submodule that has them;
    None when no module says it."""
    for module in model.modules():
        embed = getattr(module, "patch_embed", None)
        if embed is not None and hasattr(module, "num_prefix_tokens") and hasattr(embed, "patch_size"):
            if hasattr(embed, "dynamic_feat_size"):  # timm: the grid of this input size (dynamic_img_size)
                grid = embed.dynamic_feat_size(tuple(size))
            else:
                ph, pw = (embed.patch_size,) * 2 if isinstance(embed.patch_size, int) else embed.patch_size
                grid = (size[0] // ph, size[1] // pw)
            return int(module.num_prefix_tokens), (int(grid[0]), int(grid[1]))
        if isinstance(getattr(module, "patch_size", None), int) and hasattr(module, "class_token") \
                and hasattr(module, "conv_proj"):  # torchvision VisionTransformer
            p = module.patch_size
            return 1, (size[0] // p, size[1] // p)
    return None


def _width(module: nn.Module) -> int | None:
    """The channel width a module's output carries, if it states one."""
    for attr in ("out_channels", "out_features", "num_features", "num_channels"):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    shape = getattr(module, "normalized_shape", None)
    return int(shape[-1]) if isinstance(shape, tuple) and len(shape) == 1 else None


def _channels_first(module: nn.Module) -> bool:
    # timm's LayerNorm2d and friends normalise axis 1 of an NCHW map
    return isinstance(module, _CHANNELS_FIRST) or type(module).__name__.endswith("Norm2d")


def _maker(model: nn.Module, name: str, module: nn.Module) -> nn.Module | None:
    """The module that states the width of ``module``'s output: its last leaf with a width (in
    registration order), or, for a parameter-free module, the nearest such leaf registered before it."""
    inside = [m for m in module.modules() if not list(m.children()) and _width(m)]
    if inside:
        return inside[-1]
    before = None
    for other_name, other in model.named_modules():
        if other_name == name:
            return before
        if not list(other.children()) and _width(other):
            before = other
    return before


def _four_d(model: nn.Module, name: str, module: nn.Module | None, shape: tuple[int, ...]) -> Grid:
    if module is None:
        return NCHW  # the network input
    c_first, c_last = shape[1], shape[3]
    maker = _maker(model, name, module)
    width = _width(maker) if maker is not None else None
    if width is not None and (width == c_first) != (width == c_last):
        return NCHW if width == c_first else Grid("nhwc")
    if width is not None and width == c_first == c_last and _channels_first(maker):
        return NCHW  # a conv or batch norm makes the map: its axis 1 is the channels
    if width is None or width not in (c_first, c_last):  # the model's widths as a whole
        widths = {_width(m) for m in model.modules() if not list(m.children())} - {None}
        if not widths:  # no layer states a width (a parameter-free model): PyTorch's own convention
            return NCHW
        if (c_first in widths) != (c_last in widths):
            return NCHW if c_first in widths else Grid("nhwc")
    raise ValueError(f"layers: {name!r} outputs shape {shape}, which reads as [N, C, H, W] or as [N, H, W, C]; "
                     f"revisal does not guess: pass layout={{{name!r}: 'nchw'}} or 'nhwc'")


def _tokens(model: nn.Module, name: str, shape: tuple[int, ...], size: tuple[int, int]) -> Grid:
    found = token_grid(model, size)
    if found is not None:
        prefix, (h, w) = found
        for p in dict.fromkeys((prefix, 0)):  # with its prefix tokens, or the patches alone (patch_embed)
            if shape[1] == p + h * w:
                return Grid("tokens", p, (h, w))
    said = "the model states no token grid" if found is None else \
        f"the model's grid for a {size[0]}×{size[1]} input is {found[1][0]}×{found[1][1]} after {found[0]} prefix tokens"
    raise ValueError(f"layers: {name!r} outputs a sequence of shape {shape}, and {said}, so its tokens have no "
                     f"known place on the image; pass layout={{{name!r}: f}} with f(t) -> [N, C, h, w]")


def resolve_layout(model: nn.Module, name: str, module: nn.Module | None, shape: tuple[int, ...],
                   size: tuple[int, int], given: Mapping[str, str | Layout] | None = None) -> Layout:
    """The layout of layer ``name``'s output of ``shape`` for an input of spatial ``size``:
    ``given[name]`` if there (checked against the shape), else read from the model; see the module
    docstring. Raises ValueError naming the layer when the layout is unknown or contradicts the shape."""
    choice = (given or {}).get(name)
    if callable(choice):
        return _checked(choice, name)
    rank = {"nchw": 4, "nhwc": 4, "tokens": 3}.get(choice, len(shape))  # type: ignore[arg-type]
    if choice is not None and (choice not in LAYOUTS or rank != len(shape)):
        raise ValueError(f"layout: {choice!r} for layer {name!r}, whose output has shape {shape}; expected one of "
                         f"{LAYOUTS} of the output's rank ([N, T, C] for tokens, 4-D otherwise) or a callable")
    if len(shape) == 3:
        return _tokens(model, name, shape, size)
    if len(shape) != 4:
        raise ValueError(f"layers: {name!r} outputs shape {shape}; a map needs [N, C, H, W], [N, H, W, C] or "
                         "tokens [N, T, C]")
    return Grid(choice) if choice is not None else _four_d(model, name, module, shape)


def _checked(reshape: Layout, name: str) -> Layout:
    def apply(t: Tensor) -> Tensor:
        out = reshape(t)
        if not isinstance(out, Tensor) or out.dim() != 4 or out.shape[0] != t.shape[0]:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"layout: the callable for layer {name!r} turned shape {tuple(t.shape)} into {got}; "
                             f"expected [{t.shape[0]}, C, h, w]")
        return out
    return apply


def check_layout_argument(layout: object) -> dict[str, str | Layout]:
    """``layout``: None or a mapping of layer name → one of :data:`LAYOUTS` or a callable."""
    if layout is None:
        return {}
    if not isinstance(layout, Mapping) or not all(isinstance(k, str) for k in layout):
        raise TypeError(f"layout: expected a mapping of layer name → {LAYOUTS} or a callable, got {layout!r}")
    bad = {k: v for k, v in layout.items() if not callable(v) and v not in LAYOUTS}
    if bad:
        raise ValueError(f"layout: expected {LAYOUTS} or a callable per layer, got {bad}")
    return dict(layout)
