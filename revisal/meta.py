"""Meta-saliency (paper § 4.4): explain the model after one inner SGD step on each sample's loss.

For a sample x with loss ℓ (cross-entropy to the target class by default), the paper minimises
``L(θ, x) = ℓ(θ − ε∇θℓ(θ, x), x)``; a first-order expansion and a backward finite difference with
step ``h = 2ε`` give ``∇θ L ≈ ∇θ' ℓ(θ', x)`` with ``θ' = θ − 2ε ∇θ ℓ(θ, x)``: one SGD step of learning
rate 2ε. Any saliency method is then computed at θ'. With ``ascent=True`` the step goes uphill,
``θ' = θ + 2ε ∇θ ℓ`` ("negative" meta-saliency, paper Fig. 12). ε → 0 recovers the plain map.

Every sample gets its own θ'. Two ways to compute them, chosen by :attr:`MetaStep.batching`:

* ``"vmap"``: per-sample gradients with ``torch.func.vmap(torch.func.grad(...))`` and the second
  pass vmapped over the per-sample parameters (chunked to ``memory_budget``); the invasive
  excitation rules are not vmappable and fall back to the loop for their pass. The first sample
  also runs through the loop first, so that both ways refuse bad layers and targets alike;
* ``"loop"``: per sample, the gradient step, then the saliency passes with the model's parameters
  holding θ' (their ``.data`` swapped in, and the original data swapped back, bit for bit).

``"auto"`` (default) uses ``vmap`` on accelerators and ``loop`` on the CPU, where vmapped
convolutions with per-sample weights run as grouped convolutions and measured slower than the loop
(see ``benchmarks/meta.py``). The model comes back unchanged (``vmap`` never modifies it: its
parameters are swapped in with ``torch.func.functional_call``); BatchNorm uses its running
statistics and dropout is off.
"""

from __future__ import annotations

import decimal
import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .aggregations import factor_stats
from .probes import module_input
from .rules import Rule
from .sites import Window
from .validation import INPUT_LAYER, check_class_ids, objective

Maps = dict[tuple[str, str], Tensor]


@dataclass(frozen=True)
class MetaStep:
    """One inner SGD step before explaining: ``θ' = θ ∓ 2·lr·∇θ ℓ(θ, x)`` per sample.

    Attributes:
        lr: the paper's ε (its class-sensitivity study uses 1e-3); the step is ``2·lr``.
        ascent: step uphill (``θ + 2ε∇ℓ``) instead of downhill.
        loss: ``callable(output, target) -> Tensor[N]`` per-sample loss; default: cross-entropy to
            the target class ids, or minus the objective for a callable target.
        batching: ``"auto"``, ``"vmap"`` or ``"loop"`` (see the module docstring).
        memory_budget: bytes allowed for per-sample parameter copies at once (``vmap`` chunks).
    """

    lr: float = 1e-3
    ascent: bool = False
    loss: Callable[[object, object], Tensor] | None = None
    batching: Literal["auto", "vmap", "loop"] = "auto"
    memory_budget: float = 2 * 2**30

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _real(self.lr, "lr"))
        if not math.isfinite(self.lr) or self.lr < 0:
            raise ValueError(f"lr: expected a finite number ≥ 0, got {self.lr!r}")
        if not isinstance(self.ascent, (bool, np.bool_)):
            raise TypeError(f"ascent: expected a bool, got {type(self.ascent).__name__}")
        object.__setattr__(self, "ascent", bool(self.ascent))
        if self.batching not in ("auto", "vmap", "loop"):
            raise ValueError(f"batching: expected 'auto', 'vmap' or 'loop', got {self.batching!r}")
        object.__setattr__(self, "memory_budget", _real(self.memory_budget, "memory_budget"))
        if not self.memory_budget > 0:
            raise ValueError(f"memory_budget: expected a positive number of bytes, got {self.memory_budget!r}")
        if self.loss is not None and not callable(self.loss):
            raise TypeError(f"loss: expected a callable(output, target) -> Tensor[N], got {type(self.loss).__name__}")

    @property
    def signed_step(self) -> float:
        """The multiplier of ∇θℓ in θ' = θ + signed_step·∇θℓ."""
        return (2.0 if self.ascent else -2.0) * self.lr


def _real(value: object, name: str) -> float:
    """Any real number (Python, NumPy, a one-element tensor, a Fraction, a Decimal) as a float; not a bool."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype.is_complex and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, decimal.Decimal)):
        raise TypeError(f"{name}: expected a real number, got {value!r} of type {type(value).__name__}")
    return float(value)


def per_sample_loss(meta: MetaStep, output: object, target: Tensor | Callable, n: int, validate: bool = True) -> Tensor:
    """ℓ for each sample: the user's loss, minus a callable objective, or cross-entropy
    (``validate=False`` inside vmap, where class ids were checked beforehand)."""
    if meta.loss is not None:
        value = meta.loss(output, target)
    elif callable(target) and not isinstance(target, Tensor):
        value = -objective(output, target, n)
    else:
        if not isinstance(output, Tensor) or output.dim() != 2:
            raise ValueError("meta: class-id targets need a model output [N, classes]; pass MetaStep(loss=...)")
        if validate:
            check_class_ids(target, output.shape[1])
        value = F.cross_entropy(output, target.to(output.device), reduction="none")
    if validate and (not isinstance(value, Tensor) or value.shape != (n,)):
        raise ValueError(f"meta: the per-sample loss must be a Tensor of shape [{n}]")
    return value


def meta_maps(model: nn.Module, images: Tensor, target: Tensor | Callable, plan, meta: MetaStep,
              trainable: list[str]) -> Maps:
    """Maps of every method in ``plan`` at each sample's own stepped parameters θ'."""
    if not trainable:
        raise ValueError("meta: the model has no parameter with requires_grad=True, so there is nothing to step")
    batching = meta.batching
    if batching == "auto":
        batching = "loop" if images.device.type == "cpu" else "vmap"
    params = {name: p.detach() for name, p in model.named_parameters() if name in trainable}
    if batching == "loop":
        return _loop(model, images, target, plan, meta, params)
    # The loop on the first sample checks everything the loop checks (modules that never run or
    # run twice, outputs that are not feature maps, targets, the loss) with the loop's errors.
    _loop(model, images[:1], _sample(target, 0), plan, meta, params)
    param_bytes = sum(p.numel() * p.element_size() for p in params.values())
    chunk = max(1, int(meta.memory_budget // max(2 * param_bytes, 1)))
    parts = []
    try:
        for start in range(0, images.shape[0], chunk):
            sl = slice(start, start + chunk)
            parts.append(_vmapped(model, images[sl], target[sl] if isinstance(target, Tensor) else target, plan, meta,
                                  params))
    except RuntimeError as error:
        if "saved tensor hooks" not in str(error):
            raise
        if meta.batching == "auto":
            return _loop(model, images, target, plan, meta, params)
        raise ValueError(
            "meta: batching='vmap' cannot differentiate this model: torch.func does not support the saved-tensor "
            "hooks that torch.utils.checkpoint (use_reentrant=False) and torch.autograd.graph.save_on_cpu "
            "install; pass MetaStep(batching='loop')"
        ) from error
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def _sample(target: Tensor | Callable, i: int) -> Tensor | Callable:
    return target[i : i + 1] if isinstance(target, Tensor) else target


@contextmanager
def _unfrozen(parameters: list[Tensor]) -> Iterator[None]:
    """Let autograd differentiate these (frozen by the saliency call) parameters for a moment.
    ``torch.autograd.grad`` never writes ``.grad``; the caller's flags are restored on exit."""
    try:
        for p in parameters:
            p.requires_grad_(True)
        yield
    finally:
        for p in parameters:
            p.requires_grad_(False)


@contextmanager
def _stepped(parameters: list[Tensor], grads: tuple, step: float) -> Iterator[None]:
    """The parameters hold ``θ' = θ + step·∇θℓ`` during the block: each one's ``.data`` is swapped
    for the stepped tensor, and the original data (not a copy) is swapped back on exit, bit for bit.
    Everything that runs the model then sees θ', also a checkpointed block re-run in the backward."""
    saved = [p.data for p in parameters]
    try:
        for p, g in zip(parameters, grads):
            if g is not None:
                p.data = p.data + step * g
        yield
    finally:
        for p, data in zip(parameters, saved):
            p.data = data


def _loop(model, images, target, plan, meta, params) -> Maps:
    parts = []
    own = [p for name, p in model.named_parameters() if name in params]  # same order as params
    for i in range(images.shape[0]):
        x, t = images[i : i + 1], _sample(target, i)
        # The model's own parameters (not a functional_call): measured ~15% faster on CPU.
        with torch.inference_mode(False), torch.enable_grad(), _unfrozen(own):
            loss = per_sample_loss(meta, model(x.detach().clone()), t, 1)[0]  # a forward may write to its input
            grads = torch.autograd.grad(loss, own, allow_unused=True)
        with _stepped(own, grads, meta.signed_step):
            parts.append(plan.run(model, x, t))
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def _vmapped(model, images, target, plan, meta, params) -> Maps:
    n = images.shape[0]
    tdim = 0 if isinstance(target, Tensor) else None
    shapes, output = _output_shapes(model, images[:1], plan.layers, plan.modules)
    if isinstance(target, Tensor):
        check_class_ids(target, output.shape[1])

    def loss_one(p, x, t):
        out = functional_call(model, p, (x[None].clone(),))  # a forward may write to its input
        return per_sample_loss(meta, out, t[None] if isinstance(t, Tensor) else t, 1, validate=False)[0]

    with torch.inference_mode(False):
        g = vmap(grad(loss_one), in_dims=(None, 0, tdim))(params, images, target)
    stepped = {k: v[None] + meta.signed_step * g[k] for k, v in params.items()}

    maps: Maps = {}
    for rule, methods in plan.by_rule.items():
        if rule in ("excitation", "contrastive_excitation"):  # nested autograd in backward: not vmappable
            for i in range(n):
                p_i = {k: v[i] for k, v in stepped.items()}
                part = _run_rule(plan, model, images[i : i + 1], _sample(target, i), rule, methods, p_i)
                for key, value in part.items():
                    maps.setdefault(key, []).append(value)  # type: ignore[arg-type]
            continue
        maps.update(_vmapped_pass(model, plan, rule, methods, stepped, images, target, tdim))
    return {k: torch.cat(v) if isinstance(v, list) else v for k, v in maps.items()}


def _run_rule(plan, model, x, t, rule, methods, params) -> Maps:
    saved, plan.by_rule = plan.by_rule, {rule: methods}
    try:
        return plan.run(model, x, t, call=lambda xx: functional_call(model, params, (xx,)))
    finally:
        plan.by_rule = saved


def _vmapped_pass(model, plan, rule_name, methods, stepped, images, target, tdim) -> Maps:
    """One rule's maps for all samples at once: the gradient at each layer output is the gradient
    with respect to a zero perturbation δ added there, taken with ``torch.func.grad`` under vmap."""
    layers, modules = plan.layers, plan.modules
    conv_stats = tuple(dict.fromkeys(s for m in methods if m.site_spec.needs_conv for s in m.aggregation_spec.stats))
    windows = {name: Window.of_conv(modules[name]) for name in layers
               if conv_stats and name != INPUT_LAYER and isinstance(modules[name], nn.Conv2d)}
    shapes, _ = _output_shapes(model, images[:1], layers, modules)

    def one(deltas, p, x, t):
        acts, stats, handles = {}, {}, []

        def hook_for(name):
            def hook(module, args, kwargs, out):
                acts[name] = out
                if name in windows:
                    w = windows[name]
                    stats[name] = w.pool_stats(factor_stats(module_input(module, args, kwargs), conv_stats, w.groups))
                return out + deltas[name]
            return hook

        try:
            for name in layers:
                if name != INPUT_LAYER:
                    handles.append(modules[name].register_forward_hook(hook_for(name), with_kwargs=True))
            xin = x[None].clone()  # a forward may write to its input
            if INPUT_LAYER in layers:
                acts[INPUT_LAYER] = xin
                xin = xin + deltas[INPUT_LAYER]
            with Rule(rule_name).active(model):
                out = functional_call(model, p, (xin,))
        finally:
            for h in handles:
                h.remove()
        if isinstance(t, Tensor):
            y = out.gather(1, t.reshape(1, 1)).reshape(())
        else:
            y = t(out).reshape(())
        return y, (acts, stats)

    zeros = {name: torch.zeros(shape, dtype=images.dtype, device=images.device) for name, shape in shapes.items()}
    with torch.inference_mode(False):
        g, (acts, stats) = vmap(grad(one, has_aux=True), in_dims=(None, 0, 0, tdim))(zeros, stepped, images, target)
    maps: Maps = {}
    from .engine import layer_maps

    with torch.no_grad():
        for name in layers:
            module = modules[name] if name != INPUT_LAYER else None
            layer_stats = {k: v.squeeze(1) for k, v in stats.get(name, {}).items()}
            for method_name, value in layer_maps(module, acts[name].squeeze(1), layer_stats, g[name].squeeze(1), methods).items():
                maps[method_name, name] = value
    return maps


def _output_shapes(model, x, layers, modules) -> tuple[dict[str, torch.Size], object]:
    """Each layer's output shape for a batch of one, and the model's output."""
    shapes, handles = {}, []

    def hook_for(name):
        def hook(module, args, out):
            shapes[name] = out.shape
        return hook

    try:
        for name in layers:
            if name == INPUT_LAYER:
                shapes[name] = x.shape
            else:
                handles.append(modules[name].register_forward_hook(hook_for(name)))
        with torch.no_grad():
            output = model(x.clone())
    finally:
        for h in handles:
            h.remove()
    return shapes, output
