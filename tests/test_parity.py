"""Parity with independent implementations (test-only oracles): Captum and pytorch-grad-cam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

import revisal

captum_attr = pytest.importorskip("captum.attr")
pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

# Layers whose output no in-place op overwrites (Captum and pytorch-grad-cam read the gradient
# from a hook on the layer's output tensor, which an in-place op would re-route).
# Targets chosen so that every Grad-CAM map is non-trivial (random-init maps are often all ≤ 0).
CASES = {
    "vgg16": (torchvision.models.vgg16, ["features.29", "features.22", "features.15"], [3, 817]),
    "resnet50": (torchvision.models.resnet50, ["layer4", "layer3", "layer2"], [1, 2]),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    make, layers, ids = CASES[request.param]
    torch.manual_seed(0)
    model = make().eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    return model, images, torch.tensor(ids), layers


def close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()) + 1e-12)


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
    """pytorch-grad-cam returns min-max scaled maps resized with OpenCV; apply its own post-processing to ours."""
    model, x, ids, layers = case
    maps = revisal.saliency(model, x, ids, layers, ["grad_cam"])
    modules = dict(model.named_modules())
    size = (x.shape[-1], x.shape[-2])
    for layer in layers:
        with pgc.GradCAM(model=model, target_layers=[modules[layer]]) as cam:
            want = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in ids])
        assert want.std() > 0.05  # a non-trivial map, not two blank images agreeing
        ours = scale_cam_image(scale_cam_image(maps.numpy("grad_cam", layer), size))
        np.testing.assert_allclose(ours, want, rtol=1e-3, atol=1e-4)
