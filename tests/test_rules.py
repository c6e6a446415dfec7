"""Backward rules of the invasive methods: each is right in every setting or refuses.

The first tests pin five bugs that were silent (each failed before its fix): a map that depends on
which *other* layers are requested, the contrastive classifier found by registration order, the
target callable's own ops run under the rule, bare in-place ops dropped, and a shared module
accepted by vmap meta. All in float64, so that equalities hold to rounding on any CPU.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import revisal
from revisal.models.mini import build

EB, CEB = "excitation_backprop", "contrastive_excitation_backprop"
INVASIVE = ["guided_backprop", "deconvnet", EB, CEB]
RTOL = 1e-10


def close(got, want, rtol=RTOL):
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * float(want.abs().max()) + 1e-300)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = build("mini_resnet", 10).eval().double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return model, x


@pytest.mark.parametrize("method", [EB, CEB])
def test_a_layer_inside_a_residual_block_ignores_the_other_requested_layers(resnet, method):
    """The residual sum splits the excitation whether or not its skip branch records a graph, so
    requesting the input as well does not change the map at layer2.0.conv2."""
    model, x = resnet
    alone = revisal.saliency(model, x, [1, 7], ["layer2.0.conv2"], [method])
    both = revisal.saliency(model, x, [1, 7], ["", "layer2.0.conv2"], [method])
    assert alone[method, "layer2.0.conv2"].abs().max() > 0
    close(both[method, "layer2.0.conv2"], alone[method, "layer2.0.conv2"])


class HeadFirst(nn.Module):
    """The classifier registered before the features: registration order is not execution order."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return self.fc(F.relu(self.conv2(F.relu(self.conv(x)))).mean((2, 3)))


class HeadLast(HeadFirst):
    def __init__(self):
        nn.Module.__init__(self)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)


def test_contrastive_classifier_is_the_last_layer_that_runs():
    torch.manual_seed(0)
    last = HeadLast().double()
    first = HeadFirst().double()
    first.load_state_dict(last.state_dict())
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want = revisal.saliency(last, x, [0, 2], ["conv", "conv2"], [CEB])
    got = revisal.saliency(first, x, [0, 2], ["conv", "conv2"], [CEB])
    for key in want:
        assert want[key].abs().max() > 0
        close(got[key], want[key])


def test_the_target_callable_runs_outside_the_rule(resnet):
    """Excitation backprop is linear in the seed, and the objective's own ops (here a sum of two
    logits) are not part of the network: the map of o₁ + o₃ is the map of o₁ plus the map of o₃
    (channel-sum aggregation, linear in g)."""
    model, x = resnet
    m = revisal.Method("m", "bias", "sum", rule="excitation")
    layers = ["layer1", "layer2.0.conv2"]
    pair = revisal.saliency(model, x, lambda o: o[:, 1] + o[:, 3], layers, [m])
    one = revisal.saliency(model, x, 1, layers, [m])
    three = revisal.saliency(model, x, 3, layers, [m])
    for layer in layers:
        close(pair["m", layer], one["m", layer] + three["m", layer])


class Bare(nn.Module):
    """In-place ops whose result is not reassigned: ``x.relu_()``, ``y.add_(x)``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = self.conv1(x)
        x.relu_()
        y = self.conv2(x)
        y.add_(x)
        torch.relu_(y)
        return self.fc(y.mean((2, 3)))


class Reassigned(Bare):
    def forward(self, x):
        x = F.relu(self.conv1(x))
        y = self.conv2(x) + x
        return self.fc(F.relu(y).mean((2, 3)))


@pytest.mark.parametrize("method", INVASIVE)
def test_bare_inplace_ops_keep_their_effect_under_the_rules(method):
    torch.manual_seed(0)
    bare = Bare().double()
    plain = Reassigned().double()
    plain.load_state_dict(bare.state_dict())
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    layers = ["", "conv1", "conv2"]
    want = revisal.saliency(plain, x, [0, 3], layers, [method])
    got = revisal.saliency(bare, x, [0, 3], layers, [method])
    for key in want:
        assert want[key].abs().max() > 0
        close(got[key], want[key])


@pytest.mark.parametrize("batching", ["loop", "vmap"])
def test_meta_refuses_a_shared_module_in_both_batchings(batching):
    """ResNet's ``relu`` runs twice in each BasicBlock: its output is ambiguous either way. (Before
    the fix the vmapped pass itself accepted it; only a loop run on the first sample refused it.)"""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="more than once"):
        revisal.saliency(model, x, 1, ["layer1.0.relu"], ["normgrad"],
                         meta=revisal.MetaStep(1e-3, batching=batching))
