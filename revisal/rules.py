"""Modified backward rules of the invasive baselines (they need their own forward/backward pass).

A rule is a ``TorchFunctionMode``: while it is active, calls to ``relu``, ``conv2d``, ``linear``,
average pooling, ``batch_norm`` and activation + activation additions are routed to autograd
Functions whose forward is unchanged and whose backward implements the rule. Nothing is patched
globally, no module is replaced, and every Function is out-of-place (TorchRay's Excitation Backprop
broke on newer PyTorch through in-place ops in its backward functions).

* **Guided backprop** (Springenberg et al.): ``ReLU*(x, p) = p₊ · 1[x > 0]``.
* **Deconvnet** (Zeiler & Fergus): ``ReLU*(x, p) = p₊``.
* **Excitation backprop** (Zhang et al.): a linear layer ``z = W x`` passes back
  ``p'_j = x_j Σ_i W⁺_ij p_i / z⁺_i`` with ``z⁺ = W⁺ x`` (bias ignored); average pooling likewise with
  its (positive) weights; a residual sum ``a + b`` splits ``p`` in proportion ``a/(a+b)``, ``b/(a+b)``;
  BatchNorm passes ``p`` through; ReLU and max-pooling keep their usual backward.
* **Contrastive excitation backprop**: the same, minus the excitation obtained with the classifier's
  weights negated (its "dual"), at every layer below the contrast layer. Because every rule above
  is linear in ``p``, subtracting the dual signal at the contrast layer and back-propagating equals
  subtracting the two back-propagated signals, which is how it is computed here.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .aggregations import working_precision

_EPS = 1e-20  # as the Caffe reference implementation of excitation backprop

# The excitation rules divide by z = W⁺x + ε. In float16 ε underflows to 0 (0/0 = NaN where z = 0)
# and p/z overflows, so their backward computes in at least float32 (see ``working_precision``) and
# hands back the excitation in the input's dtype; the forward is the model's own, unchanged.


class _GuidedReLU(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.relu(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, p: Tensor) -> Tensor:
        (out,) = ctx.saved_tensors
        return p.clamp_min(0) * (out > 0)


class _DeconvReLU(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.relu(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, p: Tensor) -> Tensor:
        return p.clamp_min(0)


_RELUS = {F.relu, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}


class ReLURuleMode(TorchFunctionMode):
    """Route every ReLU through ``function`` (out-of-place, also for ``inplace=True`` calls)."""

    def __init__(self, function: type[torch.autograd.Function]):
        super().__init__()
        self.function = function

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            return self.function.apply(args[0])
        return func(*args, **(kwargs or {}))


@dataclass
class ExcitationState:
    """Shared by the Functions of one pass: ``dual`` flips the classifier's weights in backward."""

    dual: bool = False
    in_classifier: bool = False


def _positive(weight: Tensor, flip: bool) -> Tensor:
    return (-weight if flip else weight).clamp_min(0)


class _EBConv(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation, groups, classifier, state):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _, ctx.stride, ctx.padding, ctx.dilation, ctx.groups, ctx.classifier, ctx.state = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, p):
        x, weight = ctx.saved_tensors
        dtype, (x, weight, p) = x.dtype, _wide(x, weight, p)
        w = _positive(weight, ctx.classifier and ctx.state.dual)
        padding = ctx.padding
        if isinstance(padding, str):  # 'same' / 'valid' → explicit (symmetric for odd kernels)
            padding = 0 if padding == "valid" else tuple(d * (k - 1) // 2 for d, k in zip(_pair(ctx.dilation), w.shape[2:]))
        z = F.conv2d(x, w, None, ctx.stride, padding, ctx.dilation, ctx.groups)
        back = torch.nn.grad.conv2d_input(x.shape, w, p / (z + _EPS), ctx.stride, padding, ctx.dilation, ctx.groups)
        return (x * back).to(dtype), None, None, None, None, None, None, None, None


class _EBLinear(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, classifier, state):
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _, ctx.classifier, ctx.state = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, p):
        x, weight = ctx.saved_tensors
        dtype, (x, weight, p) = x.dtype, _wide(x, weight, p)
        w = _positive(weight, ctx.classifier and ctx.state.dual)
        return (x * ((p / (F.linear(x, w) + _EPS)) @ w)).to(dtype), None, None, None, None


class _EBPool(torch.autograd.Function):
    """Average pooling (fixed or adaptive): ``p' = x ⊙ pool*(p ⊘ pool(x))``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, pool):
        return pool(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.pool = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, p):
        (x,) = ctx.saved_tensors
        dtype, (x, p) = x.dtype, _wide(x, p)
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            z = ctx.pool(xx)
            (back,) = torch.autograd.grad(z, xx, p / (z.detach() + _EPS))
        return (x * back).to(dtype), None


class _EBPassThrough(torch.autograd.Function):
    """BatchNorm in excitation backprop: the excitation passes through unchanged."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, norm):
        return norm(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, p):
        return p, None


class _EBSum(torch.autograd.Function):
    """A residual sum ``a + b`` splits the excitation in proportion to each summand."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a, b):
        return a + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)  # not the output: an in-place op may overwrite it

    @staticmethod
    def backward(ctx, p):
        a, b = ctx.saved_tensors
        dtypes, (a, b, p) = (a.dtype, b.dtype), _wide(a, b, p)
        out = a + b
        safe = torch.where(out == 0, torch.ones_like(out), out)
        share = torch.where(out == 0, torch.full_like(out, 0.5), a / safe)
        return (share * p).to(dtypes[0]), ((1 - share) * p).to(dtypes[1])


def _wide(*tensors: Tensor) -> list[Tensor]:
    return [working_precision(t) for t in tensors]


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


_ADDS = {torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__, Tensor.__iadd__, Tensor.add_}
_AVG_POOLS = {F.avg_pool2d, F.adaptive_avg_pool2d}


class ExcitationMode(TorchFunctionMode):
    """Excitation-backprop rules for conv2d, linear, average pooling, batch norm and residual sums."""

    def __init__(self, state: ExcitationState):
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            call = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
                         (None, None, None, 1, 0, 1, 1))
            return _EBConv.apply(*call, self.state.in_classifier, self.state)
        if func is F.linear:
            x, weight, bias = _bind(args, kwargs, ("input", "weight", "bias"), (None, None, None))
            return _EBLinear.apply(x, weight, bias, self.state.in_classifier, self.state)
        if func in _AVG_POOLS or _spatial_mean(func, args, kwargs):
            return _EBPool.apply(args[0], lambda t: func(t, *args[1:], **kwargs))
        if func is F.batch_norm:
            return _EBPassThrough.apply(args[0], lambda t: func(t, *args[1:], **kwargs))
        if func in _ADDS and len(args) == 2 and not kwargs and _activations(*args):
            return _EBSum.apply(*args)
        return func(*args, **kwargs)


def _spatial_mean(func, args: tuple, kwargs: dict) -> bool:
    """``x.mean((2, 3))``-style global average pooling of a 4-D activation."""
    if func not in (torch.mean, Tensor.mean) or not args or not isinstance(args[0], Tensor) or args[0].dim() != 4:
        return False
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if dims is None:
        return False
    dims = {d % 4 for d in ((dims,) if isinstance(dims, int) else dims)}
    return dims == {2, 3}


def _bind(args: tuple, kwargs: dict, names: Sequence[str], defaults: Sequence) -> list:
    values = list(args) + [None] * (len(names) - len(args))
    return [kwargs.get(n, v if i < len(args) else d) for i, (n, v, d) in enumerate(zip(names, values, defaults))]


def _activations(a, b) -> bool:
    return (isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape
            and a.requires_grad and b.requires_grad)


def default_classifier(model: nn.Module) -> str:
    """The classifier layer whose weights contrastive EB negates: the last Linear/Conv2d module."""
    for name, module in reversed(list(model.named_modules())):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return name
    raise ValueError("model: no nn.Linear or nn.Conv2d layer to use as the classifier for contrastive EB")


RULES = ("gradient", "guided", "deconvnet", "excitation", "contrastive_excitation")


@dataclass
class Rule:
    """A backward rule for one pass. ``active(model)`` enters its mode; for contrastive EB it also
    marks the classifier's forward so that a later ``state.dual`` backward negates its weights."""

    name: str
    state: ExcitationState = field(default_factory=ExcitationState)

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ValueError(f"rule: unknown backward rule {self.name!r}; expected one of {RULES}")

    @property
    def contrastive(self) -> bool:
        return self.name == "contrastive_excitation"

    def _mode(self) -> TorchFunctionMode | None:
        if self.name == "guided":
            return ReLURuleMode(_GuidedReLU)
        if self.name == "deconvnet":
            return ReLURuleMode(_DeconvReLU)
        if self.name in ("excitation", "contrastive_excitation"):
            return ExcitationMode(self.state)
        return None

    @contextmanager
    def active(self, model: nn.Module) -> Iterator["Rule"]:
        self.state = ExcitationState()
        handles = []
        if self.contrastive:
            classifier = dict(model.named_modules())[default_classifier(model)]

            def enter(module, args):
                self.state.in_classifier = True

            def leave(module, args, output):
                self.state.in_classifier = False

            handles = [classifier.register_forward_pre_hook(enter), classifier.register_forward_hook(leave)]
        mode = self._mode()
        try:
            if mode is None:
                yield self
            else:
                with mode:
                    yield self
        finally:
            for h in handles:
                h.remove()
