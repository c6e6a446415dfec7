"""Objectives for fully convolutional classifiers (TorchRay's pointing-game protocol).

A fully convolutional network outputs a class-score map ``s ∈ ℝ^{N×C×h×w}``. TorchRay's
``get_pointing_gradient`` seeds the backward pass at ``s`` with the spatial softmax of the target
class's map, ``∂y/∂s_{c,u} = exp(s_{c,u}) / Σ_v exp(s_{c,v})``: exactly the gradient of

    y = log Σ_u exp(s_{c,u})    (log-sum-exp over space of the class's score map),

which :class:`PointingObjective` computes. Its backward hands back the seed exactly as TorchRay
forms it, ``e / Σe`` with ``e = exp(s)`` (so that near-ties in a map break the same way as in the
authors' runs), and the shifted ``exp(s − max s)`` form where ``exp(s)`` would overflow (scores
above ~88 in float32, where TorchRay's seed becomes NaN). On a 1×1 map (a 224×224 input to
TorchRay's VGG16 or ResNet50) the seed is 1, the target logit's gradient; on a larger map it is not.
:func:`map_cross_entropy` is the loss TorchRay's ``meta_saliency`` steps on for such a
network: cross-entropy to the class at every location of the map, averaged over locations.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class _LogSumExp(torch.autograd.Function):
    """``y_n = log Σ_u exp(s_{n,u})`` over the last dimension; backward ``∂y/∂s = e / Σe`` formed as
    TorchRay's ``get_pointing_gradient`` forms it (``e = exp(s)``; ``exp(s − max)`` where that overflows)."""

    generate_vmap_rule = True  # torch.func (meta-saliency's vmap) may call it

    @staticmethod
    def forward(scores: Tensor) -> Tensor:
        return torch.logsumexp(scores, dim=-1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (scores,) = ctx.saved_tensors
        e = torch.exp(scores)
        shifted = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
        seed = e / e.sum(dim=-1, keepdim=True)
        finite = torch.isfinite(seed).all(dim=-1, keepdim=True)
        seed = torch.where(finite, seed, shifted / shifted.sum(dim=-1, keepdim=True))
        return seed * grad.unsqueeze(-1)


class PointingObjective:
    """``y_n = logsumexp_u s_{n, c_n, u}`` for class ids ``c`` (one per sample); a ``[N, C]`` output
    (a 1×1 map) gives the target logit ``s_{n, c_n}`` itself. Pass it as ``target`` to
    :func:`revisal.saliency`.
    """

    def __init__(self, class_ids: Sequence[int] | Tensor):
        ids = torch.as_tensor(class_ids)
        if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.numel() == 0:
            raise ValueError(f"class_ids: expected a non-empty 1-D sequence of ints, got {class_ids!r}")
        if bool((ids < 0).any()):
            raise ValueError(f"class_ids: expected ids ≥ 0, got {ids.tolist()}")
        self.class_ids = ids.long()

    def scores(self, output: Tensor) -> Tensor:
        """The target class's scores ``[N, h·w]`` (``[N, 1]`` for a ``[N, C]`` output)."""
        if not isinstance(output, Tensor) or output.dim() not in (2, 4):
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(f"target: the pointing objective needs an output [N, C] or [N, C, h, w], got {shape}")
        if output.shape[0] != len(self.class_ids):
            raise ValueError(f"target: {len(self.class_ids)} class ids for a batch of {output.shape[0]}")
        if int(self.class_ids.max()) >= output.shape[1]:
            raise ValueError(f"target: class id {int(self.class_ids.max())} out of range for {output.shape[1]} classes")
        ids = self.class_ids.to(output.device)
        picked = output[torch.arange(len(ids), device=output.device), ids]
        return picked.reshape(len(ids), -1)

    def __call__(self, output: Tensor) -> Tensor:
        scores = self.scores(output)
        return scores[:, 0] if scores.shape[1] == 1 and output.dim() == 2 else _LogSumExp.apply(scores)

    def __repr__(self) -> str:
        return f"PointingObjective({self.class_ids.tolist()})"


def map_cross_entropy(output: Tensor, target: PointingObjective | Tensor) -> Tensor:
    """Per-sample ``ℓ_n = (1/hw) Σ_u CE(s_{n,:,u}, c_n)``: cross-entropy to the class at every
    location of a ``[N, C, h, w]`` score map (a ``[N, C]`` output: plain cross-entropy). Use as
    ``MetaStep(loss=map_cross_entropy)``; ``target`` is a :class:`PointingObjective` or class ids."""
    ids = target.class_ids if isinstance(target, PointingObjective) else torch.as_tensor(target)
    ids = ids.to(output.device).long()
    if output.dim() == 2:
        return F.cross_entropy(output, ids, reduction="none")
    n, _, h, w = output.shape
    per_location = F.cross_entropy(output, ids.view(n, 1, 1).expand(n, h, w), reduction="none")
    return per_location.flatten(1).mean(1)
