"""The authors' per-image computations, re-typed from TorchRay's ``normgrad`` branch (commit 832524e),
for the parity tests of ``tests/reproduction/test_authors_scripts.py``.

Why re-typed: the scripts cannot run as committed (``np.int``, a driver that stops after one image,
``docs/deviations.md`` row 19), and the pip TorchRay 1.0 that the tests import lacks the branch's
modules (``gradient_sum``, ``guided_backprop_sum``, ``norm_grad``, ``norm_grad_selective``,
``norm_grad_proper``, ``meta_saliency``, ``compute_similarity``, ``sanity_check``) and differs in two
places the branch changed (``saliency`` turns in-place modules off; ``contrastive_excitation_backprop``
probes the *input* of the model for ``saliency_layer=''``). So, as the branch's functions:

* the backward contexts, probes, backward seeds, classifier lookup and ``gradient_to_*`` functions that
  pip TorchRay 1.0 has unchanged (gradient, guided backprop, deconvnet, Grad-CAM, linear approximation,
  excitation backprop) are imported from it;
* the branch-only ``gradient_to_*`` functions are re-typed below, each naming its file;
* :func:`saliency` re-types the branch's ``torchray/attribution/common.py::saliency`` and
  :func:`contrastive_excitation_backprop` the branch's ``torchray/attribution/excitation_backprop.py``
  function of that name, with one change: a list of saliency layers, one probe each, instead of one
  layer per call. Their forward and backward passes do not depend on which module is probed (in-place
  modules are off, probes only retain gradients), so each layer's map is the one a call for that layer
  alone returns; ``test_one_pass_oracle_is_torchrays_call_per_layer`` checks it, bit for bit, against
  pip TorchRay's own one-layer functions. One pass instead of one per layer keeps the widened tests
  within their time budget.

Everything here is meant for float64 models and inputs.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from oracle_imports import oracle
from torch import nn


def torchray_copy(model: nn.Module) -> nn.Module:
    """A deep copy with out-of-place ReLUs: the branch's ``saliency`` sets ``inplace = False`` on every
    module for the call ("Turn off in-place operations"), pip TorchRay 1.0's does not."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    return model


# --- branch-only gradient_to_saliency functions, re-typed -------------------------------------------


def gradient_to_sum_saliency(x: torch.Tensor) -> torch.Tensor:
    """``torchray/attribution/gradient.py::gradient_to_sum_saliency`` (used by ``gradient_sum`` and
    ``guided_backprop.py::guided_backprop_sum``): the channel sum of the (pseudo-)gradient."""
    return torch.sum(x.grad, 1, keepdim=True)


def gradient_to_norm_grad_saliency(x: torch.Tensor) -> torch.Tensor:
    """``torchray/attribution/norm_grad.py::gradient_to_norm_grad_saliency`` (``norm_grad``, the
    virtual identity): ``‖g_u‖ · ‖x_u‖`` over channels."""
    return torch.norm(x.grad, 2, 1, keepdim=True) * torch.norm(x, 2, 1, keepdim=True)


def gradient_to_norm_grad_selective_saliency(x: torch.Tensor) -> torch.Tensor:
    """``torchray/attribution/norm_grad.py::gradient_to_norm_grad_selective_saliency``
    (``norm_grad_selective``): ``‖(x_u ⊙ g_u)₊‖`` over channels."""
    return torch.norm(torch.clamp(x * x.grad, min=0), 2, 1, keepdim=True)


def gradient_to_norm_grad_proper_saliency(x_in, x_out, kernel_size=1, dilation=1, padding=0, stride=1):
    """``torchray/attribution/norm_grad.py::gradient_to_norm_grad_proper_saliency`` (``norm_grad_proper``,
    NormGrad on the conv's own weights): ``‖g_u‖`` at the conv's output times the norm of the conv's
    unfolded input patch at u."""
    grad_weight = torch.norm(x_out.grad, 2, 1, keepdim=True)
    x_in_unfold = F.unfold(x_in, kernel_size, dilation=dilation, padding=padding, stride=stride)
    act_weight = torch.norm(x_in_unfold, 2, 1, keepdim=True).view(x_out.shape[0], 1, *x_out.shape[2:])
    return grad_weight * act_weight


def _recipe(method: str):
    """(backward context, gradient_to_saliency) of each method of ``examples/class_selectivity.py``'s
    ``saliency_funcs`` (revisal's names), as the branch's function for it passes them to ``saliency``."""
    common = oracle("torchray.attribution.common")
    if method in ("gradient", "gradient_sum", "linear_approx", "grad_cam", "normgrad", "selective_normgrad"):
        context = common.NullContext
    elif method in ("guided_backprop", "guided_backprop_sum"):
        context = oracle("torchray.attribution.guided_backprop").GuidedBackpropContext
    elif method == "deconvnet":
        context = oracle("torchray.attribution.deconvnet").DeConvNetContext
    elif method == "excitation_backprop":
        context = oracle("torchray.attribution.excitation_backprop").ExcitationBackpropContext
    else:
        raise ValueError(f"no one-pass recipe for {method!r}")
    to_saliency = {
        "gradient": common.gradient_to_saliency,
        "guided_backprop": common.gradient_to_saliency,
        "deconvnet": common.gradient_to_saliency,
        "gradient_sum": gradient_to_sum_saliency,
        "guided_backprop_sum": gradient_to_sum_saliency,
        "grad_cam": lambda x: oracle("torchray.attribution.grad_cam").gradient_to_grad_cam_saliency(x),
        "linear_approx": lambda x: oracle("torchray.attribution.linear_approx").gradient_to_linear_approx_saliency(x),
        "excitation_backprop":
            lambda x: oracle("torchray.attribution.excitation_backprop").gradient_to_excitation_backprop_saliency(x),
        "normgrad": gradient_to_norm_grad_saliency,
        "selective_normgrad": gradient_to_norm_grad_selective_saliency,
    }[method]
    return context, to_saliency


class _Frozen:
    """What the branch's ``saliency`` does around its pass: input gradient cleared, parameters frozen,
    eval mode, in-place modules off; all restored on exit."""

    def __init__(self, model, input):
        self.model, self.input = model, input

    def __enter__(self):
        if self.input.grad is not None:
            self.input.grad.data.zero_()
        self.requires_grad = {n: p.requires_grad for n, p in self.model.named_parameters()}
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.training = self.model.training
        self.model.eval()
        self.inplace = {n: m.inplace for n, m in self.model.named_modules() if hasattr(m, "inplace")}
        for n, m in self.model.named_modules():
            if n in self.inplace:
                m.inplace = False
        return self

    def __exit__(self, *exc):
        for n, p in self.model.named_parameters():
            p.requires_grad_(self.requires_grad[n])
        if self.training:
            self.model.train()
        for n, m in self.model.named_modules():
            if n in self.inplace:
                m.inplace = self.inplace[n]
        return False


def _probes(model, layers):
    common = oracle("torchray.attribution.common")
    return {layer: common.Probe(common.get_module(model, layer), target="input" if layer == "" else "output")
            for layer in layers}


def saliency(method: str, model: nn.Module, input: torch.Tensor, target, layers, *, resize=True,
             get_backward_gradient=None) -> dict[str, torch.Tensor]:
    """The branch's ``common.saliency`` for ``method`` (its context and ``gradient_to_saliency``), one
    probe per layer (``''``: the model's input): ``{layer: map}``, resized as ``resize_saliency``."""
    if method == "contrastive_excitation_backprop":
        return contrastive_excitation_backprop(model, input, target, layers, resize=resize,
                                               get_backward_gradient=get_backward_gradient)
    common = oracle("torchray.attribution.common")
    context, to_saliency = _recipe(method)
    seed = get_backward_gradient or common.get_backward_gradient
    with _Frozen(model, input):
        probes = _probes(model, layers)
        try:
            with context():
                output = model(input)
                output.backward(seed(output, target))
            maps = {layer: common.resize_saliency(input, to_saliency(p.data[0]), resize, mode="bilinear")
                    for layer, p in probes.items()}
        finally:
            for p in probes.values():
                p.remove()
    return maps


def contrastive_excitation_backprop(model, input, target, layers, *, contrast_layer="classifier.4", resize=True,
                                    get_backward_gradient=None) -> dict[str, torch.Tensor]:
    """The branch's ``excitation_backprop.py::contrastive_excitation_backprop`` (contrast layer relu7,
    ``classifier.4``, as ``class_selectivity.py`` sets it for VGG16): a dual pass with the classifier's
    weights negated, its gradient at the contrast layer kept as the probe's contrast, then the pass
    whose gradient, below the contrast layer, is the contrastive signal; the map is its channel sum's
    positive part. As in the branch (not pip 1.0), layer ``''`` probes the model's input."""
    common = oracle("torchray.attribution.common")
    eb = oracle("torchray.attribution.excitation_backprop")
    seed = get_backward_gradient or common.get_backward_gradient
    with _Frozen(model, input):  # the branch's function freezes parameters and sets eval mode itself
        classifier, _ = eb._get_classifier_layer(model)
        probes = {}
        with eb.ExcitationBackpropContext():
            probe_contrast = common.Probe(common.get_module(model, contrast_layer), target="output")
            try:
                output = model(input)
                gradient = seed(output, target)
                try:
                    classifier.weight.data.neg_()
                    output.backward(gradient.clone())
                    probe_contrast.contrast = [probe_contrast.data[0].grad]
                finally:
                    classifier.weight.data.neg_()
                probes = _probes(model, layers)
                output = model(input)
                output.backward(gradient)
                maps = {layer: common.resize_saliency(
                    input, eb.gradient_to_contrastive_excitation_backprop_saliency(p.data[0]), resize, "bilinear")
                    for layer, p in probes.items()}
            finally:
                for p in [*probes.values(), probe_contrast]:
                    p.remove()
    return maps


def meta_saliency(saliency_func, model: nn.Module, x: torch.Tensor, target, lr: float, **kwargs):
    """``torchray/attribution/meta_saliency.py::meta_saliency`` (``freeze_model=True``,
    ``negate_loss=False``, a ``[N, C]`` output): one ``torch.optim.SGD(lr)`` step on every parameter
    toward ``F.cross_entropy(model(x), target)``, ``saliency_func(model, x, target, **kwargs)`` at the
    stepped weights, then the weights restored from a deep copy of the state dict. Its step is ``lr``
    itself; ``revisal.MetaStep(lr=ε)`` steps by 2ε, so ``MetaStep(ε)`` is ``meta_saliency(lr=2ε)``
    (``docs/deviations.md`` rows 4 and 18)."""
    orig_weights = copy.deepcopy(model.state_dict())
    orig_requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
    training = model.training
    model.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    y = model(x)
    y_target = target if isinstance(target, torch.Tensor) else torch.tensor([target], dtype=torch.long)
    assert y.dim() == 2
    loss = F.cross_entropy(y, y_target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    saliency_map = saliency_func(model, x, target, **kwargs)
    for name, p in model.named_parameters():
        p.requires_grad_(orig_requires_grad[name])
    if training:
        model.train()
    model.load_state_dict(orig_weights)
    return saliency_map


def norm_grad_proper(model: nn.Module, input: torch.Tensor, target, layers, *, resize=True) -> dict[str, torch.Tensor]:
    """The branch's ``norm_grad.py::norm_grad_proper`` (``saliency(use_input_output=True)`` with
    :func:`gradient_to_norm_grad_proper_saliency` and the conv's kernel size, dilation, padding and
    stride), one conv per entry of ``layers``, all probed in one pass."""
    common = oracle("torchray.attribution.common")
    convs = {layer: common.get_module(model, layer) for layer in layers}
    assert all(isinstance(c, nn.Conv2d) for c in convs.values())
    with _Frozen(model, input):
        probes = {layer: (common.Probe(c, target="input"), common.Probe(c, target="output"))
                  for layer, c in convs.items()}
        try:
            output = model(input)
            output.backward(common.get_backward_gradient(output, target))
            maps = {}
            for layer, (p_in, p_out) in probes.items():
                c = convs[layer]
                s = gradient_to_norm_grad_proper_saliency(p_in.data[0], p_out.data[0], kernel_size=c.kernel_size,
                                                          dilation=c.dilation, padding=c.padding, stride=c.stride)
                maps[layer] = common.resize_saliency(input, s, resize, mode="bilinear")
        finally:
            for pair in probes.values():
                for p in pair:
                    p.remove()
    return maps


def get_pointing_gradient(pred_y: torch.Tensor, y: int, normalize: bool = True) -> torch.Tensor:
    """``torchray/attribution/common.py::get_pointing_gradient`` (the seed ``examples/sanity_check.py``
    passes as ``get_backward_gradient``) with its overflow removed: theirs puts ``exp(s_y)`` at the target
    and divides by its sum over the map, which is NaN where ``exp`` overflows (``s_y`` > 709 in float64:
    a random ResNet50 after one meta step reaches 2075); this puts ``exp(s_y − max s_y)``, the same seed
    after the normalisation wherever theirs is finite (exactly 1 for an ``[N, C]`` output), as revisal
    does (``docs/deviations.md`` row 2)."""
    assert pred_y.dim() in (2, 4) and pred_y.shape[0] == 1 and isinstance(y, int)
    backward_gradient = torch.zeros_like(pred_y)
    backward_gradient[0, y] = torch.exp(pred_y[0, y] - pred_y[0, y].max())
    if normalize:
        backward_gradient[0, y] /= backward_gradient[0, y].sum()
    return backward_gradient


def compute_similarity(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6):
    """``torchray/benchmark/common.py::compute_similarity`` (``"spearman_no_abs"``): ``eps`` added to
    both, then scipy's Spearman per batch element. Returns the correlations (the p-values, which it
    returns beside them, are unused by ``class_selectivity.py`` and the identity-trick script)."""
    from scipy.stats import spearmanr

    x = (x + eps).detach().numpy()
    y = (y + eps).detach().numpy()
    assert x.shape == y.shape and x.ndim >= 2
    corrs = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        corrs[i] = spearmanr(x[i].reshape(-1), y[i].reshape(-1)).statistic
    return corrs


def unit_range(x: torch.Tensor) -> torch.Tensor:
    """``torchray/utils.py::normalize(x, a_min=-1, a_max=1)`` (the sanity check's ``norm_saliency``)."""
    return 2 * (x - x.min()) / (x.max() - x.min()) - 1


def sanity_similarities(current: torch.Tensor, baseline: torch.Tensor) -> tuple[float, float]:
    """``torchray/benchmark/sanity_check.py::sanity_check``'s two ``similarity_stats`` for one stage, on
    maps already scaled by :func:`unit_range`: Spearman between the flattened maps (``spearman-no_abs``)
    and between their absolute values (``spearman_abs``), keeping ρ. Their code keeps the p-value
    (``_, p = spearmanr(...)``), a quirk revisal does not reproduce (``docs/deviations.md`` row 19 (a));
    the quirk is removed here."""
    from scipy.stats import spearmanr

    c, b = current.reshape(-1).detach().numpy(), baseline.reshape(-1).detach().numpy()
    return float(spearmanr(c, b).statistic), float(spearmanr(np.abs(c), np.abs(b)).statistic)


# --- how far float64 rounding can move Spearman's ρ ------------------------------------------------


def rank_slack(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """An upper bound on how much a Spearman ρ in which a map takes part can move between ``ours`` and
    ``theirs``, two versions of that map (flattened, each as its side ranks it), from the pixel pairs
    whose order (<, =, >) the two versions disagree on. Where the versions agree to rounding, such
    pairs are near-ties, e.g. the border pixels a bilinear upsampling by 4 or more computes as
    ``(1 − λ)h + λh``: equal in exact arithmetic, a few ulps apart in floating point.

    Pixel i's (average) rank moves by at most ``k_i``, the number of pairs (i, ·) ordered differently,
    so the centred rank vector moves by ``e`` with ``‖e‖ ≤ ‖k‖`` (ranks sum to the same total), and the
    correlation of two unit vectors moves by at most ``2‖e‖ / ‖r − r̄‖`` per argument. 0 where the two
    versions order every pair alike."""
    from scipy.stats import rankdata

    a, b = ours.detach().flatten().double(), theirs.detach().flatten().double()
    k = (torch.sign(a[:, None] - a[None, :]) != torch.sign(b[:, None] - b[None, :])).sum(1).double()
    if not bool(k.any()):
        return 0.0
    r = rankdata(b.numpy())
    spread = float(np.linalg.norm(r - r.mean()))
    return 2.0 * float(k.norm()) / spread if spread > 0 else float("inf")
