"""Leave the model exactly as it was found, whatever happens inside."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


@contextmanager
def preserved_state(model: nn.Module, *, eval_mode: bool = True, freeze_parameters: bool = True) -> Iterator[None]:
    """Run a block with the model in eval mode and parameters frozen, then restore everything.

    Restored on exit, also when the block raises: every submodule's ``training`` flag, every
    parameter's ``requires_grad`` flag, and the value of every buffer (e.g. BatchNorm running
    statistics, should a forward in training mode update them). Parameter values and ``.grad``
    fields are never written by revisal; hooks are removed by their owners' handles.

    Freezing parameters (``requires_grad=False``) is what makes saliency cheap: the forward pass
    records no graph for weight gradients and the backward computes none.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        if eval_mode:
            model.eval()
        if freeze_parameters:
            for p, _ in flags:
                p.requires_grad_(False)
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)
        with torch.no_grad():
            for b, saved in buffers:
                if not torch.equal(b, saved):
                    b.copy_(saved)
