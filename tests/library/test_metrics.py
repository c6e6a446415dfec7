"""Metrics against independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import revisal
from conftest import oracle
from reproduction.classification import average_precision, mean_average_precision
from reproduction.datasets import pointing


def test_average_precision_matches_sklearn():
    sklearn_metrics = oracle("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.random((300, 6)) < 0.3
    scores = rng.random((300, 6)) + 0.4 * labels
    scores[:100] = np.round(scores[:100], 1)  # ties
    want = [sklearn_metrics.average_precision_score(labels[:, c], scores[:, c]) for c in range(6)]
    np.testing.assert_allclose(average_precision(scores, labels), want, rtol=1e-12)
    assert mean_average_precision(scores, labels) == pytest.approx(np.mean(want))


def test_average_precision_edge_cases():
    ap = average_precision(np.array([[0.9, 0.1], [0.2, 0.3]]), np.array([[1, 0], [0, 0]]))
    assert ap[0] == 1.0 and np.isnan(ap[1])
    with pytest.raises(ValueError, match="matching"):
        average_precision(np.zeros((2, 3)), np.zeros((3, 2)))


def test_torchray_flag_files_are_read_when_installed():
    oracle("torchray")  # the flag files ship with TorchRay
    flags = pointing.torchray_flags("voc07")
    assert flags is not None and len(flags) == 4952 and all(len(v) == 20 for v in flags.values())
    with pytest.raises(ValueError, match="dataset"):
        pointing.torchray_flags("voc12")


def test_class_sensitivity_variants_are_both_of_its_spearman_variants_from_one_pass():
    """Each variant equals :func:`class_sensitivity` with that ``absolute`` flag, and the absolute one is
    Spearman on |maps| computed the slow way (each map scaled to [−1, 1] by its range; scipy, float64)."""
    from scipy.stats import spearmanr

    from revisal.metrics import class_sensitivity, class_sensitivity_variants

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 5, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).double()
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    both = class_sensitivity_variants(net, x, ["2"], ["linear_approx", "normgrad"])
    for variant, flag in (("signed", False), ("absolute", True)):
        single = class_sensitivity(net, x, ["2"], ["linear_approx", "normgrad"], absolute=flag)
        assert single.keys() == both[variant].keys()
        for key in single:
            torch.testing.assert_close(both[variant][key], single[key], rtol=0, atol=0)
    maps = revisal.saliency(net, torch.cat([x, x]), torch.cat([net(x).argmax(1), net(x).argmin(1)]), ["2"], ["linear_approx"])
    m = maps["linear_approx", "2"].flatten(1)
    for i in range(3):
        top, bottom = (2 * (v - v.min()) / (v.max() - v.min()) - 1 for v in (m[i], m[3 + i]))  # each to [−1, 1]
        want = spearmanr(top.abs().numpy(), bottom.abs().numpy()).statistic
        assert abs(float(both["absolute"]["linear_approx", "2"][i]) - want) < 1e-9
