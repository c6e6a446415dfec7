"""Meta-saliency equals the naive per-image reference: copy the model, one SGD step of lr 2ε on that
image's loss, explain the copy."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import revisal
from conftest import TinyNet, vgg16_narrow_head
from reproduction.mini_models import build

LAYERS = ["", "bn", "same", "point"]
METHODS = ["normgrad", "linear_approx", "gradient", "grad_cam", "selective_normgrad", "guided_backprop",
           "deconvnet", "excitation_backprop", "contrastive_excitation_backprop"]


def naive(model, x, target, layers, methods, eps, ascent, loss=None):
    maps = []
    for i in range(x.shape[0]):
        clone = copy.deepcopy(model)
        opt = torch.optim.SGD(clone.parameters(), lr=2 * eps, maximize=ascent)
        out = clone(x[i : i + 1])
        value = loss(out, i) if loss else F.cross_entropy(out, target[i : i + 1])
        opt.zero_grad()
        value.backward()
        opt.step()
        t = (lambda o, i=i: target(o)) if callable(target) else int(target[i])
        maps.append(revisal.saliency(clone, x[i : i + 1], t, layers, methods))
    return {key: torch.cat([m[key] for m in maps]) for key in maps[0]}


def assert_maps_close(got, want, rtol=1e-9):
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=rtol, atol=rtol * float(want[key].abs().max()) + 1e-300,
                                   msg=lambda m, k=key: f"{k}: {m}")


@pytest.fixture
def bn_net():
    torch.manual_seed(0)
    model = TinyNet().eval().double()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x, torch.tensor([0, 3, 4])


@pytest.mark.parametrize("batching", ["loop", "vmap"])
@pytest.mark.parametrize("ascent", [False, True])
def test_equals_naive_reference_on_bn_net(bn_net, batching, ascent):
    model, x, t = bn_net
    got = revisal.saliency(model, x, t, LAYERS, METHODS, meta=revisal.MetaStep(1e-2, ascent=ascent, batching=batching))
    assert_maps_close(got, naive(model, x, t, LAYERS, METHODS, 1e-2, ascent))


@pytest.mark.parametrize("batching", ["loop", "vmap"])
def test_equals_naive_reference_on_vgg_style_nets(batching):
    torch.manual_seed(0)
    layers = ["features.3", "features.13", "features.17"]
    methods = ["normgrad", "selective_normgrad", "linear_approx", "guided_backprop", "excitation_backprop"]
    model = build("mini_vgg", 12).eval().double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([1, 7])
    for ascent in (False, True):
        got = revisal.saliency(model, x, t, layers, methods, meta=revisal.MetaStep(1e-1, ascent=ascent, batching=batching))
        assert_maps_close(got, naive(model, x, t, layers, methods, 1e-1, ascent), rtol=1e-8)


@pytest.mark.slow
def test_equals_naive_reference_on_torchvision_vgg16():
    """VGG16 with a 512-wide head (conftest): the reference copies and steps the whole model per
    image, and the 4096-wide head is 90% of its weights."""
    torch.manual_seed(0)
    model = vgg16_narrow_head().eval().double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([3, 817])
    layers, methods = ["features.15", "features.29"], ["normgrad", "selective_normgrad", "linear_approx"]
    got = revisal.saliency(model, x, t, layers, methods, meta=revisal.MetaStep(1e-3))
    assert_maps_close(got, naive(model, x, t, layers, methods, 1e-3, False), rtol=1e-8)


def test_meta_step_changes_the_maps(bn_net):
    model, x, t = bn_net
    plain = revisal.saliency(model, x, t, LAYERS, ["linear_approx", "normgrad"])
    meta = revisal.saliency(model, x, t, LAYERS, ["linear_approx", "normgrad"], meta=revisal.MetaStep(1e-2))
    assert all(not torch.allclose(plain[k], meta[k]) for k in plain)


@pytest.mark.parametrize("batching", ["loop", "vmap"])
def test_zero_step_gives_the_plain_map(bn_net, batching):
    model, x, t = bn_net
    plain = revisal.saliency(model, x, t, LAYERS, METHODS)
    for lr in (0.0, 1e-12):
        meta = revisal.saliency(model, x, t, LAYERS, METHODS, meta=revisal.MetaStep(lr, batching=batching))
        assert_maps_close(meta, plain, rtol=1e-7)


def test_frozen_parameters_are_not_stepped(bn_net):
    model, x, t = bn_net
    model.stem.weight.requires_grad_(False)
    model.head.bias.requires_grad_(False)
    for batching in ("loop", "vmap"):
        got = revisal.saliency(model, x, t, ["same"], ["normgrad"], meta=revisal.MetaStep(1e-2, batching=batching))
        assert_maps_close(got, naive(model, x, t, ["same"], ["normgrad"], 1e-2, False))
    assert not model.stem.weight.requires_grad and model.same.weight.requires_grad


def test_callable_objective_steps_on_minus_the_objective(bn_net):
    model, x, _ = bn_net
    objective = lambda out: out.log_softmax(1)[:, 2]  # noqa: E731
    for batching in ("loop", "vmap"):
        got = revisal.saliency(model, x, objective, ["same", "point"], ["linear_approx"],
                               meta=revisal.MetaStep(1e-2, batching=batching))
        want = naive(model, x, objective, ["same", "point"], ["linear_approx"], 1e-2, False,
                     loss=lambda out, i: -objective(out).sum())
        assert_maps_close(got, want)


def test_memory_budget_chunks_give_the_same_maps(bn_net):
    model, x, t = bn_net
    big = revisal.saliency(model, x, t, ["same"], ["normgrad"], meta=revisal.MetaStep(1e-2, batching="vmap"))
    small = revisal.saliency(model, x, t, ["same"], ["normgrad"],
                             meta=revisal.MetaStep(1e-2, batching="vmap", memory_budget=1))  # one sample at a time
    assert_maps_close(small, big, rtol=1e-12)


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: (p.requires_grad, None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()},
            {n: m.training for n, m in model.named_modules()},
            {n: len(m._forward_hooks) + len(m._forward_pre_hooks) for n, m in model.named_modules()})


def assert_same(a, b):
    assert a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    for name, (flag, grad) in a[1].items():
        assert b[1][name][0] == flag
        assert (grad is None and b[1][name][1] is None) or torch.equal(grad, b[1][name][1])
    assert a[2] == b[2] and a[3] == b[3]


@pytest.mark.parametrize("batching", ["loop", "vmap"])
def test_model_untouched_including_grads_also_after_errors(bn_net, batching):
    model, x, t = bn_net
    model.train()
    model(x)[:, 0].sum().backward()  # stale .grad fields must survive
    model.stem.bias.requires_grad_(False)
    before = snapshot(model)
    revisal.saliency(model, x, t, LAYERS, METHODS, meta=revisal.MetaStep(1e-2, batching=batching))
    assert_same(before, snapshot(model))

    def broken(out):
        raise RuntimeError("boom")

    for target, error in ((broken, RuntimeError), (torch.tensor([0, 9, 1]), ValueError)):
        with pytest.raises(error):
            revisal.saliency(model, x, target, LAYERS, ["normgrad"], meta=revisal.MetaStep(1e-2, batching=batching))
        assert_same(before, snapshot(model))


def test_bad_meta_arguments(bn_net):
    model, x, t = bn_net
    with pytest.raises(ValueError, match="lr"):
        revisal.MetaStep(-1.0)
    with pytest.raises(ValueError, match="lr"):
        revisal.MetaStep(float("nan"))
    with pytest.raises(ValueError, match="batching"):
        revisal.MetaStep(batching="threads")
    with pytest.raises(ValueError, match="memory_budget"):
        revisal.MetaStep(memory_budget=0)
    with pytest.raises(TypeError, match="meta"):
        revisal.saliency(model, x, t, ["same"], ["normgrad"], meta=1e-3)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to step"):
        revisal.saliency(model, x, t, ["same"], ["normgrad"], meta=revisal.MetaStep())
