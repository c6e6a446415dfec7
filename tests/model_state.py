"""A model's state as the API contract reads it (tensors, requires_grad, grads, training flags,
hooks), for the library's tests and the reproduction's alike."""

from __future__ import annotations

import torch
from torch import nn

HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
)


def snapshot(model: nn.Module) -> dict:
    return {
        "tensors": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grad": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
        "hooks": {n: {d: dict(getattr(m, d, {})) for d in HOOK_DICTS} for n, m in model.named_modules()},
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert before["tensors"].keys() == after["tensors"].keys()
    for k, v in before["tensors"].items():
        assert torch.equal(v, after["tensors"][k]), f"{k} changed"
    assert before["requires_grad"] == after["requires_grad"]
    assert before["training"] == after["training"]
    assert before["hooks"] == after["hooks"]
    for k, g in before["grad"].items():
        other = after["grad"][k]
        assert (g is None and other is None) or torch.equal(g, other), f"{k}.grad changed"
