"""A VGG16 with a narrow head for float64 oracle tests, in a module of its own (no pytest): the tests
import it through ``conftest``, and ``benchmarks/authors_quirks.py`` builds its fakes with it."""

from __future__ import annotations

import torchvision
from torch import nn


def vgg16_narrow_head(width: int = 512) -> nn.Module:
    """torchvision's VGG16, random init, with ``width``-wide hidden classifier layers instead of 4096.

    Same 13 convolutions, 5 max-pools, adaptive pooling and module names (``classifier.0`` … ``.6``),
    1000 classes. In float64 (the oracle tests) a pass through the 4096-wide head's 120M weights
    costs more than the whole convolutional part at 32 px, and no rule or formula depends on a
    layer's width. Initialised as torchvision initialises its Linear layers.
    """
    model = torchvision.models.vgg16()
    model.classifier[0] = nn.Linear(512 * 7 * 7, width)
    model.classifier[3] = nn.Linear(width, width)
    model.classifier[6] = nn.Linear(width, 1000)
    for i in (0, 3, 6):
        nn.init.normal_(model.classifier[i].weight, 0, 0.01)
        nn.init.constant_(model.classifier[i].bias, 0)
    return model
