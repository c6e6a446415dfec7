"""Meta-saliency (paper § 4.4): explain the model after one inner SGD step on each sample's loss.

For a sample x with loss ℓ (cross-entropy to the target class by default), the paper minimises
``L(θ, x) = ℓ(θ − ε∇θℓ(θ, x), x)``; a first-order expansion and a backward finite difference with
step ``h = 2ε`` give ``∇θ L ≈ ∇θ' ℓ(θ', x)`` with ``θ' = θ − 2ε ∇θ ℓ(θ, x)``: one SGD step of learning
rate 2ε. Any saliency method is then computed at θ'. With ``ascent=True`` the step goes uphill,
``θ' = θ + 2ε ∇θ ℓ`` ("negative" meta-saliency, paper Fig. 12). ε → 0 recovers the plain map.

Every sample gets its own θ'. Two ways to compute them, chosen by :attr:`MetaStep.batching`:

* ``"loop"``: per sample, the gradient step, then :meth:`Request.run` (one :func:`collect` per
  rule) with the model's parameters holding θ' (their ``.data`` swapped in and back, bit for bit);
* ``"vmap"``: the first sample as in the loop (so that both ways refuse bad layers and targets
  alike, and to learn each layer's output shape), then per-sample gradients with
  ``vmap(grad(ℓ))`` and :func:`collect` vmapped over the per-sample parameters (chunked to
  ``memory_budget``); the excitation rules nest autograd in their backward and loop over
  ``collect`` with each sample's parameters.

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
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

from revisal.collect import Request, collect
from revisal.validation import check_class_ids, objective

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


def meta_maps(request: Request, images: Tensor, target: Tensor | Callable, meta: MetaStep, trainable: list[str]) -> Maps:
    """Maps of every method in ``request`` at each sample's own stepped parameters θ'."""
    if not trainable:
        raise ValueError("meta: the model has no parameter with requires_grad=True, so there is nothing to step")
    model = request.model
    own = [p for name, p in model.named_parameters() if name in trainable]
    batching = meta.batching
    if batching == "auto":
        batching = "loop" if images.device.type == "cpu" else "vmap"
    # vmap: the loop on the first sample checks everything the loop checks (modules that never run
    # or run twice, outputs that are not feature maps, targets, the loss) with the loop's errors.
    parts, classes = [], 0
    for i in range(images.shape[0] if batching == "loop" else 1):
        x, t = images[i : i + 1], _sample(target, i)
        # The model's own parameters (not a functional_call): measured ~15% faster on CPU.
        with torch.inference_mode(False), torch.enable_grad(), _unfrozen(own):
            output = model(x.detach().clone())  # a forward may write to its input
            grads = torch.autograd.grad(per_sample_loss(meta, output, t, 1)[0], own, allow_unused=True)
        with _stepped(own, grads, meta.signed_step):
            maps, outputs = request.run(x, t)
        parts.append(maps)
        classes = output.shape[-1]
    if batching == "vmap" and images.shape[0] > 1:
        if isinstance(target, Tensor):
            check_class_ids(target, classes)
        params = {name: p.detach() for name, p in model.named_parameters() if name in trainable}
        chunk = max(1, int(meta.memory_budget // max(2 * sum(p.numel() * p.element_size() for p in own), 1)))
        try:
            for start in range(1, images.shape[0], chunk):
                sl = slice(start, start + chunk)
                parts.append(_vmapped(request, images[sl], target[sl] if isinstance(target, Tensor) else target,
                                      meta, params, outputs))
        except RuntimeError as error:
            if "saved tensor hooks" not in str(error):
                raise
            if meta.batching == "auto":
                return meta_maps(request, images, target, replace(meta, batching="loop"), trainable)
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


def _objective(t: Tensor | Callable) -> Callable:
    return (lambda out: out.gather(1, t.reshape(1, 1)).reshape(1)) if isinstance(t, Tensor) else t


def _vmapped(request: Request, images: Tensor, target: Tensor | Callable, meta: MetaStep,
             params: dict[str, Tensor], outputs: dict[str, Tensor]) -> Maps:
    """Per-sample gradients with ``vmap(grad(ℓ))``, then :func:`collect` vmapped over θ' for the rules
    that allow it (the excitation rules nest autograd in their backward: a loop of ``collect``).
    ``outputs``: each layer's output for one sample (the looped first sample's), for the shapes of
    the zero perturbations the vmapped pass differentiates at."""
    model, n = request.model, images.shape[0]
    tdim = 0 if isinstance(target, Tensor) else None

    def loss_one(p, x, t):
        out = functional_call(model, p, (x[None].clone(),))  # a forward may write to its input
        return per_sample_loss(meta, out, t[None] if isinstance(t, Tensor) else t, 1, validate=False)[0]

    with torch.inference_mode(False):
        g = vmap(grad(loss_one), in_dims=(None, 0, tdim))(params, images, target)
    stepped = {k: v[None] + meta.signed_step * g[k] for k, v in params.items()}
    looped = [rule for rule in request.by_rule if not rule.vmappable]
    maps: Maps = {}
    for i in range(n if looped else 0):
        p_i = {k: v[i] for k, v in stepped.items()}
        for key, value in request.run(images[i : i + 1], _sample(target, i), p_i, looped)[0].items():
            maps.setdefault(key, []).append(value)  # type: ignore[arg-type]
    for rule, methods in request.by_rule.items():
        if rule.vmappable:
            zeros = {name: torch.zeros_like(x) for name, x in outputs.items()}
            one = lambda p, x, t: collect(model, x[None], _objective(t), request.layers, rule, p,  # noqa: E731
                                          stats=request.stats(methods), zeros=zeros, layouts=request.layouts)
            with torch.inference_mode(False):
                records = vmap(one, in_dims=(0, 0, tdim))(stepped, images, target)
            maps.update(request.maps(records, methods, batched=True))
    return {k: torch.cat(v) if isinstance(v, list) else v for k, v in maps.items()}
