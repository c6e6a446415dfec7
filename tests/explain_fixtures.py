"""Small models and image files for the ``explain`` tests (tests/test_explain_*.py).

The CLI loads the model as ``--model explain_fixtures:tiny`` (this folder is on ``sys.path``, see
conftest.py); the tests use ``--size 16`` so that a run takes a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

#: The CLI arguments that select the tiny model.
TINY = ["--model", "explain_fixtures:tiny", "--size", "16", "--no-progress"]


def tiny() -> nn.Sequential:
    """Conv → BatchNorm → ReLU → strided conv → ReLU → Dropout → pool → Linear(3): random weights
    (seeded) and BatchNorm statistics far from (0, 1), so training and eval mode differ."""
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2),
                          nn.ReLU(), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        bn = model[1]
        bn.running_mean.copy_(torch.randn(6, generator=generator))
        bn.running_var.copy_(torch.rand(6, generator=generator) * 3 + 0.2)
    return model


def photos(folder: Path, count: int = 3, side: int = 24) -> list[Path]:
    """``count`` random RGB PNG files (``side``², seeded) in ``folder``, named ``img0.png``..."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths
