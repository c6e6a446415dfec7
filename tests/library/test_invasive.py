"""Invasive baselines: parity with TorchRay and Captum (test-only oracles), and the pass count.

Every parity check runs in float64. In float32 the rounding of a convolution differs between CPUs
and between batch sizes, and a random-init ResNet-50 turns a 1e-7 difference between a batch-2 and a
batch-1 pass into ~1% of the map (a ReLU whose input is within rounding of 0 flips its gate): on one
AMD EPYC the float32 guided-backprop map differed from TorchRay's in 4.4% of its elements. In float64
both sides agree to ~1e-15 on any CPU, so ``RTOL = 1e-9`` leaves six orders of magnitude for that
amplification, while a wrong rule (e.g. deconvnet's for guided backprop's) is off by O(1).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torchvision
from torch import nn

import revisal
from conftest import oracle, vgg16_narrow_head

INVASIVE = ["guided_backprop", "deconvnet", "excitation_backprop", "contrastive_excitation_backprop"]


RTOL = 1e-9  # float64 (see the module docstring)


def no_inplace(model: nn.Module) -> nn.Module:
    """TorchRay's backward functions and Captum's module hooks need out-of-place ReLUs; revisal's
    rules do not (checked below), so only the oracles' copies are changed."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return model


def oracle_copy(model: nn.Module) -> nn.Module:
    """The oracles' copy: out-of-place ReLUs and frozen weights (TorchRay's ``backward`` would also
    compute every weight gradient, which no saliency map needs)."""
    model = no_inplace(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# VGG16 at 32 px (its deepest layer here is still 2×2) with a 512-wide head: float64 at a fraction
# of the cost of 64 px and a 4096-wide head.
CASES = {
    "vgg16": (vgg16_narrow_head, 32, ["", "features.9", "features.16", "features.23", "features.29"], "classifier.4"),
    "resnet50": (torchvision.models.resnet50, 64, ["", "layer1", "layer2", "layer3"], "avgpool"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    make, size, layers, contrast = CASES[request.param]
    torch.manual_seed(0)
    model = make().eval().double()
    x = torch.randn(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    return request.param, model, x, [3, 817], layers, contrast


def close(got, want, rtol=RTOL):
    assert got.dtype == want.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * float(want.abs().max()) + 1e-300)


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_relu_rules_match_torchray(case, method):
    tr = oracle(f"torchray.attribution.{method}")
    name, model, x, ids, layers, _ = case
    ours = revisal.saliency(model, x, torch.tensor(ids), layers, [method])
    theirs = oracle_copy(model)
    for layer in layers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = getattr(tr, method)(theirs, x.clone(), ids, saliency_layer=layer)
        assert want.abs().max() > 0
        close(ours[method, layer], want)


def test_guided_backprop_sum_matches_torchray_with_the_authors_sum(case):
    """The authors' ``guided_backprop_sum`` (their normgrad branch): TorchRay's guided backprop with
    the map ``Σ_c g̃_c`` (signed channel sum) instead of ``max_c |g̃_c|``, passed to pip TorchRay as
    its ``gradient_to_saliency``."""
    tr = oracle("torchray.attribution.guided_backprop")
    _, model, x, ids, layers, _ = case
    ours = revisal.saliency(model, x, torch.tensor(ids), layers, ["guided_backprop_sum"])
    theirs = oracle_copy(model)
    for layer in layers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = tr.guided_backprop(theirs, x.clone(), ids, saliency_layer=layer,
                                      gradient_to_saliency=lambda probe: probe.grad.sum(1, keepdim=True))
        assert want.abs().max() > 0
        if layer == "":  # through the first conv the guided signal takes both signs: the sum keeps them
            assert (want < 0).any() and (want > 0).any()
        close(ours["guided_backprop_sum", layer], want)


def test_excitation_backprop_matches_torchray(case):
    eb = oracle("torchray.attribution.excitation_backprop")
    name, model, x, ids, layers, _ = case
    layers = [layer for layer in layers if layer]  # TorchRay's EB probe needs a module
    ours = revisal.saliency(model, x, torch.tensor(ids), layers, ["excitation_backprop"])
    theirs = oracle_copy(model)
    if name == "resnet50":
        theirs = eb.update_resnet(theirs)  # TorchRay's residual-sum rule needs its EltwiseSum module
    for layer in layers:
        want = eb.excitation_backprop(theirs, x.clone(), ids, saliency_layer=layer)
        assert want.abs().max() > 0
        close(ours["excitation_backprop", layer], want)


def test_contrastive_excitation_backprop_matches_torchray(case):
    """TorchRay subtracts the dual signal at the contrast layer, revisal subtracts the two
    back-propagated signals: equal by linearity, up to float64 rounding."""
    eb = oracle("torchray.attribution.excitation_backprop")
    name, model, x, ids, layers, contrast = case
    layers = [layer for layer in layers if layer]
    ours = revisal.saliency(model, x, torch.tensor(ids), layers, ["contrastive_excitation_backprop"],
                            contrast_layer=contrast)
    default = revisal.saliency(model, x, torch.tensor(ids), layers, ["contrastive_excitation_backprop"])
    positive = revisal.saliency(model, x, torch.tensor(ids), layers, ["excitation_backprop"])
    theirs = oracle_copy(model)
    if name == "resnet50":
        theirs = eb.update_resnet(theirs)
    for layer in layers:
        got = ours["contrastive_excitation_backprop", layer]
        # the same computation twice in one process: equal bit for bit on any CPU
        assert torch.equal(got, default["contrastive_excitation_backprop", layer])
        want = eb.contrastive_excitation_backprop(theirs, x.clone(), ids, saliency_layer=layer, contrast_layer=contrast)
        # The map is a difference of two non-negative excitations of similar size (on a random-init
        # net they nearly cancel: the map is 1e-8 of each at VGG16's features.9), so its rounding
        # error is relative to them, not to the difference: 1e-12 of them is ~1e4 float64 steps.
        scale = float(positive["excitation_backprop", layer].abs().max()) + float(got.abs().max())
        atol = 1e-12 * scale
        assert want.abs().max() > 100 * atol  # the contrast is resolved: a wrong map would be caught
        torch.testing.assert_close(got, want, rtol=0, atol=atol)


@pytest.mark.parametrize("method,captum_class", [("guided_backprop", "GuidedBackprop"), ("deconvnet", "Deconvolution")])
def test_relu_rules_match_captum_at_the_input(case, method, captum_class):
    captum_attr = oracle("captum.attr")
    _, model, x, ids, _, _ = case
    ours = revisal.saliency(model, x, torch.tensor(ids), [""], [method])[method, ""]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attribution = getattr(captum_attr, captum_class)(oracle_copy(model)).attribute(x.clone(), target=torch.tensor(ids))
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
    """Exact: both models run the same kernels on the same batch (the in-place flag changes where a
    ReLU writes, not what it computes), so the maps are equal bit for bit on any CPU."""
    a = revisal.saliency(tiny, tiny_images, 2, ["", "stem", "same"], INVASIVE)
    b = revisal.saliency(no_inplace(tiny), tiny_images, 2, ["", "stem", "same"], INVASIVE)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_invasive_batch_equals_single(tiny, tiny_images):
    """float64: a convolution over a batch of 3 and over one image round differently in float32 (by
    CPU), and excitation backprop divides by W⁺x, which amplifies that."""
    model, x = tiny.double(), tiny_images.double()
    ids = torch.tensor([4, 0, 2])
    batch = revisal.saliency(model, x, ids, ["stem", "same"], INVASIVE)
    for i in range(3):
        single = revisal.saliency(model, x[i : i + 1], int(ids[i]), ["stem", "same"], INVASIVE)
        for key in single:
            close(batch[key][i : i + 1], single[key], rtol=1e-8)
