"""Notebooks 01, 03 and 05 against the per-image computations of the authors' scripts (issue 20).

The authors' scripts (TorchRay ``normgrad`` branch, commit 832524e) cannot run as committed here
(``np.int``, branch-only imports, a driver that stops after one image), so each test does what their
script does per image with the smallest shim: pip TorchRay 1.0's attribution functions where the
branch uses them unchanged (gradient, guided backprop, deconvnet, Grad-CAM, linear approximation,
excitation backprop; ``resize=True`` to the input), scipy's ``spearmanr`` as their
``compute_similarity``, and plain autograd for the branch-only NormGrad functions. Everything runs
in float64 on random-weight networks, so revisal's per-image numbers must equal theirs to rounding.

* ``class_selectivity.py`` (Figs. 6/7): max class = argmax of the softmax, min class = argmin; one
  map for each, resized to the input; signed Spearman per image (and, as the sanity check's second
  variant, on absolute values of the maps scaled to [−1, 1]).
* ``sanity_check.py`` (Fig. 8): stage 0 explains the label, each later stage the partially
  randomised model's top class; maps resized to the input and scaled to [−1, 1]; Spearman signed and
  on absolute values (ρ, not the p-value their code keeps: ``docs/deviations.md`` row 19).
* ``norm_grad_virtual_identity_correlation.py`` (Table 4): NormGrad at a conv's output (the virtual
  identity) against ``‖g_out‖·‖unfold(a_in)‖`` (the conv's own weights); signed Spearman per image.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import oracle, vgg16_narrow_head
from revisal.metrics import cascading_randomization, class_sensitivity, identity_trick_correlation

SIZE = 32  # VGG16's five pools leave a 1×1 map at 32 px: every layer is still a map


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    model = vgg16_narrow_head().eval().double()
    x = torch.randn(3, 3, SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x


def _torchray_copy(model: nn.Module) -> nn.Module:
    """TorchRay's backward hooks need out-of-place ReLUs."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return model


def _their_map(method: str, model: nn.Module, x: torch.Tensor, target: int, layer: str) -> torch.Tensor:
    module = {"gradient": "gradient", "guided_backprop": "guided_backprop", "deconvnet": "deconvnet",
              "grad_cam": "grad_cam", "linear_approx": "linear_approx", "excitation_backprop": "excitation_backprop"}
    attribution = oracle(f"torchray.attribution.{module[method]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(attribution, method)(model, x.clone(), target, saliency_layer=layer, resize=True)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a.detach().flatten().numpy(), b.detach().flatten().numpy()).statistic)


def _unit_abs(m: torch.Tensor) -> torch.Tensor:
    """The sanity check's ``abs(normalize(map, -1, 1))``."""
    return (2 * (m - m.min()) / (m.max() - m.min()) - 1).abs()


METHODS = ["gradient", "guided_backprop", "deconvnet", "grad_cam", "linear_approx", "excitation_backprop"]
# Maps at most 2× below the input: a bilinear upsampling by 4 or more repeats the edge values of the
# map (align_corners=False clamps), and a tie that float64 rounding breaks one way in a batch and the
# other way alone moves Spearman's ρ by ~1e-7, a property of ranks, not a difference of method.
LAYERS = ["", "features.3", "features.8"]


@pytest.mark.parametrize("method", METHODS)
def test_class_sensitivity_equals_the_class_selectivity_script(vgg, method):
    model, x = vgg
    layers = [layer for layer in LAYERS if layer or method not in ("grad_cam", "excitation_backprop")]
    ours = class_sensitivity(model, x, layers, [method], size=(SIZE, SIZE))
    ours_abs = class_sensitivity(model, x, layers, [method], size=(SIZE, SIZE), absolute=True)
    theirs, compared = _torchray_copy(model), 0
    for i in range(len(x)):
        with torch.no_grad():
            probs = F.softmax(theirs(x[i:i + 1]), dim=1)[0]
        top, bottom = int(probs.argmax()), int(probs.argmin())
        for layer in layers:
            # the authors compute the min-class map first (row 19 (c) of docs/deviations.md matters only for cEB)
            low = _their_map(method, theirs, x[i:i + 1], bottom, layer)
            high = _their_map(method, theirs, x[i:i + 1], top, layer)
            assert low.shape[-2:] == (SIZE, SIZE) and high.abs().max() > 0
            want = _spearman(high, low)  # NaN for a constant map (Grad-CAM's ReLU can zero it), as theirs
            np.testing.assert_allclose(float(ours[method, layer][i]), want, rtol=0, atol=1e-9, equal_nan=True,
                                       err_msg=f"{method} {layer} {i}")
            np.testing.assert_allclose(float(ours_abs[method, layer][i]), _spearman(_unit_abs(high), _unit_abs(low)),
                                       rtol=0, atol=1e-9, equal_nan=True, err_msg=f"{method} {layer} {i} (absolute)")
            compared += bool(np.isfinite(want))
    assert compared >= len(x) * (len(layers) - 1)  # nearly every pair is a number, not two NaNs


def test_cascade_equals_the_sanity_check_per_stage(vgg):
    """Per stage: the authors' target (label, then the partially randomised model's top class), their
    map (TorchRay's linear approximation, resized), and their two Spearman variants; the randomised
    weights are revisal's own (their re-initialisation differs, docs/deviations.md row 6)."""
    from revisal.metrics.randomization import randomize

    model, x = vgg
    labels = torch.tensor([5, 17, 999])
    blocks = ["classifier.6", "classifier.3", "features.28"]
    ours = cascading_randomization(model, x, labels, ["features.8"], ["linear_approx"], blocks=blocks, seed=2,
                                   target_rule="predicted", size=(SIZE, SIZE))
    stage_model = _torchray_copy(model)
    trained = [None] * len(x)
    for k, block in enumerate([None, *blocks]):
        if block is not None:
            randomize(dict(stage_model.named_modules())[block], 2 + k)
        for i in range(len(x)):
            with torch.no_grad():
                target = int(labels[i]) if k == 0 else int(stage_model(x[i:i + 1]).argmax())
            assert int(ours.targets[k, i]) == target
            m = _their_map("linear_approx", stage_model, x[i:i + 1], target, "features.8")
            trained[i] = m if k == 0 else trained[i]
            rho = ours.correlation["linear_approx", "features.8"][k, i]
            rho_abs = ours.correlation_abs["linear_approx", "features.8"][k, i]
            assert float(rho) == pytest.approx(_spearman(trained[i], m), abs=1e-9)
            assert float(rho_abs) == pytest.approx(_spearman(_unit_abs(trained[i]), _unit_abs(m)), abs=1e-9)


def test_identity_trick_equals_the_virtual_identity_script(vgg):
    """``norm_grad`` (output norm × gradient norm at the conv's output) against ``norm_grad_proper``
    (gradient norm × the norm of the conv's unfolded input patch), both resized to the input, signed
    Spearman, per image, for the label (the script's ``y``)."""
    model, x = vgg
    labels = torch.tensor([3, 41, 600])
    layers = ["features.5", "features.7"]  # 16² convs at 32 px (see LAYERS)
    ours = identity_trick_correlation(model, x, labels, layers, size=(SIZE, SIZE))
    slow = _torchray_copy(model)  # out-of-place ReLUs: the conv's output must stay the conv's output
    modules = dict(slow.named_modules())
    for layer in layers:
        conv = modules[layer]
        seen = {}
        handle = conv.register_forward_hook(lambda m, a, o: seen.update(inp=a[0], out=o))
        for i in range(len(x)):
            xi = x[i:i + 1].clone().requires_grad_(True)
            logits = slow(xi)
            out = seen["out"]
            (g,) = torch.autograd.grad(logits[0, labels[i]], out)
            patches = F.unfold(seen["inp"], conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                               stride=conv.stride).view(1, -1, *out.shape[-2:])
            identity = g.norm(dim=1, keepdim=True) * out.norm(dim=1, keepdim=True)
            proper = g.norm(dim=1, keepdim=True) * patches.norm(dim=1, keepdim=True)
            up = [F.interpolate(m.detach(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)
                  for m in (identity, proper)]
            assert float(ours[layer][i]) == pytest.approx(_spearman(*up), abs=1e-9), (layer, i)
        handle.remove()
    assert all(bool(np.isfinite(ours[layer].numpy()).all()) for layer in layers)
