"""Shared fixtures: small random CNNs that exercise every convolution geometry, a VGG16 with a narrow
head for float64 oracle tests; ``oracle()``, which imports a test-only oracle; a switch that emulates
another CPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules next to this file

import global_state  # noqa: E402
from narrow_vgg import vgg16_narrow_head  # noqa: E402, F401  (tests import it from here)
from oracle_imports import ORACLES, in_ci, oracle  # noqa: E402, F401  (tests import them from here)

# Emulating another CPU: REVISAL_TEST_NO_MKLDNN=1 sends convolutions through ATen's own kernels
# instead of oneDNN (together with ATEN_CPU_CAPABILITY=default|avx2|avx512, ONEDNN_MAX_CPU_ISA and
# OMP_NUM_THREADS this changes float32 rounding the way another machine would).
if os.environ.get("REVISAL_TEST_NO_MKLDNN", "") not in ("", "0"):
    torch.backends.mkldnn.enabled = False


@pytest.fixture(autouse=True)
def leaves_global_state_alone():
    """Fails a test that leaves torch's process-wide switches (grad/inference/anomaly mode, default
    dtype, threads, function and dispatch mode stacks, global module hooks), revisal's registries,
    the environment or the working directory changed; then puts them back for the next test."""
    before = global_state.snapshot()
    yield
    after = global_state.snapshot()
    changed = global_state.changes(before, after)
    if changed:
        global_state.restore(before)
        pytest.fail("the test left global state changed:\n  " + "\n  ".join(changed), pytrace=False)


class TinyNet(nn.Module):
    """Strided, dilated, grouped, depthwise, 'same' (even kernel), reflect/circular padded and
    non-square convolutions; BatchNorm with non-trivial statistics; in-place ReLUs and an in-place
    residual addition that overwrites a layer's output."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.dilated = nn.Conv2d(12, 12, 3, padding=2, dilation=2, groups=3)
        self.depthwise = nn.Conv2d(12, 12, 5, padding=2, groups=12, padding_mode="reflect")
        self.same = nn.Conv2d(12, 16, 4, padding="same", padding_mode="circular")
        self.tall = nn.Conv2d(16, 16, (3, 1), stride=(1, 2))
        self.point = nn.Conv2d(16, 16, 1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(16, classes)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = self.relu(self.bn(self.stem(x)))
        x = F.relu(self.down(x))
        y = self.dilated(x)
        y += x  # overwrites `dilated`'s output in place
        y = F.relu(y, inplace=True)
        y = self.depthwise(y)
        y = self.act(self.same(y))
        y = self.point(self.tall(y))
        return self.head(self.act(y).mean(dim=(2, 3)))


TINY_CONVS = ["stem", "down", "dilated", "depthwise", "same", "tall", "point"]
TINY_LAYERS = ["", "stem", "bn", "relu", "down", "dilated", "depthwise", "same", "tall", "point"]
SHARED_MODULE = "act"  # runs twice per forward


@pytest.fixture
def tiny() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def tiny_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 16, 16, generator=g)
