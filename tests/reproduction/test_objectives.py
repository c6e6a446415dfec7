"""The pointing objective and the score-map cross-entropy against their formulas in float64, and
meta-saliency in the pointing game against the authors' procedure (TorchRay's normgrad-branch
``meta_saliency``: ``torch.optim.SGD(lr)`` on the cross-entropy at every location of the score map,
then the saliency method, then the weights restored), written out in plain torch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import revisal
from reproduction.objectives import PointingObjective, map_cross_entropy


def test_pointing_objective_is_log_sum_exp_with_softmax_seed():
    s = torch.randn(3, 5, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    ids = [1, 0, 4]
    y = PointingObjective(ids)(s)
    (g,) = torch.autograd.grad(y.sum(), s)
    for n, c in enumerate(ids):
        want = torch.exp(s[n, c]) / torch.exp(s[n, c]).sum()  # TorchRay's get_pointing_gradient, normalised
        torch.testing.assert_close(g[n, c], want, rtol=1e-12, atol=0)
        torch.testing.assert_close(y[n], torch.log(torch.exp(s[n, c]).sum()), rtol=1e-12, atol=0)
        others = torch.ones(5, dtype=torch.bool)
        others[c] = False
        assert torch.all(g[n, others] == 0)
    assert torch.autograd.gradcheck(lambda t: PointingObjective(ids)(t), (s,))


def test_pointing_objective_is_the_logit_on_a_one_by_one_map():
    s = torch.randn(2, 5, 1, 1, dtype=torch.float64, requires_grad=True)
    y = PointingObjective([3, 1])(s)
    (g,) = torch.autograd.grad(y.sum(), s)
    torch.testing.assert_close(y, s[[0, 1], [3, 1], 0, 0])
    want = torch.zeros_like(s)
    want[0, 3], want[1, 1] = 1, 1
    assert torch.equal(g, want)
    flat = torch.randn(2, 5, dtype=torch.float64)
    assert torch.equal(PointingObjective([3, 1])(flat), flat[[0, 1], [3, 1]])


def test_pointing_objective_survives_scores_where_exp_overflows():
    s = torch.full((1, 2, 1, 3), 200.0, requires_grad=True)
    (g,) = torch.autograd.grad(PointingObjective([0])(s).sum(), s)
    torch.testing.assert_close(g[0, 0, 0], torch.full((3,), 1 / 3))


@pytest.mark.parametrize("bad, match", [([], "non-empty"), ([0.5], "ints"), ([-1], "≥ 0")])
def test_pointing_objective_refuses_bad_ids(bad, match):
    with pytest.raises(ValueError, match=match):
        PointingObjective(bad)


def test_pointing_objective_refuses_wrong_outputs():
    with pytest.raises(ValueError, match="class ids for a batch"):
        PointingObjective([0, 1])(torch.zeros(3, 4, 2, 2))
    with pytest.raises(ValueError, match="out of range"):
        PointingObjective([7])(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match=r"\[N, C\] or \[N, C, h, w\]"):
        PointingObjective([0])(torch.zeros(1, 4, 2))


def test_map_cross_entropy_is_the_mean_over_locations():
    s = torch.randn(2, 4, 3, 2, dtype=torch.float64)
    got = map_cross_entropy(s, PointingObjective([2, 0]))
    for n, c in enumerate([2, 0]):
        logp = s[n] - torch.log(torch.exp(s[n]).sum(0, keepdim=True))
        torch.testing.assert_close(got[n], -logp[c].mean(), rtol=1e-12, atol=0)
    flat = torch.randn(2, 4, dtype=torch.float64)
    torch.testing.assert_close(map_cross_entropy(flat, torch.tensor([1, 3])),
                               F.cross_entropy(flat, torch.tensor([1, 3]), reduction="none"))


class FullyConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2),
                                      nn.ReLU())
        self.classifier = nn.Conv2d(8, 5, 3)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_meta_saliency_in_the_pointing_game_is_the_authors_step():
    """``MetaStep(lr=ε, loss=map_cross_entropy)`` steps θ' = θ − 2ε∇ℓ: TorchRay's
    ``meta_saliency(lr=2ε)``, i.e. the authors' lr = 1e-4 is ε = 5e-5 here. The map after the step
    is the gradient-rule map of the stepped copy; the model comes back unchanged."""
    torch.manual_seed(0)
    model = FullyConv().double().eval()
    x = torch.randn(1, 3, 13, 17, dtype=torch.float64)
    target, authors_lr = 3, 0.05  # a large step, so that a factor of 2 would show
    before = copy.deepcopy(model.state_dict())

    stepped = copy.deepcopy(model)
    optimizer = torch.optim.SGD(stepped.parameters(), lr=authors_lr)
    y = stepped(x)
    flat = y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])  # every location a sample, as meta_saliency does
    F.cross_entropy(flat, torch.full((flat.shape[0],), target)).backward()
    optimizer.step()
    for p in stepped.parameters():
        p.requires_grad_(False)
    xx = x.clone().requires_grad_(True)
    act = {}
    stepped.features[2].register_forward_hook(lambda m, i, o: act.setdefault("x", o))
    out = stepped(xx)
    (g,) = torch.autograd.grad(PointingObjective([target])(out).sum(), act["x"])
    want = (g * act["x"]).sum(1, keepdim=True)  # linear approximation at features.2

    meta = revisal.MetaStep(lr=authors_lr / 2, loss=map_cross_entropy)
    got = revisal.saliency(model, x, PointingObjective([target]), ["features.2"], ["linear_approx"], meta=meta)
    torch.testing.assert_close(got["linear_approx", "features.2"], want, rtol=1e-10, atol=1e-12)
    off = revisal.saliency(model, x, PointingObjective([target]), ["features.2"], ["linear_approx"],
                           meta=revisal.MetaStep(lr=authors_lr, loss=map_cross_entropy))
    assert not torch.allclose(off["linear_approx", "features.2"], want, rtol=1e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
