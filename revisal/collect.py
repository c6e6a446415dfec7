"""``collect``: the one forward and backward pass behind every map, and the per-rule loop over it.

``collect(model, images, target, layers, rule)`` runs the model once under ``rule`` with a probe at
each layer, computes the objective outside the rule, and back-propagates once (contrastive EB:
twice, its rule owns that). It returns, per layer, what the maps need: the output ``x``, its
gradient ``g = ∂y/∂x`` and, for real-layer sites, pooled statistics of the module input, all on the
``[N, C, h, w]`` grid of the layer's layout (:mod:`revisal.layouts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call

from revisal.layouts import Layout, resolve_layout
from revisal.maps import layer_maps
from revisal.methods import Method
from revisal.probes import LayerProbe, hooked
from revisal.rules import Constants, PassState, Rule
from revisal.sites import Window
from revisal.validation import INPUT_LAYER, objective

Maps = dict[tuple[str, str], Tensor]


class Collected(NamedTuple):
    output: Tensor  # x, the layer's output on its [N, C, h, w] grid
    grad: Tensor  # g = ∂y/∂x under the rule, on the same grid
    stats: dict[str, Tensor]  # pooled statistics of the module input (real-layer sites)
    raw: Tensor  # the layer's output as the module returned it (a vmapped pass's perturbation shapes)


def collect(model: nn.Module, images: Tensor, target: Tensor | Callable, layers: list[str], rule: Rule,
            params: dict[str, Tensor] | None = None, *, stats: tuple[str, ...] = (),
            zeros: dict[str, Tensor] | None = None,
            layouts: Mapping[str, str | Layout] | None = None) -> dict[str, Collected]:
    """One forward and one backward (per the rule) of ``model`` on ``images``.

    ``params`` replace the model's parameters (``torch.func.functional_call``); ``stats`` are the
    input statistics real-conv sites need; ``zeros`` (one zero tensor per layer, of its output's
    shape) switch to ``torch.func.grad`` so that the pass runs under ``torch.func.vmap``; ``layouts``
    override the layout of a layer's output (:func:`revisal.layouts.resolve_layout`).
    """
    n, modules = images.shape[0], dict(model.named_modules())
    names = list(dict.fromkeys([*layers, *rule.extra_layers()]))
    clock = [0, 0]
    probes = []
    size = tuple(images.shape[-2:])
    for name in names:
        module = modules[name] if name != INPUT_LAYER else None
        window = Window.of_layer(module) if stats and isinstance(module, (nn.Conv2d, nn.Linear)) and name in layers \
            else None
        resolve = (lambda shape, name=name, module=module: resolve_layout(model, name, module, shape, size, layouts))
        probes.append(LayerProbe(name, module, window, stats if window else (), name in layers, clock=clock,
                                 resolve=resolve))
    state = PassState()
    constants = Constants((*model.parameters(), *model.buffers(), *(params or {}).values()))

    def run(deltas: dict[str, Tensor] | None):
        x = images.detach().clone()  # the model may write to its input: every pass starts afresh
        for probe in probes:
            probe.delta = None if deltas is None else deltas[probe.name]
            if probe.module is None:
                x = probe.capture(x)
        with rule.mode(state, constants):
            out = model(x) if params is None else functional_call(model, params, (x,))
        state.forward_done = clock[1] = True
        for probe in probes:
            if probe.output is None:
                raise ValueError(f"layers: module {probe.name!r} did not run in the forward pass")
            if probe.output.shape[0] != n:
                raise ValueError(f"layers: {probe.name!r} outputs batch size {probe.output.shape[0]}, expected {n}")
        y = objective(out, target, n)  # outside the rule: the objective's ops are not the network's
        return y.sum(), {p.name: (p.output.detach(), p.input_stats) for p in probes if p.name in layers}

    with torch.inference_mode(False), torch.enable_grad(), rule.active(model, state), \
            hooked((p.module, "forward", p.hook) for p in probes if p.module is not None):
        if zeros is not None:
            grads, kept = torch.func.grad(run, has_aux=True)(zeros)
        else:
            y, kept = run(None)
            if not y.requires_grad:
                raise ValueError("target: the objective does not depend on any requested layer")
            grads = dict(zip(names, rule.gradients(y, probes, state)))
    out, by_name = {}, {p.name: p for p in probes}
    for name in layers:
        if grads[name] is None:
            raise ValueError(f"layers: the objective does not depend on layer {name!r}")
        (output, input_stats), layout = kept[name], by_name[name].layout
        out[name] = Collected(layout(output), layout(grads[name].detach()), input_stats, output)
    return out


@dataclass
class Request:
    """What one call computes: layers, methods grouped by backward rule, the contrast layer."""

    model: nn.Module
    layers: list[str]
    methods: list[Method]
    contrast_layer: str | None = None
    layouts: dict[str, str | Layout] = field(default_factory=dict)  # per-layer overrides (revisal.layouts)
    by_rule: dict[Rule, list[Method]] = field(init=False)

    def __post_init__(self) -> None:
        self.modules = dict(self.model.named_modules())
        groups: dict[Rule, list[Method]] = {}
        for m in self.methods:
            groups.setdefault(m.rule, []).append(m)
        self.by_rule = {rule.configured(self.contrast_layer, ", ".join(repr(m.name) for m in methods)): methods
                        for rule, methods in groups.items()}

    @staticmethod
    def stats(methods: list[Method]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for m in methods if m.site.needs_conv for s in m.aggregation.stats))

    def maps(self, records: dict[str, Collected], methods: list[Method], batched: bool = False) -> Maps:
        """Every method's map at every layer (``batched``: records carry a vmap dimension of 1)."""
        maps: Maps = {}
        with torch.no_grad():
            for name, (x, g, stats, _) in records.items():
                if batched:
                    x, g, stats = x.squeeze(1), g.squeeze(1), {k: v.squeeze(1) for k, v in stats.items()}
                module = self.modules[name] if name != INPUT_LAYER else None
                for method, value in layer_maps(module, x, stats, g, methods).items():
                    maps[method, name] = value
        return maps

    def run(self, images: Tensor, target: Tensor | Callable, params: dict[str, Tensor] | None = None,
            rules: list[Rule] | None = None) -> tuple[Maps, dict[str, Tensor]]:
        """All maps of a batch: one :func:`collect` per backward rule, then :func:`layer_maps`; with
        each layer's output of the last pass (what a vmapped pass needs for its shapes)."""
        maps: Maps = {}
        outputs: dict[str, Tensor] = {}
        for rule in rules or self.by_rule:
            methods = self.by_rule[rule]
            records = collect(self.model, images, target, self.layers, rule, params, stats=self.stats(methods),
                              layouts=self.layouts)
            maps.update(self.maps(records, methods))
            outputs = {name: r.raw for name, r in records.items()}
        return maps, outputs
