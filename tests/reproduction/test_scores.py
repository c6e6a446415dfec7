"""Pointing game, Spearman, combination and layer weights against oracles and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import revisal
from conftest import oracle
from reproduction import acceptance_region
from revisal.combine import combine, normalize_maps
from revisal.layer_weights import layer_weights
from revisal.metrics import PointingGame, is_hit, point, pointing_game, spearman


# --- pointing game vs TorchRay --------------------------------------------------------------------
def random_case(rng, h, w, ties: bool):
    """A map (with many tied maxima when ``ties``) and a random blob mask."""
    m = rng.integers(0, 3, (h // 2, w // 3)).astype(np.float32) if ties else rng.random((h // 2, w // 3)).astype(np.float32)
    mask = np.zeros((h, w), bool)
    y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
    mask[y0 : y0 + rng.integers(1, h // 3), x0 : x0 + rng.integers(1, w // 3)] = True
    return m, mask


@pytest.mark.parametrize("ties", [False, True])
def test_pointing_game_matches_torchray(ties):
    tr = oracle("torchray.benchmark.pointing_game")
    rng = np.random.default_rng(0 if ties else 1)
    ours, theirs = PointingGame(6, tolerance=5), tr.PointingGame(6, tolerance=5)
    for k in range(300):
        h, w = rng.integers(20, 60, 2)
        m, mask = random_case(rng, h, w, ties)
        c = int(rng.integers(0, 5))  # class 5 never occurs: TorchRay counts it as 0 in the mean
        xy = point(torch.from_numpy(m), (h, w))
        # TorchRay's benchmark: resize, argmax of the flattened map, (x, y) = (idx % W, idx // W)
        up = torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], size=(h, w), mode="bilinear",
                                             align_corners=False)
        flat = int(torch.argmax(up.view(1, -1), dim=1))
        assert xy == (flat % w, flat // w)
        hit = ours.evaluate(mask, xy, c)
        their_hit = theirs.evaluate(torch.from_numpy(mask), torch.tensor(xy))
        theirs.aggregate(their_hit, c)
        assert hit == (their_hit == 1)
    np.testing.assert_allclose(ours.class_accuracies, theirs.class_accuracies.numpy())
    assert ours.accuracy == pytest.approx(float(theirs.accuracy))
    assert ours.accuracy_present == pytest.approx(ours.class_accuracies[:5].mean())


def test_acceptance_region_is_the_hit_rule():
    rng = np.random.default_rng(3)
    for tolerance in (1.92, 2, 3.5, 15):
        mask = rng.random((37, 41)) > 0.995
        mask[5, 7] = True
        region = acceptance_region(mask, tolerance).numpy()
        want = np.array([[is_hit(mask, (x, y), tolerance) for x in range(41)] for y in range(37)])
        assert np.array_equal(region, want)


def test_pointing_game_function_and_difficult_subset():
    masks = [np.eye(8, dtype=bool), np.zeros((8, 8), bool), np.eye(8, dtype=bool)]
    masks[1][0, 7] = True
    games = pointing_game([(3, 3), (0, 0), (0, 7)], masks, [0, 1, 0], num_classes=2, tolerance=2,
                          difficult=[False, True, True])
    assert games["all"].hits.tolist() == [1, 0] and games["all"].misses.tolist() == [1, 1]
    assert games["all"].accuracy == pytest.approx(0.25)
    assert games["difficult"].hits.tolist() == [0, 0] and games["difficult"].misses.tolist() == [1, 1]
    with pytest.raises(ValueError, match="tolerance"):
        PointingGame(3, tolerance=0)


# --- Spearman vs scipy ----------------------------------------------------------------------------
def test_spearman_matches_scipy_with_ties():
    stats = oracle("scipy.stats")
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.integers(0, 5, (4, 1, 9, 7)).astype(np.float64))  # many ties
    b = torch.from_numpy(rng.random((4, 1, 9, 7)) + 0.1 * a.numpy())
    got = spearman(a, b, size=None)
    want = [stats.spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(4)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert torch.isnan(spearman(torch.ones(1, 4, 4), torch.rand(1, 4, 4), size=None)).all()


def test_spearman_resizes_to_a_common_size():
    stats = oracle("scipy.stats")
    a, b = torch.rand(2, 1, 7, 7, dtype=torch.float64), torch.rand(2, 1, 14, 14, dtype=torch.float64)
    up = lambda t: torch.nn.functional.interpolate(t, size=(28, 28), mode="bilinear", align_corners=False)  # noqa
    want = [stats.spearmanr(up(a)[i].flatten(), up(b)[i].flatten()).statistic for i in range(2)]
    np.testing.assert_allclose(spearman(a, b, size=28).numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="batch sizes"):
        spearman(a, b[:1])
    with pytest.raises(ValueError, match="pass size"):
        spearman(a, b, size=None)


# --- combination and weights ----------------------------------------------------------------------
def test_combine_formulas():
    torch.manual_seed(0)
    a, b = torch.rand(3, 1, 4, 4, dtype=torch.float64), torch.rand(3, 1, 4, 4, dtype=torch.float64)
    na, nb = normalize_maps(a), normalize_maps(b)
    torch.testing.assert_close(combine([a, b], [1, 3], "sum"), 0.25 * na + 0.75 * nb)
    torch.testing.assert_close(combine([a, b], [2, 2], "product"), na**0.5 * nb**0.5)
    small = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    up = torch.nn.functional.interpolate(small, size=(4, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(combine([a, small], [1, 1]), 0.5 * na + 0.5 * normalize_maps(up))


def test_combine_constant_map_gives_no_nan():
    other = torch.rand(2, 1, 3, 3)
    out = combine([torch.ones(2, 1, 3, 3), other], [1, 1], "product")
    torch.testing.assert_close(out, normalize_maps(other))  # the constant map is left out (tests/test_combine.py)
    assert torch.isfinite(normalize_maps(torch.full((1, 1, 2, 2), 5.0))).all()


def test_combine_rejects_bad_weights():
    maps = [torch.rand(1, 1, 2, 2)] * 2
    for weights in ([1], [-1, 2], [0, 0], [float("nan"), 1]):
        with pytest.raises(ValueError, match="weights"):
            combine(maps, weights)
    with pytest.raises(ValueError, match="mode"):
        combine(maps, [1, 1], "max")


def test_layer_weights_closed_forms():
    assert layer_weights("uniform", num_layers=4).tolist() == [0.25] * 4
    assert layer_weights("linear", num_layers=4).tolist() == [0.25, 0.5, 0.75, 1.0]
    # feature spread by hand: spatial means per image and channel
    f = torch.tensor([[[[1.0, 3.0]], [[0.0, 0.0]]], [[[5.0, 5.0]], [[2.0, -2.0]]]])  # [M=2, C=2, 1, 2]
    means = np.array([[2.0, 0.0], [5.0, 0.0]])
    mu = np.abs(means).mean(0)
    assert layer_weights("feature_spread", features=[f])[0] == pytest.approx(np.abs(means - mu).mean())
    with pytest.raises(ValueError, match="features"):
        layer_weights("feature_spread")
    with pytest.raises(ValueError, match="kind"):
        layer_weights("entropy", features=[f])


def test_probe_accuracy_separates_informative_from_random_features():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    informative = torch.nn.functional.one_hot(labels, 4).float()[:, :, None, None] * 3 + 0.1 * torch.randn(200, 4, 2, 2, generator=g)
    noise = torch.randn(200, 4, 2, 2, generator=g)
    good, bad = layer_weights("probe_accuracy", features=[informative, noise], labels=labels)
    assert good == 1.0 and bad < 0.5
    multi = torch.zeros(200, 4)
    multi[torch.arange(200), labels] = 1
    multi[torch.arange(200), (labels + 1) % 4] = 1
    assert layer_weights("probe_accuracy", features=[informative], labels=multi)[0] == 1.0


def test_all_zero_weights_fall_back_to_uniform_with_a_warning():
    constant = torch.ones(4, 3, 2, 2)  # no spread between images in any layer
    with pytest.warns(RuntimeWarning, match="uniform"):
        gamma = layer_weights("feature_spread", features=[constant, 2 * constant])
    assert gamma.tolist() == [0.5, 0.5]


def test_top_level_exports():
    assert revisal.combine is combine and revisal.layer_weights is layer_weights
    assert revisal.metrics.spearman is spearman
