"""Backward rules of the invasive methods: each is right in every setting or refuses.

The first tests pin five bugs that were silent (each failed before its fix): a map that depends on
which *other* layers are requested, the contrastive classifier found by registration order, the
target callable's own ops run under the rule, bare in-place ops dropped, and a shared module
accepted by vmap meta. All in float64, so that equalities hold to rounding on any CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import revisal
from reproduction.mini_models import build

EB, CEB = "excitation_backprop", "contrastive_excitation_backprop"
INVASIVE = ["guided_backprop", "deconvnet", EB, CEB]
RTOL = 1e-10


def close(got, want, rtol=RTOL):
    got, want = got.detach(), want.detach()
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


def test_collect_under_vmap_refuses_a_shared_module():
    """The vmapped pass is ``collect`` itself, with the loop's probes: the shared module is refused
    there too, not only by the first sample's loop."""
    from torch.func import vmap

    from revisal.collect import collect
    from revisal.rules import RULES

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval().requires_grad_(False)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    zeros = {"layer1.0.relu": torch.zeros(1, 64, 8, 8)}
    one = lambda xi: collect(model, xi[None], lambda o: o[:, 1], ["layer1.0.relu"], RULES["plain"], zeros=zeros)  # noqa: E731
    with pytest.raises(ValueError, match="more than once"):
        vmap(one)(x)


# ---- Op coverage: every op an invasive pass meets follows the paper's rule or is refused. ----
# Oracle: the rule computed the slow way in float64 on a chain of stages, from each stage's Jacobian
# W (torch.autograd.functional; a bias does not enter it): excitation p' = x ⊙ W⁺ᵀ(p ⊘ W⁺x), guided
# backprop p' = p₊ ⊙ 1[0 < x < t] at a clip to [0, t], deconvnet p' = p₊ there, Wᵀp elsewhere.

def _conv(cin=3, cout=4):
    return nn.Conv2d(cin, cout, 3, padding=1).double()


class Chain(nn.Module):
    """Stages ``(kind, f[, t])``; kind: "map" (linear in x), "clip" (to [0, t]), "pass" (the
    excitation passes through unchanged)."""

    def __init__(self, *stages):
        super().__init__()
        self.stages = stages
        self.mods = nn.ModuleList([s[1] for s in stages if isinstance(s[1], nn.Module)])

    def forward(self, x):
        for stage in self.stages:
            x = stage[1](x)
        return x


def slow_rule(chain: Chain, x: torch.Tensor, target: int, rule: str) -> torch.Tensor:
    """The backward signal at the input, one stage at a time from the Jacobians."""
    acts = [x]
    for stage in chain.stages:
        acts.append(stage[1](acts[-1].clone()))
    p = torch.zeros_like(acts[-1])
    p[0, target] = 1
    for stage, a in zip(reversed(chain.stages), reversed(acts[:-1])):
        kind = stage[0]
        if kind == "clip":
            p = {"guided": p.clamp_min(0) * ((a > 0) & (a < stage[2])), "deconvnet": p.clamp_min(0),
                 "excitation": p * (a > 0)}[rule]
            continue
        if kind == "pass" and rule == "excitation":
            continue
        jac = torch.autograd.functional.jacobian(lambda t: stage[1](t.clone()), a).reshape(p.numel(), a.numel())
        if kind == "map" and rule == "excitation":
            w = jac.clamp_min(0)
            p = (a.flatten() * (w.T @ (p.flatten() / (w @ a.flatten() + 1e-20)))).reshape(a.shape)
        else:
            p = (jac.T @ p.flatten()).reshape(a.shape)
    return p


def _head(*inner, classes: int = 5, width: int = 4) -> Chain:
    """conv → ReLU → ``inner`` stages → global mean → linear."""
    torch.manual_seed(0)
    return Chain(("map", _conv(3, width)), ("clip", nn.ReLU(), math.inf), *inner, ("map", lambda t: t.mean((2, 3))),
                 ("map", nn.Linear(width, classes).double()))


def _check(chain: Chain, rule: str, target: int = 2):
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    want = slow_rule(chain, x, target, rule)
    got = revisal.saliency(chain, x, target, [""], [revisal.Method("m", "bias", "sum", rule=rule)])["m", ""]
    assert want.abs().max() > 0
    close(got, want.sum(1, keepdim=True))


def _batch_norm() -> nn.Module:
    bn = nn.BatchNorm2d(4).double().eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.weight.uniform_(0.5, 1.5)
    return bn


EXCITATION_OPS = {  # one stage per class of op the excitation rule knows
    "avg_pool2d": lambda: ("map", lambda t: F.avg_pool2d(t, 2)),
    "adaptive_avg_pool2d": lambda: ("map", nn.AdaptiveAvgPool2d(3)),
    "mean over a dim": lambda: ("map", lambda t: t.mean(3, keepdim=True)),
    "sum over a dim": lambda: ("map", lambda t: torch.sum(t, 2, keepdim=True)),
    "bilinear interpolation": lambda: ("map", lambda t: F.interpolate(t, scale_factor=2, mode="bilinear")),
    "area interpolation": lambda: ("map", lambda t: F.interpolate(t, size=(3, 3), mode="area")),
    "conv2d (signed weights)": lambda: ("map", _conv(4, 4)),
    "batch norm": lambda: ("pass", _batch_norm()),
    "sigmoid": lambda: ("pass", torch.sigmoid),
    "scalar factor": lambda: ("pass", lambda t: t * 0.5),
    "hardtanh(0, 0.05) (its upper clip passes)": lambda: ("clip", nn.Hardtanh(0.0, 0.05, inplace=True), 0.05),
}


@pytest.mark.parametrize("op", sorted(EXCITATION_OPS))
def test_excitation_rule_per_class_of_op(op):
    torch.manual_seed(1)
    stage = EXCITATION_OPS[op]()
    _check(_head(("map", _conv(4, 4)), ("clip", nn.ReLU(), math.inf), stage), "excitation")


CLIPS = {
    "ReLU6": lambda: (nn.ReLU6(), 6.0),
    "hardtanh(0, 0.05)": lambda: (nn.Hardtanh(0.0, 0.05), 0.05),  # most values are above 0.05
    "threshold(0, 0)": lambda: (nn.Threshold(0.0, 0.0), math.inf),
    "clamp(min=0)": lambda: (lambda t: torch.clamp(t, min=0), math.inf),
    "clamp_min_(0)": lambda: (lambda t: t.clamp_min_(0), math.inf),
    "in-place ReLU": lambda: (nn.ReLU(inplace=True), math.inf),
}


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_relu_rules_cover_every_clip_at_zero(clip, rule):
    torch.manual_seed(1)
    f, top = CLIPS[clip]()
    _check(_head(("map", _conv(4, 4)), ("clip", f, top)), rule)


def test_excitation_gate_gets_nothing_and_passes_the_signal():
    """``x · σ(fc(mean x))`` (squeeze-and-excitation): the gate is a positive per-channel factor,
    the excitation passes to x unchanged and nothing goes to the gate's branch (oracle: the gate
    computed once and frozen as a constant factor)."""
    torch.manual_seed(2)
    fc = nn.Linear(4, 4).double()
    gate = lambda t: torch.sigmoid(fc(t.mean((2, 3))))[:, :, None, None]  # noqa: E731
    gated = _head(("map", lambda t: t * gate(t)))
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        frozen = gate(F.relu(gated.stages[0][1](x)))
    want = slow_rule(_head(("pass", lambda t: t * frozen)), x, 2, "excitation")
    got = revisal.saliency(gated, x, 2, [""], [revisal.Method("m", "bias", "sum", rule="excitation")])["m", ""]
    close(got, want.sum(1, keepdim=True))


class TwoBranches(nn.Module):
    def __init__(self, combine):
        super().__init__()
        torch.manual_seed(3)
        self.a, self.b, self.fc, self.combine = _conv(3, 4), _conv(3, 4), nn.Linear(4, 5).double(), combine

    def forward(self, x):
        return self.fc(self.combine(F.relu(self.a(x)), F.relu(self.b(x))).mean((2, 3)))


def test_excitation_splits_a_sum_with_alpha_in_proportion():
    """``a + α b`` passes ``p ⊙ a/(a+αb)`` to a and ``p ⊙ αb/(a+αb)`` to b (slow: each branch as a
    chain fed with its share, the input's excitation their sum)."""
    model = TwoBranches(lambda u, v: torch.add(u, v, alpha=0.5))
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        u, v = F.relu(model.a(x)), F.relu(model.b(x))
        s = u + 0.5 * v
    top = Chain(("map", lambda t: t.mean((2, 3))), ("map", model.fc))
    p = slow_rule(top, s, 2, "excitation")
    share = torch.where(s == 0, 0.5, u / s)  # where both are 0, p is 0 too
    want = 0
    for conv, share in ((model.a, share), (model.b, 1 - share)):
        want = want + _seeded(conv, x, p * share)
    got = revisal.saliency(model, x, 2, [""], [revisal.Method("m", "bias", "sum", rule="excitation")])["m", ""]
    close(got, want.sum(1, keepdim=True))


def _seeded(conv: nn.Module, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Excitation at x of conv → ReLU seeded with q at the ReLU's output (slow)."""
    z = conv(x)
    q = q * (z > 0)
    w = torch.autograd.functional.jacobian(conv, x).reshape(z.numel(), x.numel()).clamp_min(0)
    return (x.flatten() * (w.T @ (q.flatten() / (w @ x.flatten() + 1e-20)))).reshape(x.shape)


REFUSED = {"LeakyReLU": nn.LeakyReLU(), "SiLU": nn.SiLU(), "GELU": nn.GELU(), "Hardswish": nn.Hardswish(),
           "Mish": nn.Mish(), "ELU": nn.ELU()}


@pytest.mark.parametrize("rule", ["guided", "deconvnet", "excitation"])
@pytest.mark.parametrize("act", sorted(REFUSED))
def test_other_activations_are_refused_naming_op_and_module(act, rule):
    model = nn.Sequential(_conv(3, 4), REFUSED[act], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5).double())
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    op = {"LeakyReLU": "leaky_relu", "SiLU": "silu", "GELU": "gelu", "Hardswish": "hardswish", "Mish": "mish",
          "ELU": "elu"}[act]
    with pytest.raises(ValueError, match=rf"'m' \({rule} backprop\).*'{op}' \(in module '1'\)"):
        revisal.saliency(model, x, 1, [""], [revisal.Method("m", "bias", "sum", rule=rule)])
    revisal.saliency(model, x, 1, [""], ["gradient"])  # the plain gradient needs no rule


@pytest.mark.parametrize("combine,op", [
    (lambda u, v: u + v.mean((2, 3), keepdim=True), "add"),  # broadcast sum of two activations
    (lambda u, v: u * v, "mul"),  # product of two same-shape activations
    (lambda u, v: torch.cumsum(u, 2) + v, "cumsum"),  # an op no rule knows
    (lambda u, v: F.interpolate(u, scale_factor=1.0, mode="bicubic") + v, "interpolate"),  # negative weights
])
def test_excitation_refuses_what_it_has_no_rule_for(combine, op):
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"excitation backprop\).*'_*{op}_*' \(in the model's own forward\)"):
        revisal.saliency(TwoBranches(combine), x, 1, ["a"], ["excitation_backprop"])
    revisal.saliency(TwoBranches(combine), x, 1, ["a"], ["gradient"])


# ---------------------------------------------------------------------------------------------
# Constants are held, not only recorded by id (issue 18: an order-dependent refusal)


def test_constants_hold_the_tensors_they_record():
    """An ``id`` is unique only among live objects. A tensor recorded as a constant and then freed
    (a forward that rebinds a buffer) must not make a new activation at its address a constant."""
    import gc

    from revisal.rules import Constants

    freed = {id(t) for t in [torch.zeros(1) for _ in range(64)]}
    control = [torch.zeros(1) for _ in range(256)]
    assert freed & {id(t) for t in control}, "the allocator reuses freed addresses here: the hazard is real"

    recorded = [torch.zeros(1) for _ in range(64)]
    constants = Constants(recorded)
    del recorded
    gc.collect()
    fresh = [torch.zeros(1) for _ in range(256)]
    assert not any(t in constants for t in fresh)
    assert len(constants) == 64


class RebindsItsBuffer(nn.Module):
    """Re-registers a buffer in every forward (freeing the one the previous call bound), then adds
    two activations; ``rebind=False`` is the same network without the rebinding."""

    def __init__(self, rebind: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        self.register_buffer("scratch", torch.zeros(1))
        self.rebind = rebind

    def forward(self, x):
        h = F.relu(self.conv1(x))
        if self.rebind:
            self.register_buffer("scratch", torch.zeros(1))
        kept = [h * 2.0 for _ in range(32)]  # activations allocated after the free
        return self.fc((F.relu(self.conv2(h)) + kept[-1]).mean((2, 3)))


def test_a_forward_that_rebinds_a_buffer_gets_the_same_excitation_maps():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    methods = ["excitation_backprop", "contrastive_excitation_backprop"]
    reference = revisal.saliency(RebindsItsBuffer(rebind=False), x, 1, ["conv2"], methods)
    model = RebindsItsBuffer()
    for _ in range(10):  # each call runs two passes: the second records the buffer the first bound
        maps = revisal.saliency(model, x, 1, ["conv2"], methods)
        for method in methods:
            torch.testing.assert_close(maps[method, "conv2"], reference[method, "conv2"], rtol=0, atol=0)
