"""Every method equals the paper's formula computed the slow way (tests/oracle.py)."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from oracle import AGGREGATE, identity_contributions, slow_map

import revisal
from conftest import TINY_CONVS, TINY_LAYERS, vgg16_narrow_head
from revisal.aggregations import AGGREGATIONS

IDENTITY_SITES = ["bias", "scale", "scale_avg", "conv1x1", "conv3x3"]


def ours(model, images, ids, layer, site, aggregation):
    method = revisal.Method("m", site, aggregation)
    return revisal.saliency(model, images, ids, [layer], [method])["m", layer][:, 0]


def assert_matches(got, want):
    assert got.shape == want.shape
    scale = float(want.abs().max())
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9 * max(scale, 1e-30))


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
@pytest.mark.parametrize("site", IDENTITY_SITES)
@pytest.mark.parametrize("layer", TINY_LAYERS)
def test_identity_sites_on_tiny_net(tiny, tiny_images, layer, site, aggregation):
    model, x = tiny.double(), tiny_images.double()
    ids = torch.tensor([0, 3, 4])
    assert_matches(ours(model, x, ids, layer, site, aggregation), slow_map(model, x, ids, layer, site, aggregation))


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
@pytest.mark.parametrize("layer", TINY_CONVS)
def test_real_conv_site_on_tiny_net(tiny, tiny_images, layer, aggregation):
    """Strided, dilated, grouped, depthwise, 'same', reflect/circular padded, non-square kernels."""
    model, x = tiny.double(), tiny_images.double()
    ids = torch.tensor([1, 2, 0])
    assert_matches(ours(model, x, ids, layer, "conv", aggregation), slow_map(model, x, ids, layer, "conv", aggregation))


# Named methods on full-size architectures (random init, small inputs, float64). VGG16 with a
# 512-wide head (conftest): the slow way copies the model per (layer, site), and the 4096-wide head
# is 90% of its weights; every layer explained here is in its convolutional part.
NAMED = {name: (m.site.name, m.aggregation.name) for name, m in revisal.METHODS.items()}
ARCHITECTURES = {
    "vgg16": (vgg16_narrow_head, 32, ["", "features.3", "features.15", "features.29"], ["features.0", "features.28"]),
    "resnet50": (lambda: torchvision.models.resnet50(), 64, ["", "layer1", "layer2.0.bn3", "layer4"], ["conv1", "layer2.0.conv2", "layer4.0.downsample.0"]),
}


@pytest.fixture(scope="module")
def architectures():
    built = {}
    for name, (make, size, layers, convs) in ARCHITECTURES.items():
        torch.manual_seed(0)
        model = make().eval().double()
        images = torch.randn(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        built[name] = (model, images, layers, convs)
    return built


def check_identity_methods(maps, model, x, ids, layers, names) -> None:
    """Each method's map equals its aggregation of the slow-way contributions (computed once per
    (layer, site): several methods share a site)."""
    for layer in layers:
        contributions = {}
        for name in names:
            site, aggregation = NAMED[name]
            if site not in contributions:
                contributions[site] = identity_contributions(model, x, ids, layer, site)
            assert_matches(maps[name, layer][:, 0], AGGREGATE[aggregation](contributions[site]))


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_named_methods_on_torchvision(architectures, arch):
    model, x, layers, convs = architectures[arch]
    ids = torch.tensor([7, 512])
    identity_methods = [n for n, m in revisal.METHODS.items() if m.site.name != "conv" and not m.invasive]
    maps = revisal.saliency(model, x, ids, layers, identity_methods)
    check_identity_methods(maps, model, x, ids, layers, identity_methods)
    conv_maps = revisal.saliency(model, x, ids, convs, ["normgrad_conv"])
    for layer in convs:
        assert_matches(conv_maps["normgrad_conv", layer][:, 0], slow_map(model, x, ids, layer, "conv", "norm"))


@pytest.mark.slow
def test_named_methods_on_efficientnet_lite0():
    """timm's EfficientNet-Lite0: depthwise stride-2 convs, ReLU6 inside BatchNormAct2d."""
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_lite0").eval().double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ids = torch.tensor([282, 967])
    layers = ["blocks.1", "blocks.3.0.bn1", "bn2"]
    identity_methods = [n for n, m in revisal.METHODS.items() if m.site.name != "conv" and not m.invasive]
    maps = revisal.saliency(model, x, ids, layers, identity_methods)
    check_identity_methods(maps, model, x, ids, layers, identity_methods)
    convs = ["conv_stem", "blocks.1.0.conv_dw", "blocks.5.0.conv_pwl"]
    conv_maps = revisal.saliency(model, x, ids, convs, ["normgrad_conv"])
    for layer in convs:
        assert_matches(conv_maps["normgrad_conv", layer][:, 0], slow_map(model, x, ids, layer, "conv", "norm"))


def test_normgrad_is_product_of_norms(tiny, tiny_images):
    """Table 2 row 4 in closed form: NormGrad = ‖g‖·‖x‖ at the layer output."""
    model, x = tiny.double(), tiny_images.double()
    feats = {}

    def keep(module, args, output):
        feats["x"] = output
        return output.clone()  # the in-place ReLU that follows must not overwrite the kept output

    handle = model.same.register_forward_hook(keep)
    out = model(x)
    handle.remove()
    g = torch.autograd.grad(out[:, 2].sum(), feats["x"])[0]
    want = g.norm(dim=1) * feats["x"].detach().norm(dim=1)
    got = revisal.saliency(model, x, 2, ["same"], ["normgrad"])["normgrad", "same"][:, 0]
    assert_matches(got, want)
