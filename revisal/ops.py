"""The torch functions an invasive pass knows, by kind. Default deny: a function missing here whose
result carries the backward signal is refused (by :mod:`revisal.rules`), naming it and its module.

Kinds: ``relu`` (ReLU, ReLU6, ``hardtanh(0, t)``, ``threshold(0, 0)``, ``clamp(min=0)``: bounds
``(lo, hi)`` with ``lo = 0``), ``activation`` (other nonlinearities: refused by every rule),
``linear_map`` (conv*, linear: weight then bias), ``pool`` (average pools, mean/sum over dims,
nearest/linear/area interpolation: positive weights), ``norm``, ``add``, ``mul``, ``sigmoid`` and
``plain`` (ops whose ordinary gradient every rule keeps: views, indexing, concatenation, max pooling,
dropout, padding, dtype casts).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

Op = tuple[str, tuple[str, ...]]  # kind, names of the positional parameters
X = ("input",)
CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


def _kind(kind: str, params: tuple[str, ...], *funcs) -> dict:
    return {f: (kind, params) for f in funcs}


OPS: dict[object, Op] = {
    **_kind("relu", ("input", "inplace"), F.relu, torch.relu, Tensor.relu, F.relu6),
    **_kind("relu", X, torch.relu_, Tensor.relu_),
    **_kind("relu", ("input", "min_val", "max_val", "inplace"), F.hardtanh, F.hardtanh_),
    **_kind("relu", ("input", "threshold", "value", "inplace"), F.threshold, torch.threshold, torch.threshold_,
            F.threshold_),
    **_kind("relu", ("input", "min", "max"), torch.clamp, Tensor.clamp, Tensor.clamp_, torch.clamp_, torch.clip,
            Tensor.clip, Tensor.clip_, torch.clamp_min, Tensor.clamp_min, Tensor.clamp_min_, torch.clamp_min_),
    **_kind("activation", X, F.leaky_relu, F.leaky_relu_, F.silu, F.gelu, F.hardswish, F.mish, F.elu, F.elu_, F.selu,
            F.celu, F.softplus, F.prelu, F.rrelu, F.glu, F.logsigmoid, F.hardsigmoid, F.softsign, F.tanhshrink,
            F.hardshrink, F.softshrink, torch.tanh, Tensor.tanh, F.tanh, torch.selu, torch.celu, torch.rrelu,
            torch.prelu, F.softmax, F.log_softmax, torch.softmax, Tensor.softmax, torch.exp, Tensor.exp),
    **_kind("linear_map", CONV, F.conv1d, F.conv2d, F.conv3d),
    **_kind("linear_map", ("input", "weight", "bias"), F.linear),
    **_kind("pool", X, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
            F.adaptive_avg_pool3d, torch.mean, Tensor.mean, torch.sum, Tensor.sum),
    **_kind("pool", ("input", "size", "scale_factor", "mode"), F.interpolate),
    **_kind("norm", X, F.batch_norm, F.layer_norm, F.group_norm, F.instance_norm, F.local_response_norm),
    **_kind("add", ("input", "other", "alpha"), torch.add, Tensor.add, Tensor.add_, Tensor.__add__, Tensor.__radd__,
            Tensor.__iadd__),
    **_kind("sub", ("input", "other", "alpha"), torch.sub, Tensor.sub, Tensor.sub_, Tensor.__sub__, Tensor.__isub__),
    **_kind("mul", ("input", "other"), torch.mul, Tensor.mul, Tensor.mul_, Tensor.__mul__, Tensor.__rmul__,
            Tensor.__imul__),
    **_kind("div", ("input", "other"), torch.div, Tensor.div, Tensor.div_, Tensor.__truediv__, Tensor.__itruediv__),
    **_kind("sigmoid", X, torch.sigmoid, Tensor.sigmoid, F.sigmoid),
    **_kind("plain", X, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d,
            F.adaptive_max_pool3d, torch.amax, Tensor.amax, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
            F.alpha_dropout, F.pad, torch.flatten, Tensor.flatten, Tensor.view, Tensor.view_as, Tensor.reshape,
            torch.reshape, Tensor.reshape_as, Tensor.permute, torch.permute, Tensor.transpose, torch.transpose,
            Tensor.contiguous, Tensor.clone, torch.clone, Tensor.squeeze, torch.squeeze, Tensor.unsqueeze,
            torch.unsqueeze, Tensor.__getitem__, torch.cat, torch.concat, torch.stack, Tensor.split, torch.split,
            Tensor.chunk, torch.chunk, Tensor.narrow, Tensor.expand, Tensor.expand_as, Tensor.repeat, Tensor.to,
            Tensor.float, Tensor.double, Tensor.half, Tensor.bfloat16, Tensor.type_as, Tensor.detach,
            F.pixel_shuffle, F.pixel_unshuffle, F.channel_shuffle, torch.channel_shuffle, Tensor.movedim,
            torch.movedim, Tensor.flip, torch.flip, Tensor.roll, torch.roll, Tensor.unbind, torch.unbind,
            Tensor.select, torch.select, Tensor.unflatten, Tensor.__setitem__, Tensor.copy_),
}

_INTERPOLATIONS = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")


def bind(params: tuple[str, ...], args: tuple, kwargs: dict) -> dict:
    """A call's arguments by parameter name (positional ones named by ``params``)."""
    return {**dict(zip(params, args)), **kwargs}


def inplace(func, call: dict) -> bool:
    """Whether the call writes its first argument (``x.relu_()``, ``y += x``, ``F.relu(x, True)``)."""
    name = getattr(func, "__name__", "")
    return (name.endswith("_") and not name.endswith("__")) or name.startswith("__i") or bool(call.get("inplace"))


def relu_bounds(func, call: dict) -> tuple[float, float] | None:
    """``(0, t)`` for a ReLU-like call clipping at 0 (and at ``t``, ∞ for none); None for any other."""
    if func is F.relu6:
        return 0.0, 6.0
    if "min_val" in call or func in (F.hardtanh, F.hardtanh_):
        lo, hi = call.get("min_val", -1.0), call.get("max_val", 1.0)
    elif "threshold" in call:
        lo, hi = (0.0, math.inf) if call["threshold"] == 0 and call.get("value") == 0 else (None, None)
    elif func in (torch.clamp_min, Tensor.clamp_min, Tensor.clamp_min_, torch.clamp_min_) or "min" in call:
        lo, hi = call.get("min"), call.get("max")
        hi = math.inf if hi is None else hi
    else:
        return 0.0, math.inf
    if isinstance(lo, Tensor) or isinstance(hi, Tensor) or lo != 0 or not hi > 0:
        return None
    return 0.0, float(hi)


def positive_weights(func, call: dict) -> bool:
    """Whether a ``pool`` call is a sum with non-negative weights (interpolation: by its mode)."""
    return func is not F.interpolate or call.get("mode", "nearest") in _INTERPOLATIONS
