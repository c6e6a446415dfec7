"""Capturing what layers output: each requested layer's activations for a batch of images."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from revisal.probes import hooked
from revisal.state import preserved_state
from revisal.validation import check_images, check_images_fit_model, check_int, check_layers, check_model


def layer_activations(model: nn.Module, images: Tensor, layers: Sequence[str], batch_size: int = 64) -> list[Tensor]:
    """Each layer's output for ``images`` (eval mode, no gradients; ``""`` is the input)."""
    check_model(model)
    check_images(images)
    check_images_fit_model(model, images)
    layers = list(layers) if not isinstance(layers, str) else [layers]
    names = check_layers(model, layers)
    check_int(batch_size, "batch_size", minimum=1)
    modules = dict(model.named_modules())
    outputs: dict[str, list[Tensor]] = {name: [] for name in names}

    def keep(name):
        def hook(module, args, kwargs, out):
            outputs[name].append(out.detach().clone())
        return hook

    with hooked((modules[name], "forward", keep(name)) for name in names if name), preserved_state(model), \
            torch.no_grad():
        for chunk in images.split(batch_size):
            if "" in outputs:
                outputs[""].append(chunk.clone())
            model(chunk.clone())  # the model may write to its input
    return [torch.cat(outputs[name]) for name in layers]
