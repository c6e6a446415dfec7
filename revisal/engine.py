"""``revisal.saliency``: every method at every layer from one forward and one backward per rule."""

from __future__ import annotations

import numbers
from contextlib import nullcontext
from typing import Callable, Iterable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .aggregations import factor_stats, working_precision
from .maps import SaliencyMaps
from .methods import Method, MethodSpec, resolve_methods
from .probes import LayerProbe, attached, recomputation_refused
from .rules import Rule
from .sites import Window
from .state import preserved_state
from .validation import (INPUT_LAYER, Target, check_finite_maps, check_images, check_images_fit_model, check_layers,
                         check_model, check_target, objective)

Maps = dict[tuple[str, str], Tensor]


def saliency(
    model: nn.Module,
    images: Tensor,
    target: Target,
    layers: Iterable[str] | str,
    methods: Iterable[MethodSpec] | MethodSpec | None = None,
    *,
    meta: object | None = None,
    contrast_layer: str | None = None,
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
    ``ḡ`` the spatial mean of ``g``. The invasive baselines (guided backprop, deconvnet, (contrastive)
    excitation backprop) use the same sites and aggregations on a pseudo-gradient from modified
    backward rules. See ``revisal.METHODS`` for the registry.

    All non-invasive methods at all layers come from one forward and one ``torch.autograd.grad``
    call per batch (chunk); each backward rule the invasive methods use costs one more pass.
    Parameters are frozen during the call, so no weight gradient is ever computed.

    Args:
        model: any ``nn.Module``; run in eval mode during the call. float16 and bfloat16 models
            work (the excitation rules compute their ratios in float32).
        images: float batch ``[N, C, H, W]`` on the model's device, of its parameters' dtype (any
            dtype under autocast). The caller's tensor is never written, and every pass starts from
            its values, also when the model writes to its input in place.
        target: a class id for all images, N class ids (integers of any type), a class name or N
            names looked up in ``model.classes`` (a sequence of class names in output order, as the
            zoo's models have), or ``callable(model_output) -> Tensor[N]`` giving each sample's
            objective (e.g. a caption's log-probability).
        layers: a module name from ``model.named_modules()`` or any iterable of them (list, tuple,
            generator, numpy array...); ``""`` is the network input.
        methods: names in ``revisal.METHODS``, ``Method`` objects or ``(site, aggregation)`` tuples,
            one or any iterable of them; default: every built-in non-invasive method that works at
            any layer.
        meta: a :class:`revisal.MetaStep` for meta-saliency (maps computed after one inner SGD step
            per sample, paper § 4.4).
        contrast_layer: contrastive EB subtracts the dual excitation at this layer and every layer
            below it (default: everywhere below the classifier, i.e. the last Linear/Conv2d).
        batch_size: split the batch into chunks of this size (one pass per chunk and rule).
        progress: show a progress bar over chunks.

    Returns:
        :class:`SaliencyMaps` with one ``Tensor[N, 1, h, w]`` (float32, or float64 for a float64
        model; the layer's resolution) per ``(method, layer)``.

    Raises:
        TypeError / ValueError naming the offending argument, before any compute where it can be
        known then (unknown layer or method, wrong rank, images of another dtype or device than the
        model, NaN/Inf input, unknown class name, target out of range or of the wrong length, a
        real-conv method at a layer that is not an ``nn.Conv2d``), or after the forward pass (a
        layer that does not run, runs twice or runs without gradients, e.g. in a reentrant
        ``torch.utils.checkpoint`` block; an invasive method through a checkpointed block).
        :class:`revisal.NonFiniteMapError` (a ``FloatingPointError`` and a ``ValueError``) if a map
        has NaN or Inf values. The model is left exactly as it was, also on error.
    """
    from .meta import MetaStep, meta_maps

    model = check_model(model)
    images = check_images(images)
    check_images_fit_model(model, images)
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
    if contrast_layer is not None:
        if not isinstance(contrast_layer, str):
            raise TypeError(f"contrast_layer: expected a module name (str) or None, got {type(contrast_layer).__name__}")
        contrast_layer = check_layers(model, contrast_layer, "contrast_layer")[0]
    n = images.shape[0]
    ids = check_target(target, n, getattr(model, "classes", None))
    if meta is not None and not isinstance(meta, MetaStep):
        raise TypeError(f"meta: expected a revisal.MetaStep or None, got {type(meta).__name__}")
    if batch_size is None:
        batch_size = n
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    batch_size = int(batch_size)

    plan = Plan(model, layer_names, method_list, contrast_layer)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]  # before freezing
    hint = "" if meta is None else f"; MetaStep(lr={meta.lr:g}) may step too far, try a smaller lr"
    parts = []
    with preserved_state(model), torch.inference_mode(False):  # images made under inference mode work too
        starts = range(0, n, batch_size)
        for start in tqdm(starts, desc="saliency", unit="batch", disable=not progress or len(starts) == 1):
            chunk = slice(start, start + batch_size)
            # cloned: a normal tensor (the loss saves it for backward) also when called under inference mode
            chunk_target = ids[chunk].clone() if isinstance(ids, Tensor) else ids
            if meta is None:
                maps = plan.run(model, images[chunk], chunk_target)
            else:
                maps = meta_maps(model, images[chunk], chunk_target, plan, meta, trainable)
            check_finite_maps(maps, hint)
            parts.append(SaliencyMaps(maps, [m.name for m in method_list], layer_names))
    return parts[0] if len(parts) == 1 else SaliencyMaps.concat(parts)


class Plan:
    """What one call computes: the requested layers and, per backward rule, its methods."""

    def __init__(self, model: nn.Module, layers: list[str], methods: list[Method], contrast_layer: str | None):
        self.model, self.layers, self.methods, self.contrast_layer = model, layers, methods, contrast_layer
        self.modules = dict(model.named_modules())
        self.by_rule: dict[str, list[Method]] = {}
        for m in methods:
            self.by_rule.setdefault(m.rule, []).append(m)

    def run(self, model: nn.Module, images: Tensor, target: Tensor | Callable,
            call: Callable[[Tensor], object] | None = None) -> Maps:
        """All maps for one chunk: one pass per backward rule. ``call`` replaces ``model(x)`` (e.g. a
        ``functional_call`` with other parameters); hooks on ``model``'s modules still apply."""
        maps: Maps = {}
        for rule, methods in self.by_rule.items():
            maps.update(self._pass(model, call or model, images, target, Rule(rule), methods))
        return maps

    def probes(self, methods: list[Method], contrastive: bool) -> list[LayerProbe]:
        conv_stats = tuple(dict.fromkeys(s for m in methods if m.site_spec.needs_conv for s in m.aggregation_spec.stats))
        names = list(self.layers)
        if contrastive and self.contrast_layer is not None and self.contrast_layer not in names:
            names.append(self.contrast_layer)
        probes = []
        for name in names:
            module = self.modules[name] if name != INPUT_LAYER else None
            window = Window.of_conv(module) if conv_stats and isinstance(module, nn.Conv2d) else None
            probes.append(LayerProbe(name, module, conv_window=window, conv_stats=conv_stats if window else (),
                                     feature_map=name in self.layers))
        return probes

    def _pass(self, model: nn.Module, call: Callable, images: Tensor, target, rule: Rule,
              methods: list[Method]) -> Maps:
        n = images.shape[0]
        probes = self.probes(methods, rule.contrastive)
        with attached(probes) as clock, torch.inference_mode(False), torch.enable_grad():
            x = images.detach().clone()  # the model may write to its input: every pass starts afresh
            with rule.active(model):
                for probe in probes:
                    if probe.module is None:
                        x = probe.capture(x)
                y = objective(call(x), target, n)  # type: ignore[arg-type]
            clock.forward_done = True
            for probe in probes:
                if probe.output is None:
                    raise ValueError(f"layers: module {probe.name!r} did not run in the forward pass")
                if probe.output.shape[0] != n:
                    raise ValueError(f"layers: {probe.name!r} outputs batch size {probe.output.shape[0]}, expected {n}")
            if not y.requires_grad:
                raise ValueError("target: the objective does not depend on any requested layer")
            tensors = [p.output for p in probes]
            # An invasive rule's modified backward cannot reach a forward that checkpointing re-runs.
            with recomputation_refused(model, f"methods: {methods[0].name!r} ({rule.name} backprop)") \
                    if rule.name != "gradient" else nullcontext():
                grads = list(torch.autograd.grad(y.sum(), tensors, allow_unused=True, retain_graph=rule.contrastive))
                if rule.contrastive:
                    rule.state.dual = True  # the same backward with the classifier's weights negated
                    dual = torch.autograd.grad(y.sum(), tensors, allow_unused=True)
                    limit = next((p.order for p in probes if p.name == self.contrast_layer), float("inf"))
                    grads = [g if g is None or d is None or p.order > limit else g - d
                             for g, d, p in zip(grads, dual, probes)]

        maps: Maps = {}
        with torch.no_grad():
            for probe, g in zip(probes, grads):
                if probe.name not in self.layers:
                    continue  # the contrast layer, probed only for its place in the forward order
                if g is None:
                    raise ValueError(f"layers: the objective does not depend on layer {probe.name!r}")
                for method_name, value in layer_maps(probe.module, probe.output, probe.input_stats, g, methods).items():
                    maps[method_name, probe.name] = value
        return maps


def layer_maps(module: nn.Module | None, output: Tensor, input_stats: dict[str, Tensor], g: Tensor,
               methods: list[Method]) -> dict[str, Tensor]:
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
        site, agg = method.site_spec, method.aggregation_spec
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
