"""Transformers and channels-last networks: every method at every block, never a misread layout.

The oracle is independent of revisal's engine: per-location identity layers are inserted on the
channel axis (the last one, for token sequences and channels-last maps) with one copy of their
parameters per sample and per location, and autograd gives each copy's gradient, i.e. location u's
summand of the weight gradient (paper eqs. 2-3). Tokens are then put on their grid by hand (prefix
dropped, row-major), channels-last maps used as they are. Everything runs in float64 on random weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision
from model_state import assert_same_state, snapshot
from oracle import AGGREGATE
from torch import nn

import revisal

SIZE = 32
METHODS = ["gradient", "gradient_sum", "linear_approx", "grad_cam", "normgrad", "selective_normgrad"]


class PermutedCNN(nn.Module):
    """A CNN that goes channels-last after its first conv (as ConvNeXt blocks do) and back."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(6)
        self.mlp = nn.Linear(6, 10)
        self.act = nn.GELU()
        self.head = nn.Linear(10, 5)

    def forward(self, x):
        x = self.conv(x).permute(0, 2, 3, 1)  # [N, 16, 16, 6]
        x = self.act(self.mlp(self.norm(x)))  # [N, 16, 16, 10]
        return self.head(x.mean((1, 2)))


def _random_head(model: nn.Module) -> nn.Module:
    nn.init.normal_(model.heads.head.weight)  # torchvision starts it at 0: every gradient would be 0
    return model


def _timm(name: str, **kw) -> nn.Module:
    return timm.create_model(name, pretrained=False, num_classes=7, img_size=SIZE, **kw)


#: family → (model factory, {layer: (layout, prefix tokens, grid)}) with the layout stated by hand.
FAMILIES = {
    "timm_vit": (lambda: _timm("vit_tiny_patch16_224", patch_size=8, depth=2),
                 {"blocks.0": ("tokens", 1, (4, 4)), "blocks.0.mlp.fc1": ("tokens", 1, (4, 4))}),
    "timm_vit_registers": (lambda: _timm("vit_tiny_patch16_224", patch_size=8, depth=2, reg_tokens=4,
                                         global_pool="avg"),
                           {"blocks.1": ("tokens", 5, (4, 4)), "norm": ("tokens", 5, (4, 4))}),
    "deit_distilled": (lambda: _timm("deit_tiny_distilled_patch16_224", patch_size=8, depth=2),
                       {"blocks.0": ("tokens", 2, (4, 4))}),
    "torchvision_vit": (lambda: _random_head(torchvision.models.VisionTransformer(SIZE, 8, 2, 2, 16, 32, num_classes=7)),
                        {"encoder.layers.encoder_layer_0": ("tokens", 1, (4, 4))}),
    "timm_swin": (lambda: _timm("swin_tiny_patch4_window7_224", window_size=2, embed_dim=16, depths=(1, 1),
                                num_heads=(1, 2)),
                  {"layers.0": ("nhwc", 0, None), "layers.1": ("nhwc", 0, None)}),
    "torchvision_swin": (lambda: torchvision.models.swin_transformer.SwinTransformer(
                             [4, 4], 16, [1, 1], [1, 2], [2, 2], num_classes=7),
                         {"features.0": ("nhwc", 0, None), "features.1": ("nhwc", 0, None),
                          "features.3": ("nhwc", 0, None)}),
    "timm_convnext": (lambda: timm.create_model("convnext_atto", pretrained=False, num_classes=7, conv_mlp=False),
                      {"stages.1": ("nchw", 0, None), "stages.1.blocks.0.mlp.fc1": ("nhwc", 0, None)}),
    "permuted_cnn": (PermutedCNN, {"conv": ("nchw", 0, None), "mlp": ("nhwc", 0, None), "act": ("nhwc", 0, None)}),
}


def _model(family: str) -> nn.Module:
    torch.manual_seed(0)
    return FAMILIES[family][0]().double().eval()


def _images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _to_grid(t: torch.Tensor, layout: str, prefix: int, grid) -> torch.Tensor:
    """[N, ..., D] (channel axis last, as the oracle keeps contributions) → [N, h, w, D]."""
    return t[:, prefix:].unflatten(1, grid) if layout == "tokens" else t


def _contributions(model, images, ids, layer, layout, prefix, grid, site) -> torch.Tensor:
    """Location u's summand of the gradient of an identity layer inserted on the channel axis:
    bias b (g_u), scale α (g_u ⊙ x_u) or 1×1 identity W (g_u x_uᵀ), one copy per sample and location."""
    module = dict(model.named_modules())[layer]
    kept = {}

    def insert(m, args, out):
        x = out.movedim(1, -1) if layout == "nchw" else out  # channels last
        if site == "bias":
            p = torch.zeros_like(x, requires_grad=True)
            y = x + p
        elif site == "scale":
            p = torch.ones_like(x, requires_grad=True)
            y = x * p
        else:
            eye = torch.eye(x.shape[-1], dtype=x.dtype)
            p = eye.expand(*x.shape, x.shape[-1]).clone().requires_grad_(True)
            y = torch.einsum("...c,...dc->...d", x, p)
        kept["p"], kept["x"] = p, x.detach()
        return y.movedim(-1, 1) if layout == "nchw" else y

    handle = module.register_forward_hook(insert)
    try:
        out = model(images)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(out.gather(1, ids[:, None]).sum(), kept["p"])
    c = grad.flatten(-2) if site == "conv1x1" else grad  # g_u x_uᵀ, flattened
    return _to_grid(c, layout, prefix, grid), _to_grid(kept["x"], layout, prefix, grid)


SLOW = {  # method → (site, aggregation) on the oracle's contributions
    "gradient": ("bias", "maxabs"), "gradient_sum": ("bias", "sum"), "linear_approx": ("scale", "sum"),
    "normgrad": ("conv1x1", "norm"), "selective_normgrad": ("scale", "filter_norm"),
}


def _slow(model, images, ids, layer, layout, prefix, grid, method) -> torch.Tensor:
    if method == "grad_cam":  # (Σ_k ḡ_k x_ku)₊, ḡ the mean over the patch locations only
        g, x = _contributions(model, images, ids, layer, layout, prefix, grid, "bias")
        mean = g.mean((1, 2), keepdim=True)
        return AGGREGATE["relu_sum"](mean * x)
    site, agg = SLOW[method]
    c, _ = _contributions(model, images, ids, layer, layout, prefix, grid, site)
    return AGGREGATE[agg](c)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_method_equals_the_per_location_formula(family):
    model = _model(family)
    layers = FAMILIES[family][1]
    images, ids = _images(), torch.tensor([1, 4])
    before = snapshot(model)
    maps = revisal.saliency(model, images, ids, list(layers), METHODS)
    assert_same_state(before, snapshot(model))
    for layer, (layout, prefix, grid) in layers.items():
        for method in METHODS:
            want = _slow(model, images, ids, layer, layout, prefix, grid, method)
            assert want.abs().max() > 0, (layer, method)  # a map that says something
            got = maps[method, layer]
            assert got.shape == (2, 1, *want.shape[1:3]), (layer, method)
            torch.testing.assert_close(got[:, 0], want, rtol=1e-9, atol=1e-12, msg=f"{family} {layer} {method}")


def test_swin_stage_is_read_channels_last_not_as_a_28_wide_map():
    """Regression: a timm Swin stage ([N, H, W, C]) used to give maps [N, 1, W, C], H read as the
    channels."""
    model = _model("timm_swin")
    maps = revisal.saliency(model, _images(), 1, ["layers.1"], ["normgrad"])
    assert maps["normgrad", "layers.1"].shape == (2, 1, 4, 4)


def test_normgrad_on_a_tokenwise_linear_is_the_real_layer_site():
    """A Linear applied to every token has weight gradient Σ_u g_u x_uᵀ: its real-layer NormGrad
    is ‖g_u‖·‖x^in_u‖ (Table 1's 1×1 conv), x^in the Linear's input tokens."""
    model = _model("timm_vit")
    images, ids = _images(), torch.tensor([2, 3])
    layer = "blocks.0.mlp.fc1"
    maps = revisal.saliency(model, images, ids, [layer, "blocks.0.attn.qkv"], ["normgrad_conv"])
    for name in (layer, "blocks.0.attn.qkv"):
        module = dict(model.named_modules())[name]
        seen = {}
        handle = module.register_forward_hook(lambda m, a, o: seen.update(x=a[0].detach()))
        g, _ = _contributions(model, images, ids, name, "tokens", 1, (4, 4), "bias")
        handle.remove()
        x_in = _to_grid(seen["x"], "tokens", 1, (4, 4))
        want = g.norm(dim=-1) * x_in.norm(dim=-1)
        torch.testing.assert_close(maps["normgrad_conv", name][:, 0], want, rtol=1e-9, atol=1e-12)


def test_a_patch_embedding_conv_is_a_real_conv():
    """The patch embedding's conv is a real conv (normgrad_conv as for any CNN); its map equals the
    virtual identity's on the patch tokens it becomes."""
    from oracle import slow_map

    model = _model("timm_vit")
    images, ids = _images(), torch.tensor([0, 5])
    maps = revisal.saliency(model, images, ids, ["patch_embed.proj", "patch_embed"], ["normgrad"])
    assert maps["normgrad", "patch_embed.proj"].shape == (2, 1, 4, 4)
    torch.testing.assert_close(maps["normgrad", "patch_embed.proj"], maps["normgrad", "patch_embed"])
    real = revisal.saliency(model, images, ids, ["patch_embed.proj"], ["normgrad_conv"])
    want = slow_map(model, images, ids, "patch_embed.proj", "conv", "norm")
    torch.testing.assert_close(real["normgrad_conv", "patch_embed.proj"][:, 0], want.reshape(2, 4, 4),
                               rtol=1e-9, atol=1e-12)


def test_inputs_other_than_the_pretraining_size_use_their_own_grid():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7, img_size=SIZE, patch_size=8,
                              depth=1, dynamic_img_size=True).double().eval()
    images = torch.randn(1, 3, 48, 24, dtype=torch.float64)
    maps = revisal.saliency(model, images, 0, ["blocks.0"], ["normgrad"])
    assert maps["normgrad", "blocks.0"].shape == (1, 1, 6, 3)


@pytest.mark.parametrize("batching", ["loop", "vmap"])
def test_meta_saliency_on_tokens_is_the_plain_map_after_the_step(batching):
    """Meta-saliency per token: the maps of the model stepped by hand (θ' = θ − 2·lr·∇θ CE, lr = 0.25)
    per sample."""
    model = _model("timm_vit")
    images, ids = _images(), torch.tensor([1, 6])
    meta = revisal.saliency(model, images, ids, ["blocks.0"], ["normgrad"],
                            meta=revisal.MetaStep(0.25, batching=batching))["normgrad", "blocks.0"]
    for i in range(2):
        stepped = _model("timm_vit")
        loss = nn.functional.cross_entropy(stepped(images[i:i + 1]), ids[i:i + 1])
        grads = torch.autograd.grad(loss, list(stepped.parameters()))
        with torch.no_grad():
            for p, g in zip(stepped.parameters(), grads):
                p -= 0.5 * g
        want = revisal.saliency(stepped, images[i:i + 1], ids[i:i + 1], ["blocks.0"], ["normgrad"])
        torch.testing.assert_close(meta[i:i + 1], want["normgrad", "blocks.0"], rtol=1e-9, atol=1e-12)
    plain = revisal.saliency(model, images, ids, ["blocks.0"], ["normgrad"])["normgrad", "blocks.0"]
    assert not torch.allclose(meta, plain)


def test_the_last_block_of_a_class_token_vit_has_no_patch_gradient():
    """With class-token pooling the head reads only the class token: at the last block every patch
    token's gradient is 0, so the maps there are 0 (a property of the network, said in the README)."""
    model = _model("timm_vit")
    maps = revisal.saliency(model, _images(), 1, ["blocks.1"], ["gradient", "normgrad"])
    assert not maps["gradient", "blocks.1"].any() and not maps["normgrad", "blocks.1"].any()


# --- refusals ---------------------------------------------------------------------------------------------
class Tokens(nn.Module):
    """A token model that states no grid."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 8, stride=8)
        self.mix = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # [N, 16, 8]
        return self.head(self.mix(t).mean(1))


def test_a_sequence_with_no_stated_grid_is_refused_and_the_override_places_it():
    model = Tokens().double().eval()
    images = _images()
    with pytest.raises(ValueError, match=r"'mix' outputs a sequence of shape \(2, 16, 8\).*no token grid"):
        revisal.saliency(model, images, 0, ["mix"], ["normgrad"])
    placed = revisal.saliency(model, images, 0, ["mix"], ["normgrad"],
                              layout={"mix": lambda t: t.transpose(1, 2).unflatten(2, (4, 4))})
    want = _slow(model, images, torch.tensor([0, 0]), "mix", "tokens", 0, (4, 4), "normgrad")
    torch.testing.assert_close(placed["normgrad", "mix"][:, 0], want, rtol=1e-9, atol=1e-12)


class Square(nn.Module):
    """Channels-last with C = W = H: a LayerNorm's width fits both readings."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.norm(self.conv(x).permute(0, 2, 3, 1)).mean((1, 2)))


def test_an_ambiguous_channels_last_map_is_refused_until_stated():
    model = Square().double().eval()
    images = _images()
    with pytest.raises(ValueError, match=r"'norm' outputs shape \(2, 8, 8, 8\).*does not guess.*layout="):
        revisal.saliency(model, images, 0, ["norm"], ["normgrad"])
    stated = revisal.saliency(model, images, 0, ["norm"], ["normgrad"], layout={"norm": "nhwc"})
    want = _slow(model, images, torch.tensor([0, 0]), "norm", "nhwc", 0, None, "normgrad")
    torch.testing.assert_close(stated["normgrad", "norm"][:, 0], want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("layout, match", [
    ({"blocks.0": "nhwc"}, r"layout: 'nhwc' for layer 'blocks.0', whose output has shape \(2, 17, 192\)"),
    ({"blocks.0": "columns"}, r"layout: expected \('nchw', 'nhwc', 'tokens'\)"),
    ({"blocks.0": lambda t: t}, r"layout: the callable for layer 'blocks.0' turned shape \(2, 17, 192\) into"),
    (["blocks.0"], r"layout: expected a mapping"),
])
def test_a_layout_that_contradicts_the_shape_is_refused(layout, match):
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7, img_size=SIZE, patch_size=8,
                              depth=1).eval()
    with pytest.raises((ValueError, TypeError), match=match):
        revisal.saliency(model, torch.randn(2, 3, SIZE, SIZE), 0, ["blocks.0"], ["normgrad"], layout=layout)


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet", "excitation_backprop"])
def test_invasive_rules_are_refused_on_a_transformer(method):
    model = _model("timm_vit")
    with pytest.raises(ValueError, match=rf"'{method}' .*'scaled_dot_product_attention' \(in module 'blocks.1.attn'\)"):
        revisal.saliency(model, _images(), 0, ["blocks.0"], [method])
    with pytest.raises(ValueError, match=rf"'{method}' .*'gelu' \(in module 'act'\).*refused"):
        revisal.saliency(PermutedCNN().double().eval(), _images(), 0, ["conv"], [method])


@pytest.mark.parametrize("family, layer", [("timm_vit", "blocks.0"), ("timm_swin", "layers.1")])
def test_the_adapters_read_the_layout_too(family, layer):
    """The Quantus explain_func and the Captum-style LayerAttribution give revisal.saliency's maps."""
    from revisal.adapters import LayerAttribution, quantus_explain_func

    model = _model(family)
    images, ids = _images(), torch.tensor([3, 0])
    want = revisal.saliency(model, images, ids, [layer], ["normgrad"])["normgrad", layer]
    got = LayerAttribution(model, layer, "normgrad").attribute(images, ids)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    quantus = quantus_explain_func(model, images.numpy(), ids.numpy(), method="normgrad", layer=layer, resize=False)
    np.testing.assert_array_equal(quantus, want.float().numpy())
