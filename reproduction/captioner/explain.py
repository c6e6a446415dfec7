r"""Saliency for captions (paper supp. F) and where its mass falls.

The objective for image ``I`` and caption :math:`w_1..w_T` (ending in ``<eos>``) is its
log-probability under the captioner,

.. math::  y = \log p(w_{1:T} \mid I) = \sum_{t=1}^{T} \log p(w_t \mid w_{<t}, I),

or one word's term :math:`\log p(w_t \mid w_{<t}, I)` for per-word maps (which the paper does not
show). Any :mod:`revisal` method then explains ``y`` at any encoder layer, e.g. selective NormGrad
:math:`\|(g_u \odot x_u)_+\|` with :math:`g = \partial y / \partial x`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from reproduction.captioner.model import CaptionModel
from revisal.engine import saliency
from revisal.maps import SaliencyMaps
from revisal.validation import INPUT_LAYER

PREFIX = "captioner."


class _CaptionObjective(nn.Module):
    """Wraps a captioner so that ``forward(images)`` gives its per-token log-probabilities of fixed
    ``tokens``; the captioner's modules appear under ``captioner.``."""

    def __init__(self, captioner: nn.Module, tokens: Tensor):
        super().__init__()
        self.captioner = captioner
        self.tokens = tokens

    def forward(self, images: Tensor) -> Tensor:
        return self.captioner.log_probs(images, self.tokens)


def caption_saliency(captioner: nn.Module, images: Tensor, tokens: Tensor, layers: Iterable[str] | str,
                     methods: Sequence[str] | str = ("selective_normgrad",), *, word: int | None = None,
                     batch_size: int | None = None) -> SaliencyMaps:
    r"""Saliency maps explaining a caption's log-probability (or one word's, ``word=t``).

    Args:
        captioner: an ``nn.Module`` following :class:`reproduction.captioner.CaptionModel`
            (``log_probs(images, tokens) -> [N, T]``).
        images: ``[N, C, H, W]``, preprocessed as the captioner expects.
        tokens: ``LongTensor[N, T]``: each image's caption (e.g. the captioner's own greedy output).
        layers: the captioner's module names (``captioner.named_modules()``), ``""`` for its input.
        methods: any :func:`revisal.saliency` methods.
        word: ``None`` for :math:`\sum_t \log p(w_t | w_{<t}, I)`; ``t`` for that position's term only.
        batch_size: images per forward/backward pass.

    Returns:
        :class:`revisal.SaliencyMaps` keyed by the captioner's own layer names. The captioner is
        left exactly as it was (the guarantees of :func:`revisal.saliency`).
    """
    if not isinstance(captioner, nn.Module) or not isinstance(captioner, CaptionModel):
        raise TypeError("captioner: expected an nn.Module with a log_probs(images, tokens) -> [N, T] method")
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        raise TypeError(f"tokens: expected a LongTensor [N, T], got "
                        f"{tokens.dtype if isinstance(tokens, Tensor) else type(tokens).__name__} "
                        f"{tuple(tokens.shape) if isinstance(tokens, Tensor) else ''}")
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] != tokens.shape[0]:
        raise ValueError(f"images: expected [N, C, H, W] with N = {tokens.shape[0]} (one per caption), got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if word is not None and not (isinstance(word, int) and 0 <= word < tokens.shape[1]):
        raise ValueError(f"word: expected None or a position in 0..{tokens.shape[1] - 1}, got {word!r}")
    names = [layers] if isinstance(layers, str) else list(layers)
    wrapped = [name if name == INPUT_LAYER else PREFIX + name for name in names]
    objective = (lambda lp: lp.sum(1)) if word is None else (lambda lp: lp[:, word])
    n = images.shape[0]
    step = n if batch_size is None else batch_size
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    parts = []
    for start in range(0, n, step):
        chunk = slice(start, start + step)
        parts.append(saliency(_CaptionObjective(captioner, tokens[chunk].to(images.device)), images[chunk],
                              objective, wrapped, methods))
    maps = parts[0] if len(parts) == 1 else SaliencyMaps.concat(parts)
    strip = dict(zip(wrapped, names))
    return SaliencyMaps({(m, strip[layer]): v for (m, layer), v in maps.items()}, maps.methods, names)


def named_objects(caption: str, objects: Sequence[dict]) -> list[bool]:
    """For each scene object (``testbed.objects(i)`` records), whether the caption names it by
    colour and class (``"red star"``)."""
    return [f"{o['colour']} {o['class']}" in caption for o in objects]


def mask_mass(heat: Tensor, masks: Tensor) -> Tensor:
    r"""Share of a non-negative map's mass inside each mask: :math:`\sum_{u \in M_k} s_u / \sum_u s_u`.

    Args:
        heat: ``[N, H, W]`` (or ``[N, 1, H, W]``) non-negative maps at the masks' resolution.
        masks: bool ``[N, K, H, W]``.

    Returns:
        ``[N, K]``; rows of an all-zero map are 0.
    """
    heat = heat.reshape(heat.shape[0], *heat.shape[-2:]).double()
    if masks.shape[0] != heat.shape[0] or masks.shape[-2:] != heat.shape[-2:]:
        raise ValueError(f"masks: expected [N={heat.shape[0]}, K, {heat.shape[-2]}, {heat.shape[-1]}], got {tuple(masks.shape)}")
    if bool((heat < 0).any()):
        raise ValueError("heat: expected non-negative maps (e.g. min-max normalised)")
    total = heat.sum(dim=(1, 2)).clamp_min(torch.finfo(torch.float64).tiny)
    return (heat[:, None] * masks).sum(dim=(2, 3)) / total[:, None]
