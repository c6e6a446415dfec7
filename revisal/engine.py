"""``revisal.saliency``: every method at every layer from one forward and one backward pass."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .aggregations import factor_stats, working_precision
from .maps import SaliencyMaps
from .methods import Method, MethodSpec, resolve_methods
from .probes import LayerProbe, attached
from .sites import Window
from .state import preserved_state
from .validation import INPUT_LAYER, Target, check_images, check_layers, check_model, check_target, objective


def saliency(
    model: nn.Module,
    images: Tensor,
    target: Target,
    layers: Iterable[str] | str,
    methods: Iterable[MethodSpec] | MethodSpec | None = None,
    *,
    meta: object | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> SaliencyMaps:
    r"""Extract & Aggregate saliency maps (Rebuffi et al., CVPR 2020, Algorithm 1).

    Let ``y`` be the objective (by default the target logit), ``x`` the output of a requested
    module and ``g = ∂y/∂x`` its gradient. Each method is a pair (site, aggregation):

    * extract the contribution ``c_u`` of location u to the gradient of a spatially shared weight:
      ``g_u`` (bias identity), ``g_u ⊙ x_u`` (scale identity), ``g_u x_uᵀ`` (1×1 conv identity),
      ``g_u x^{in}_{u,N×N}ᵀ`` (the module's own N×N convolution);
    * aggregate it to a scalar: ``Σ_k c_k``, ``max_k |c_k|``, ``‖c‖`` or ``‖(c)₊‖``.

    E.g. NormGrad ``= ‖g_u‖·‖x_u‖``, selective NormGrad ``= ‖(g_u ⊙ x_u)₊‖``, linear approximation
    ``= Σ_k g_{ku} x_{ku}``, gradient ``= max_k |g_{ku}|``, Grad-CAM ``= (Σ_k ḡ_k x_{ku})₊`` with
    ``ḡ`` the spatial mean of ``g``. See ``revisal.METHODS`` for the registry.

    All methods at all layers come from one forward and one ``torch.autograd.grad`` call per batch
    (chunk); parameters are frozen during the call, so no weight gradient is ever computed.

    Args:
        model: any ``nn.Module``; run in eval mode during the call.
        images: float batch ``[N, C, H, W]`` on the model's device.
        target: a class id for all images, N class ids, or ``callable(model_output) -> Tensor[N]``
            giving each sample's objective (e.g. a caption's log-probability).
        layers: module names from ``model.named_modules()``; ``""`` is the network input.
        methods: names in ``revisal.METHODS``, ``Method`` objects or ``(site, aggregation)`` tuples;
            default: every built-in method that works at any layer.
        meta: reserved for meta-saliency (``revisal.MetaStep``).
        batch_size: split the batch into chunks of this size (one pass per chunk).
        progress: show a progress bar over chunks.

    Returns:
        :class:`SaliencyMaps` with one ``Tensor[N, 1, h, w]`` (float32, or float64 for a float64
        model; the layer's resolution) per
        ``(method, layer)``.

    Raises:
        TypeError / ValueError naming the offending argument (unknown layer or method, wrong rank or
        dtype, NaN/Inf input, target out of range or of the wrong length, a real-conv method at a
        layer that is not an ``nn.Conv2d``). The model is left exactly as it was, also on error.
    """
    model = check_model(model)
    images = check_images(images)
    layer_names = check_layers(model, layers)
    method_list = resolve_methods(methods)
    modules = dict(model.named_modules())
    for method in method_list:
        if method.site_spec.needs_conv:
            for name in layer_names:
                module = modules.get(name) if name != INPUT_LAYER else None
                if not isinstance(module, nn.Conv2d):
                    kind = "the network input" if module is None else type(module).__name__
                    raise ValueError(
                        f"methods: {method.name!r} uses the layer's own convolution, but layer {name!r} is "
                        f"{kind}, not an nn.Conv2d; request it only at conv layers"
                    )
    n = images.shape[0]
    ids = check_target(target, n)
    if meta is not None:
        raise NotImplementedError("meta: meta-saliency is not available yet")
    if batch_size is None:
        batch_size = n
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")

    parts = []
    with preserved_state(model):
        starts = range(0, n, batch_size)
        for start in tqdm(starts, desc="saliency", unit="batch", disable=not progress or len(starts) == 1):
            chunk = slice(start, start + batch_size)
            chunk_target = ids[chunk] if isinstance(ids, Tensor) else ids
            parts.append(_one_pass(model, images[chunk], chunk_target, layer_names, method_list, modules))
    return parts[0] if len(parts) == 1 else SaliencyMaps.concat(parts)


def _plan(layer_names: list[str], methods: list[Method], modules: dict[str, nn.Module]) -> list[LayerProbe]:
    conv_stats = tuple(
        dict.fromkeys(s for m in methods if m.site_spec.needs_conv for s in m.aggregation_spec.stats)
    )
    probes = []
    for name in layer_names:
        module = modules[name] if name != INPUT_LAYER else None
        window = Window.of_conv(module) if conv_stats and isinstance(module, nn.Conv2d) else None
        probes.append(LayerProbe(name, module, conv_window=window, conv_stats=conv_stats if window else ()))
    return probes


def _one_pass(
    model: nn.Module,
    images: Tensor,
    target: Tensor | object,
    layer_names: list[str],
    methods: list[Method],
    modules: dict[str, nn.Module],
) -> SaliencyMaps:
    n = images.shape[0]
    probes = _plan(layer_names, methods, modules)
    with attached(probes), torch.inference_mode(False), torch.enable_grad():
        x = images.clone() if images.is_inference() else images
        for probe in probes:
            if probe.module is None:
                x = probe.capture(x.detach())
        output = model(x)
        y = objective(output, target, n)  # type: ignore[arg-type]
        for probe in probes:
            if probe.output is None:
                raise ValueError(f"layers: module {probe.name!r} did not run in the forward pass")
            if probe.output.shape[0] != n:
                raise ValueError(f"layers: {probe.name!r} outputs batch size {probe.output.shape[0]}, expected {n}")
        if not y.requires_grad:
            raise ValueError("target: the objective does not depend on any requested layer")
        grads = torch.autograd.grad(y.sum(), [p.output for p in probes], allow_unused=True)

    maps: dict[tuple[str, str], Tensor] = {}
    with torch.no_grad():
        for probe, g in zip(probes, grads):
            if g is None:
                raise ValueError(f"layers: the objective does not depend on layer {probe.name!r}")
            for method_name, value in _layer_maps(probe, g, methods).items():
                maps[method_name, probe.name] = value
    return SaliencyMaps(maps, [m.name for m in methods], layer_names)


def _layer_maps(probe: LayerProbe, g: Tensor, methods: list[Method]) -> dict[str, Tensor]:
    """Every method's map at one layer, sharing contributions and statistics between methods."""
    g = working_precision(g)
    x = working_precision(probe.output.detach())  # type: ignore[union-attr]
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
        site, agg = method.site_spec, method.aggregation_spec
        if site.kind == "vector":
            if site.name not in contributions:
                contributions[site.name] = site.contribution(g, x)  # type: ignore[misc]
            value = agg.reduce(contributions[site.name])
        else:
            window = site.window(probe.module)  # type: ignore[misc]
            g_stats = {s: g_stat(s, window.groups) for s in agg.stats}
            if site.activation == "input":
                x_stats = {s: probe.input_stats[s] for s in agg.stats}
            else:
                x_stats = {s: x_stat(s, window) for s in agg.stats}
            got = next(iter(x_stats.values())).shape[-2:]
            if got != g.shape[-2:]:
                raise ValueError(
                    f"methods: {method.name!r} at {probe.name!r}: the conv window gives a {tuple(got)} grid "
                    f"but the gradient is {tuple(g.shape[-2:])}; the module pads or strides in a way "
                    "nn.Conv2d's attributes do not describe"
                )
            value = agg.combine(g_stats, x_stats)
        out[method.name] = value.unsqueeze(1)
    return out
