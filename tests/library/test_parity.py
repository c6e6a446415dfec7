"""Parity with independent implementations (test-only oracles): Captum and pytorch-grad-cam.

In float64: both sides compute the same formula by different routes (revisal's one pass, the
oracles' hooks), whose float32 rounding depends on the CPU; in float64 they agree to ~1e-15, so the
tolerance below (1e-9) holds on any machine and a wrong formula is still off by O(1).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torchvision

import revisal
from conftest import oracle, vgg16_narrow_head

captum_attr = oracle("captum.attr")
pgc = oracle("pytorch_grad_cam")
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

# Layers whose output no in-place op overwrites (Captum and pytorch-grad-cam read the gradient
# from a hook on the layer's output tensor, which an in-place op would re-route).
# Targets chosen so that every Grad-CAM map is non-trivial (random-init maps are often all ≤ 0).
# VGG16 with a 512-wide head (see conftest): float64 through the 4096-wide head costs more than the
# convolutions, and nothing here depends on the head's width.
CASES = {
    "vgg16": (vgg16_narrow_head, ["features.29", "features.22", "features.15"], [3, 817]),
    "resnet50": (torchvision.models.resnet50, ["layer4", "layer3", "layer2"], [1, 2]),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    make, layers, ids = CASES[request.param]
    torch.manual_seed(0)
    model = make().eval().double()
    images = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    return model, images, torch.tensor(ids), layers


def close(got, want):
    assert got.dtype == want.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9 * float(want.abs().max()) + 1e-300)


def frozen(model):
    """A copy whose weights need no gradient (pytorch-grad-cam calls ``backward``, which would also
    compute every weight gradient); the input then requires one, so activations still get theirs."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_grad_cam_matches_captum(case):
    model, x, ids, layers = case
    maps = revisal.saliency(model, x, ids, layers, ["grad_cam"])
    modules = dict(model.named_modules())
    for layer in layers:
        want = captum_attr.LayerGradCam(model, modules[layer]).attribute(x, target=ids, relu_attributions=True)
        close(maps["grad_cam", layer], want.detach())


def test_linear_approx_matches_captum(case):
    model, x, ids, layers = case
    maps = revisal.saliency(model, x, ids, layers, ["linear_approx"])
    modules = dict(model.named_modules())
    for layer in layers:
        gxa = captum_attr.LayerGradientXActivation(model, modules[layer]).attribute(x, target=ids)
        close(maps["linear_approx", layer], gxa.detach().sum(dim=1, keepdim=True))


def test_grad_cam_matches_pytorch_grad_cam(case):
    """pytorch-grad-cam returns min-max scaled maps resized with OpenCV; apply its own post-processing to ours.

    Its post-processing casts the float64 map to float32 before resizing: the two inputs to that cast
    differ by ~1e-15, so the outputs differ by at most one float32 rounding step (2⁻²⁴ of the
    [0, 1] range) carried through a convex resize and a rescaling by ≈1: 1e-6 is ≈17 such steps."""
    model, x, ids, layers = case
    maps = revisal.saliency(model, x, ids, layers, ["grad_cam"])
    theirs = frozen(model)
    modules = dict(theirs.named_modules())
    size = (x.shape[-1], x.shape[-2])
    for layer in layers:
        with pgc.GradCAM(model=theirs, target_layers=[modules[layer]]) as cam:
            want = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(c)) for c in ids])
        assert want.std() > 0.05  # a non-trivial map, not two blank images agreeing
        ours = scale_cam_image(scale_cam_image(maps.numpy("grad_cam", layer), size))
        np.testing.assert_allclose(ours, want, rtol=0, atol=1e-6)


def test_grad_cam_on_a_vit_block_matches_pytorch_grad_cam_with_its_reshape_transform():
    """A timm ViT block (tokens, class token first): pytorch-grad-cam with the ``reshape_transform``
    its users write (drop the class token, put the patches on their grid) against revisal reading the
    layout from the model. Same post-processing and tolerance as above."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=64, patch_size=16,
                              depth=2, global_pool="avg").eval().double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ids = [1, 3]
    maps = revisal.saliency(model, x, torch.tensor(ids), ["blocks.0"], ["grad_cam"])

    def reshape_transform(t):
        return t[:, 1:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)

    theirs = frozen(model)
    with pgc.GradCAM(model=theirs, target_layers=[theirs.blocks[0]], reshape_transform=reshape_transform) as cam:
        want = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(c) for c in ids])
    assert want.std() > 0.05
    ours = scale_cam_image(scale_cam_image(maps.numpy("grad_cam", "blocks.0"), (64, 64)))
    np.testing.assert_allclose(ours, want, rtol=0, atol=1e-6)
