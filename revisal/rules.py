"""Backward rules: each one an object that owns its backward pass.

While an invasive rule's mode is active (during the model call only, not the objective), every torch
function is looked up in :data:`revisal.ops.OPS` and, by kind, either keeps its ordinary gradient or
runs as an autograd Function whose forward is unchanged and whose backward is the rule; a bare
in-place call writes the rule's result back into its argument. A function the rule does not know
whose result carries the backward signal is refused with the function's and the module's names.

* **plain**: ordinary backpropagation (the non-invasive methods).
* **guided** (Springenberg et al.): ``ReLU*(x, p) = p₊ · 1[lo < x < hi]`` (ReLU, ReLU6, clamp at 0).
* **deconvnet** (Zeiler & Fergus): ``ReLU*(x, p) = p₊``.
* **excitation** (Zhang et al.): a map with weights ``W`` (conv*, linear; pools, means and
  interpolations with their positive weights) passes back ``p'_j = x_j Σ_i W⁺_ij p_i / z⁺_i``,
  ``z⁺ = W⁺x`` (bias ignored); ``a + αb`` of same-shape activations splits ``p`` as ``a/(a+αb)``,
  ``αb/(a+αb)``; norms, scalar factors, sigmoids and the upper clip of ReLU6 pass ``p`` through;
  ``x · gate(x)`` passes ``p`` to ``x`` and nothing to the gate; ReLU and max-pooling keep their
  gradient.
* **contrastive_excitation**: the excitation minus its dual (the last linear map that ran, i.e. the
  classifier, with its weights negated) at every layer up to the contrast layer. Every rule above is
  linear in ``p``, so subtracting the back-propagated dual equals TorchRay's subtraction at the
  contrast layer.

Every backward computes in at least float32 (ε = 1e-20 underflows in float16) and hands back the
input's dtype.
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from revisal.aggregations import working_precision
from revisal.ops import OPS, bind, inplace, positive_weights, relu_bounds
from revisal.probes import hooked

_EPS = 1e-20  # as the Caffe reference implementation of excitation backprop


class _Rule(torch.autograd.Function):
    """``forward(*xs)`` unchanged; ``backward(p, *xs)`` returns one gradient per ``x``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(forward: Callable, backward: Callable, *xs: Tensor) -> Tensor:
        return forward(*xs)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.rule = inputs[1]
        ctx.save_for_backward(*inputs[2:])

    @staticmethod
    def backward(ctx, p):
        return None, None, *ctx.rule(p, *ctx.saved_tensors)


def _wide(*tensors: Tensor) -> list[Tensor]:
    return [working_precision(t) for t in tensors]


def _excite(op: Callable[[Tensor], Tensor]) -> Callable:
    """Excitation backward of ``op``, a linear map with non-negative weights: ``x ⊙ op*(p ⊘ op(x))``."""
    def backward(p: Tensor, x: Tensor) -> tuple[Tensor]:
        (xw, pw) = _wide(x, p)
        with torch.enable_grad():
            xx = xw.detach().requires_grad_(True)
            z = op(xx)
            (back,) = torch.autograd.grad(z, xx, pw / (z.detach() + _EPS))
        return ((xw * back).to(x.dtype),)
    return backward


class Constants:
    """The tensors a pass takes for constants, not activations (the model's parameters and buffers,
    and any replacement parameters), by identity.

    It holds the tensors themselves. An ``id`` is unique only among live objects: with ids alone, a
    tensor freed during the pass (a forward that rebinds or re-registers a buffer frees the old one)
    could hand its ``id`` to a new activation, which would then be taken for a constant.
    """

    def __init__(self, tensors: Iterable[Tensor] = ()) -> None:
        self._held = {id(t): t for t in tensors}

    def __contains__(self, value: object) -> bool:
        return self._held.get(id(value)) is value

    def __len__(self) -> int:
        return len(self._held)


@dataclass
class PassState:
    """One pass of one rule: the module running now, linear maps counted in execution order, the
    classifier (the last one), whether the forward is over and whether the dual backward runs."""

    modules: list[str] = field(default_factory=list)
    maps: int = 0
    classifier: int = -1
    forward_done: bool = False
    dual: bool = False


@dataclass(frozen=True)
class Rule:
    """Ordinary backpropagation; subclasses change the backward of the ops they know."""

    name: str = "plain"
    vmappable: bool = True  # its backward runs under torch.func (no nested autograd)
    who: str = ""  # the methods using it in one call, for error messages

    def refuse(self, func, state: PassState, why: str = "") -> None:
        where = f"module {state.modules[-1]!r}" if state.modules and state.modules[-1] else "the model's own forward"
        raise ValueError(
            f"methods: {self.who} ({self.name} backprop) {why or 'does not know'} {getattr(func, '__name__', func)!r} "
            f"(in {where}); it would fall back to the plain gradient, so it is refused"
        )

    def handle(self, func, kind: str, call: dict, rerun: Callable, state: PassState,
               constants: Constants) -> Callable | None:
        """The replacement ``(input) → output`` of this call (``rerun(x)`` calls it again with another
        input), or None to run it with its own gradient."""
        return None

    def extra_layers(self) -> tuple[str, ...]:
        return ()

    def configured(self, contrast_layer: str | None, who: str) -> "Rule":
        return replace(self, who=who)

    def gradients(self, y: Tensor, probes: list, state: PassState) -> list:
        """``∂y/∂x`` (under the rule) at each probe's output, None where ``y`` does not depend on it."""
        return list(torch.autograd.grad(y, [p.delta for p in probes], allow_unused=True))

    @contextmanager
    def active(self, model: nn.Module, state: PassState) -> Iterator[None]:
        """The rule's hold on a pass (forward and backward): module names for errors, and a refusal
        of any module that runs again once the forward is over (checkpointing recomputes it, where
        no rule applies). The plain rule holds nothing."""
        if self.name == "plain":
            yield
            return

        def enter(module, args, name=""):
            if state.forward_done:
                raise ValueError(
                    f"methods: {self.who} ({self.name} backprop) cannot run through torch.utils.checkpoint: module {name!r} "
                    "is recomputed during the backward pass, where the modified backward rules do not apply; "
                    "turn the model's checkpointing off, or use a non-invasive method")
            state.modules.append(name)

        def leave(module, args, kwargs, out):
            state.modules.pop()

        hooks = [(m, "pre", lambda m, a, n=n: enter(m, a, n)) for n, m in model.named_modules()]
        with hooked(hooks + [(m, "forward", leave) for m in model.modules()]):
            yield

    def mode(self, state: PassState, constants: Constants):
        return nullcontext() if self.name == "plain" else _RuleMode(self, state, constants)


class _RuleMode(TorchFunctionMode):
    def __init__(self, rule: Rule, state: PassState, constants: Constants):
        super().__init__()
        self.rule, self.state, self.constants = rule, state, constants

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not any(t.grad_fn is not None for t in _tensors(args, kwargs)):
            return func(*args, **kwargs)  # off the backward signal's path: nothing to rule on
        kind, params = OPS.get(func, (None, ()))
        if kind is None:
            out = func(*args, **kwargs)
            if any(t.grad_fn is not None for t in _tensors((out,), {})):
                self.rule.refuse(func, self.state)
            return out
        call = bind(params, args, kwargs)
        own = inplace(func, call)
        rerun = (lambda x: func(x.clone() if own else x, *args[1:], **kwargs)) if args \
            else (lambda x: func(**{**kwargs, "input": x}))  # an in-place call writes a copy of its input
        replacement = self.rule.handle(func, kind, call, rerun, self.state, self.constants)
        if replacement is None:
            return func(*args, **kwargs)
        x = call["input"]
        if not own:
            return replacement(x)
        x.copy_(replacement(x.clone()))  # the Function keeps a copy, not the tensor written here
        return x


def _tensors(args: tuple, kwargs: dict) -> Iterator[Tensor]:
    for v in (*args, *kwargs.values()):
        if isinstance(v, Tensor):
            yield v
        elif isinstance(v, (tuple, list)):
            yield from (t for t in v if isinstance(t, Tensor))


def _is_scalar(v: object, constants: Constants) -> bool:
    return isinstance(v, numbers.Number) or (isinstance(v, Tensor) and v.numel() == 1 and v in constants)


@dataclass(frozen=True)
class ReLURule(Rule):
    """Guided backprop (``p₊ · 1[lo < x < hi]``) or deconvnet (``p₊``) at every ReLU-like op."""

    guided: bool = True

    def handle(self, func, kind, call, rerun, state, constants):
        if kind == "activation":
            self.refuse(func, state, "is defined for ReLUs only, not")
        bounds = relu_bounds(func, call) if kind == "relu" else None
        if kind == "relu" and bounds is None:
            self.refuse(func, state, "needs a clip at 0 (ReLU, ReLU6, clamp(min=0)), not this")
        if bounds is None:
            return None
        lo, hi = bounds
        if self.guided:
            back = lambda p, x: (p.clamp_min(0) * ((x > lo) & (x < hi)),)  # noqa: E731
        else:
            back = lambda p, x: (p.clamp_min(0),)  # noqa: E731
        return lambda x: _Rule.apply(lambda t: t.clamp(lo, hi), back, x)


@dataclass(frozen=True)
class ExcitationRule(Rule):
    """Excitation backprop; with ``contrastive``, minus the dual below ``contrast_layer``."""

    contrastive: bool = False
    contrast_layer: str | None = None
    vmappable: bool = False

    def configured(self, contrast_layer, who):
        return replace(self, who=who, contrast_layer=contrast_layer if self.contrastive else None)

    def extra_layers(self):
        return (self.contrast_layer,) if self.contrast_layer is not None else ()

    def handle(self, func, kind, call, rerun, state, constants):
        through = lambda p, x: (p,)  # noqa: E731
        if kind == "plain":
            return None
        if kind == "activation":
            self.refuse(func, state, "has no rule for")
        if kind == "relu":
            bounds = relu_bounds(func, call)
            if bounds is None:
                self.refuse(func, state, "needs a clip at 0 (ReLU, ReLU6, clamp(min=0)), not this")
            return lambda x: _Rule.apply(lambda t: t.clamp(*bounds), lambda p, t: (p * (t > 0),), x)
        if kind in ("norm", "sigmoid"):
            return lambda x: _Rule.apply(rerun, through, x)
        if kind == "linear_map":
            return self._linear_map(func, call, state)
        if kind == "pool":
            if not positive_weights(func, call):
                self.refuse(func, state, f"needs non-negative weights, not mode={call.get('mode')!r} of")
            return lambda x: _Rule.apply(rerun, _excite(rerun), x)
        a, b = call["input"], call.get("other")
        if kind in ("mul", "div") and _is_scalar(b, constants):
            return lambda x: _Rule.apply(rerun, through, x)
        activations = all(isinstance(t, Tensor) and t not in constants for t in (a, b))
        if kind == "mul" and activations and a.shape != b.shape \
                and torch.broadcast_shapes(a.shape, b.shape) in (a.shape, b.shape):
            back = (lambda p, s, t: (p, None)) if a.numel() > b.numel() else (lambda p, s, t: (None, p))
            return lambda x: _Rule.apply(lambda s, t: s * t, back, x, b)  # x · gate: nothing to the gate
        if kind in ("add", "sub") and activations and a.shape == b.shape:
            alpha = call.get("alpha", 1) * (-1 if kind == "sub" else 1)
            return lambda x: _Rule.apply(lambda s, t: s + alpha * t, self._split(alpha), x, b)
        self.refuse(func, state, "splits only sums of same-shape activations, scales by constants and gates; not this")

    @staticmethod
    def _split(alpha: float) -> Callable:
        def backward(p: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
            dtypes, (a, b, p) = (a.dtype, b.dtype), _wide(a, b, p)
            out = a + alpha * b
            share = torch.where(out == 0, torch.full_like(out, 0.5), a / torch.where(out == 0, 1, out))
            return (share * p).to(dtypes[0]), ((1 - share) * p).to(dtypes[1])
        return backward

    def _linear_map(self, func, call: dict, state: PassState) -> Callable:
        rest = {k: v for k, v in call.items() if k not in ("input", "weight", "bias")}
        index, weight, bias = state.maps, call["weight"], call.get("bias")
        state.maps, state.classifier = index + 1, index  # the last one to run is the classifier

        def backward(p, x):
            w = -weight if self.contrastive and state.dual and index == state.classifier else weight
            return _excite(lambda t: func(t, working_precision(w).clamp_min(0), **rest))(p, x)

        return lambda x: _Rule.apply(lambda t: func(t, weight, bias, **rest), backward, x)

    def gradients(self, y, probes, state):
        tensors = [p.delta for p in probes]
        grads = list(torch.autograd.grad(y, tensors, allow_unused=True, retain_graph=self.contrastive))
        if not self.contrastive:
            return grads
        state.dual = True  # the same backward with the classifier's weights negated
        dual = torch.autograd.grad(y, tensors, allow_unused=True)
        limit = next((p.order for p in probes if p.name == self.contrast_layer), float("inf"))
        return [g if g is None or d is None or p.order > limit else g - d for g, d, p in zip(grads, dual, probes)]


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule(),
    ReLURule("guided", guided=True),
    ReLURule("deconvnet", guided=False),
    ExcitationRule("excitation"),
    ExcitationRule("contrastive_excitation", contrastive=True),
)}
