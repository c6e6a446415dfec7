"""Invasive baselines: parity with TorchRay and Captum (test-only oracles), and the pass count."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torchvision
from torch import nn

import revisal

INVASIVE = ["guided_backprop", "deconvnet", "excitation_backprop", "contrastive_excitation_backprop"]


def no_inplace(model: nn.Module) -> nn.Module:
    """TorchRay's backward functions and Captum's module hooks need out-of-place ReLUs; revisal's
    rules do not (checked below), so only the oracles' copies are changed."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return model


CASES = {
    "vgg16": (torchvision.models.vgg16, 64, ["", "features.9", "features.16", "features.23", "features.29"], "classifier.4"),
    "resnet50": (torchvision.models.resnet50, 64, ["", "layer1", "layer2", "layer3"], "avgpool"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    make, size, layers, contrast = CASES[request.param]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    return request.param, model, x, [3, 817], layers, contrast


def close(got, want, rtol=1e-4):
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * float(want.abs().max()) + 1e-30)


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_relu_rules_match_torchray(case, method):
    tr = pytest.importorskip(f"torchray.attribution.{method}")
    name, model, x, ids, layers, _ = case
    ours = revisal.saliency(model, x, torch.tensor(ids), layers, [method])
    oracle = no_inplace(model)
    for layer in layers:
        for i, c in enumerate(ids):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = getattr(tr, method)(oracle, x[i : i + 1].clone(), c, saliency_layer=layer)
            close(ours[method, layer][i : i + 1], want)


def test_excitation_backprop_matches_torchray(case):
    eb = pytest.importorskip("torchray.attribution.excitation_backprop")
    name, model, x, ids, layers, _ = case
    layers = [layer for layer in layers if layer]  # TorchRay's EB probe needs a module
    ours = revisal.saliency(model, x, torch.tensor(ids), layers, ["excitation_backprop"])
    oracle = no_inplace(model)
    if name == "resnet50":
        oracle = eb.update_resnet(oracle)  # TorchRay's residual-sum rule needs its EltwiseSum module
    for layer in layers:
        for i, c in enumerate(ids):
            want = eb.excitation_backprop(oracle, x[i : i + 1].clone(), c, saliency_layer=layer)
            close(ours["excitation_backprop", layer][i : i + 1], want, rtol=1e-3)


def test_contrastive_excitation_backprop_matches_torchray(case):
    """In float64: TorchRay subtracts the dual signal at the contrast layer, revisal subtracts the two
    back-propagated signals; equal by linearity, but float32 cancellation would blur the check."""
    eb = pytest.importorskip("torchray.attribution.excitation_backprop")
    name, model, x, ids, layers, contrast = case
    model, x = copy.deepcopy(model).double(), x.double()
    layers = [layer for layer in layers if layer]
    ours = revisal.saliency(model, x, torch.tensor(ids), layers, ["contrastive_excitation_backprop"],
                            contrast_layer=contrast)
    default = revisal.saliency(model, x, torch.tensor(ids), layers, ["contrastive_excitation_backprop"])
    oracle = no_inplace(model)
    if name == "resnet50":
        oracle = eb.update_resnet(oracle)
    for layer in layers:
        assert torch.equal(ours["contrastive_excitation_backprop", layer], default["contrastive_excitation_backprop", layer])
        for i, c in enumerate(ids):
            want = eb.contrastive_excitation_backprop(oracle, x[i : i + 1].clone(), c, saliency_layer=layer,
                                                      contrast_layer=contrast)
            assert want.abs().max() > 0
            close(ours["contrastive_excitation_backprop", layer][i : i + 1], want, rtol=1e-9)


@pytest.mark.parametrize("method,captum_class", [("guided_backprop", "GuidedBackprop"), ("deconvnet", "Deconvolution")])
def test_relu_rules_match_captum_at_the_input(case, method, captum_class):
    captum_attr = pytest.importorskip("captum.attr")
    _, model, x, ids, _, _ = case
    ours = revisal.saliency(model, x, torch.tensor(ids), [""], [method])[method, ""]
    oracle = no_inplace(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attribution = getattr(captum_attr, captum_class)(oracle).attribute(x.clone(), target=torch.tensor(ids))
    close(ours, attribution.abs().amax(1, keepdim=True))


def test_invasive_rules_differ_from_the_gradient(case):
    """Each rule changes the signal (a rule that silently fell back to plain gradients would pass
    the parity tests only if the oracle were broken too)."""
    _, model, x, ids, layers, _ = case
    maps = revisal.saliency(model, x, torch.tensor(ids), layers[:2], ["gradient", "guided_backprop", "deconvnet"])
    for layer in layers[:2]:
        assert not torch.allclose(maps["gradient", layer], maps["guided_backprop", layer])
        assert not torch.allclose(maps["guided_backprop", layer], maps["deconvnet", layer])


def test_one_extra_pass_per_rule(tiny, tiny_images):
    forwards = []
    tiny.register_forward_pre_hook(lambda m, a: forwards.append(1) and None)
    methods = ["normgrad", "linear_approx", "gradient", "guided_backprop", ("scale", "norm"),
               revisal.Method("gb_sum", "bias", "sum", rule="guided"), "excitation_backprop", "deconvnet"]
    layers = ["", "stem", "same", "point"]
    maps = revisal.saliency(tiny, tiny_images, 1, layers, methods)
    assert len(maps) == len(layers) * len(methods)
    assert len(forwards) == 4  # gradient, guided, excitation, deconvnet: not one per method × layer


def test_inplace_relus_do_not_change_invasive_maps(tiny, tiny_images):
    a = revisal.saliency(tiny, tiny_images, 2, ["", "stem", "same"], INVASIVE)
    b = revisal.saliency(no_inplace(tiny), tiny_images, 2, ["", "stem", "same"], INVASIVE)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_invasive_batch_equals_single(tiny, tiny_images):
    """float64: excitation backprop divides by W⁺x, which amplifies float32 rounding (≈1e-4 relative
    between batched and single convolutions on this net whose first conv sees negative inputs)."""
    model, x = tiny.double(), tiny_images.double()
    ids = torch.tensor([4, 0, 2])
    batch = revisal.saliency(model, x, ids, ["stem", "same"], INVASIVE)
    for i in range(3):
        single = revisal.saliency(model, x[i : i + 1], int(ids[i]), ["stem", "same"], INVASIVE)
        for key in single:
            close(batch[key][i : i + 1], single[key], rtol=1e-8)
