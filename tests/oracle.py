"""The paper's formulas computed the slow way, independently of revisal's engine.

Per-location contributions to a weight gradient are obtained by giving a layer *one copy of its
parameters per sample and per location* and asking autograd for their gradients: the gradient of
copy (n, u) is exactly location u's summand in eqs. (2)-(3) of the paper. For the identity sites an
identity layer is actually inserted after the module (bias b=0, scale α=1, 1×1 or 3×3 identity
convolution); for a real convolution the module is re-run as a locally connected layer built from
``F.unfold`` (materialised: small tensors only). Contributions come back flattened, ``[N, H, W, D]``,
and are aggregated by the explicit definitions in :data:`AGGREGATE`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AGGREGATE = {
    "sum": lambda c: c.sum(-1),
    "relu_sum": lambda c: torch.where(c.sum(-1) > 0, c.sum(-1), torch.zeros_like(c.sum(-1))),
    "maxabs": lambda c: c.abs().max(-1).values,
    "norm": lambda c: torch.sqrt((c * c).sum(-1)),
    "filter_norm": lambda c: torch.sqrt((torch.where(c > 0, c, torch.zeros_like(c)) ** 2).sum(-1)),
}


def _frozen_copy(model: nn.Module) -> nn.Module:
    clone = copy.deepcopy(model).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _objective(output: Tensor, ids: Tensor) -> Tensor:
    return output.gather(1, ids[:, None]).sum()


def _output_of(model: nn.Module, images: Tensor, layer: str) -> Tensor:
    if layer == "":
        return images.detach().clone()
    seen = {}

    def keep(module: nn.Module, args: tuple, output: Tensor) -> None:
        seen["x"] = output.detach().clone()  # returns None: the network's output is untouched

    handle = dict(model.named_modules())[layer].register_forward_hook(keep)
    with torch.no_grad():
        model(images)
    handle.remove()
    return seen["x"]


def _run_inserted(model: nn.Module, images: Tensor, ids: Tensor, layer: str, insert) -> None:
    """Forward with ``insert(x)`` applied to the output of ``layer`` (or to the images), backward."""
    if layer == "":
        out = model(insert(images))
    else:
        handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, a, o: insert(o))
        try:
            out = model(images)
        finally:
            handle.remove()
    _objective(out, ids).backward()


def identity_contributions(model: nn.Module, images: Tensor, ids: Tensor, layer: str, site: str) -> Tensor:
    """Per-location weight-gradient contributions of an identity layer inserted after ``layer``."""
    model = _frozen_copy(model)
    x = _output_of(model, images, layer)
    n, k, h, w = x.shape
    if site in ("bias", "scale", "scale_avg"):
        if site == "bias" or site == "scale_avg":
            b = torch.zeros_like(x, requires_grad=True)  # one bias per sample, channel, location
            _run_inserted(model, images, ids, layer, lambda t: t + b)
            c = b.grad
            if site == "scale_avg":  # Grad-CAM: the spatially averaged gradient times the activation
                c = c.mean(dim=(2, 3), keepdim=True) * x
        else:
            a = torch.ones_like(x, requires_grad=True)
            _run_inserted(model, images, ids, layer, lambda t: a * t)
            c = a.grad
        return c.permute(0, 2, 3, 1)
    if site == "conv1x1":
        eye = torch.eye(k, dtype=x.dtype)
        weight = eye.expand(n, h, w, k, k).clone().requires_grad_(True)
        _run_inserted(model, images, ids, layer, lambda t: torch.einsum("nhwkj,njhw->nkhw", weight, t))
        return weight.grad.reshape(n, h, w, k * k)
    if site == "conv3x3":
        ident = torch.zeros(k, k, 9, dtype=x.dtype)
        ident[torch.arange(k), torch.arange(k), 4] = 1.0  # δ_kj at the centre tap
        weight = ident.reshape(k, 9 * k).expand(n, h * w, k, 9 * k).clone().requires_grad_(True)

        def insert(t: Tensor) -> Tensor:
            cols = F.unfold(t, 3, padding=1)  # [N, 9K, L]
            return torch.einsum("nlki,nil->nkl", weight, cols).reshape(n, k, h, w)

        _run_inserted(model, images, ids, layer, insert)
        return weight.grad.reshape(n, h, w, 9 * k * k)
    raise ValueError(site)


def conv_contributions(model: nn.Module, images: Tensor, ids: Tensor, layer: str) -> Tensor:
    """Per-location contributions ``g_u x_{u,N×N}ᵀ`` to a real Conv2d's weight gradient.

    The conv is re-run as a locally connected layer with one weight copy per (sample, location);
    the oracle checks its own forward against the module and the sum of its contributions against
    the module's true weight gradient.
    """
    model = _frozen_copy(model)
    conv = dict(model.named_modules())[layer]
    assert isinstance(conv, nn.Conv2d)
    groups, (kh, kw) = conv.groups, conv.kernel_size
    k_out, k_in_g = conv.weight.shape[:2]
    held = {}

    def locally_connected(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        x = args[0]
        mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=mode)
        cols = F.unfold(x, (kh, kw), dilation=conv.dilation, stride=conv.stride)  # [N, K·kh·kw, L]
        n, _, length = cols.shape
        cols = cols.reshape(n, groups, k_in_g * kh * kw, length)
        base = conv.weight.detach().reshape(groups, k_out // groups, k_in_g * kh * kw)
        weight = base.expand(n, length, *base.shape).clone().requires_grad_(True)
        held["w"] = weight
        out = torch.einsum("nlgoi,ngil->ngol", weight, cols).reshape(output.shape)
        if conv.bias is not None:
            out = out + conv.bias.detach()[None, :, None, None]
        torch.testing.assert_close(out, output, rtol=1e-5, atol=1e-5 * float(output.abs().max()))
        return out

    handle = conv.register_forward_hook(locally_connected)
    try:
        _objective(model(images), ids).backward()
    finally:
        handle.remove()
    per_location = held["w"].grad  # [N, L, G, K'/G, K/G·kh·kw]

    # The summands must add up to the convolution's actual weight gradient.
    conv.weight.requires_grad_(True)
    (true_grad,) = torch.autograd.grad(_objective(model(images), ids), conv.weight)
    torch.testing.assert_close(
        per_location.sum(dim=(0, 1)).reshape(true_grad.shape), true_grad,
        rtol=1e-5, atol=1e-6 * float(true_grad.abs().max()),
    )
    n, length = per_location.shape[:2]
    out_shape = _output_of(model, images, layer).shape
    return per_location.reshape(n, out_shape[2], out_shape[3], -1)


def slow_map(model: nn.Module, images: Tensor, ids: Tensor, layer: str, site: str, aggregation: str) -> Tensor:
    """The saliency map [N, H, W] of (site, aggregation) at ``layer``, computed the slow way."""
    if site == "conv":
        c = conv_contributions(model, images, ids, layer)
    else:
        c = identity_contributions(model, images, ids, layer, site)
    return AGGREGATE[aggregation](c)
