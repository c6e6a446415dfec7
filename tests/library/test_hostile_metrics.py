"""Hostile inputs to the metrics and the layer combination: NaN/Inf either propagate exactly as the
reference implementation (scipy) does or are refused with an error naming the argument; shape,
batch and type mistakes get a clear TypeError/ValueError instead of a torch broadcast or crash."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import oracle
from reproduction.captioner.scores import caption_scores, corpus_bleu
from reproduction.classification import average_precision
from revisal.activations import layer_activations
from revisal.combine import combine, normalize_maps
from revisal.layer_weights import layer_weights
from revisal.metrics import (
    PointingGame,
    gaussian_smooth,
    is_hit,
    point,
    rank,
    spearman,
)

NAN, INF = float("nan"), float("inf")


def maps_with(value: float, at=(3, 3), n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of random float64 maps; sample 0 of the second gets ``value`` at ``at``."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 1, 8, 8, generator=g, dtype=torch.float64)
    b = a + 0.05 * torch.rand(n, 1, 8, 8, generator=g, dtype=torch.float64)
    b[0, 0, at[0], at[1]] = value
    return a, b


# --- rank correlation: NaN propagates per sample, ±Inf ranks as the extreme (scipy) ----------------
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_spearman_non_finite_matches_scipy(value):
    stats = oracle("scipy.stats")
    a, b = maps_with(value)
    ours = spearman(a, b, None)
    want = [stats.spearmanr(a[k].flatten().numpy(), b[k].flatten().numpy()).statistic for k in range(2)]
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-12, equal_nan=True)
    assert math.isnan(want[0]) == math.isnan(value)  # the oracle: NaN propagates, ±Inf does not
    assert math.isfinite(float(ours[1]))  # the other sample is untouched


def test_spearman_nan_propagates_through_resizing():
    a, b = maps_with(NAN)
    out = spearman(a, b, (16, 16))
    assert math.isnan(float(out[0])) and math.isfinite(float(out[1]))


def test_rank_of_a_row_with_nan_is_nan_as_scipy():
    stats = oracle("scipy.stats")
    values = torch.tensor([[1.0, NAN, 3.0, 3.0], [4.0, -INF, INF, 4.0]], dtype=torch.float64)
    want = np.stack([stats.rankdata(row) for row in values.numpy()])
    np.testing.assert_allclose(rank(values).numpy(), want, equal_nan=True)


# --- the pointing game refuses maps without a maximum ----------------------------------------------
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_point_refuses_non_finite_maps(value):
    m = torch.zeros(8, 8)
    m[5, 5] = 1.0
    m[1, 1] = value
    with pytest.raises(ValueError, match=r"saliency: .*(NaN|infinite)"):
        point(m)
    with pytest.raises(ValueError, match="saliency"):
        point(m.numpy(), size=(16, 16))


def test_point_still_finds_the_first_maximum():
    m = torch.zeros(6, 7)
    m[4, 2] = m[5, 6] = 2.0
    assert point(m) == (2, 4)


@pytest.mark.parametrize("sigma", [NAN, INF, -1.0])
def test_gaussian_smooth_refuses_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        gaussian_smooth(torch.rand(1, 1, 8, 8), sigma)


@pytest.mark.parametrize("xy", [(NAN, 2.0), (2.0, INF)])
def test_is_hit_refuses_non_finite_points(xy):
    mask = np.ones((8, 8), bool)
    with pytest.raises(ValueError, match="xy"):
        is_hit(mask, xy)


@pytest.mark.parametrize("tolerance", [NAN, INF, 0.0])
def test_is_hit_and_game_refuse_bad_tolerance(tolerance):
    with pytest.raises(ValueError, match="tolerance"):
        is_hit(np.ones((8, 8), bool), (2, 2), tolerance)
    with pytest.raises(ValueError, match="tolerance"):
        PointingGame(3, tolerance)


@pytest.mark.parametrize("class_id", [-1, 3, 2.5])
def test_pointing_game_refuses_class_ids_out_of_range(class_id):
    game = PointingGame(3)
    with pytest.raises((TypeError, ValueError), match="class_id"):
        game.add(class_id, True)
    assert game.hits.sum() == game.misses.sum() == 0  # a refused pair is not counted (-1 used to hit the last class)


def test_pointing_game_function_refuses_unmatched_lists():
    """zip() used to drop the pairs beyond the shortest list without a word."""
    from revisal.metrics import pointing_game

    masks = [np.ones((4, 4), bool)] * 3
    with pytest.raises(ValueError, match="points, masks, class_ids"):
        pointing_game([(1, 1), (2, 2)], masks, [0, 1, 2], 3)
    with pytest.raises(ValueError, match="difficult"):
        pointing_game([(1, 1)] * 3, masks, [0, 1, 2], 3, difficult=[True])
    with pytest.raises(TypeError, match="class_id"):
        pointing_game([(1, 1)] * 3, masks, [0, 1.7, 2], 3)  # int() used to truncate 1.7 to class 1


# --- average precision refuses what scikit-learn refuses -------------------------------------------
@pytest.mark.parametrize("value", [NAN, INF])
def test_average_precision_refuses_non_finite_scores(value):
    sklearn_metrics = oracle("sklearn.metrics")
    scores = np.array([[0.9, 0.1], [0.2, 0.3], [0.5, 0.7]])
    labels = np.array([[1, 0], [0, 1], [1, 1]])
    scores[1, 0] = value
    with pytest.raises(ValueError):
        sklearn_metrics.average_precision_score(labels[:, 0], scores[:, 0])
    with pytest.raises(ValueError, match="scores"):
        average_precision(scores, labels)


@pytest.mark.parametrize("bad", [NAN, 2.0, -1.0])
def test_average_precision_refuses_labels_that_are_not_binary(bad):
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    labels[0, 1] = bad
    with pytest.raises(ValueError, match="labels"):
        average_precision(np.array([[0.9, 0.1], [0.2, 0.3]]), labels)


# --- BLEU: strings only -----------------------------------------------------------------------------
@pytest.mark.parametrize("candidates, references", [
    (["a red star", NAN], ["a red star", "a blue ring"]),  # a missing caption from a data frame
    (["a red star"], [None]),
    ("a red star", "a red star"),  # two strings: BLEU over characters, silently
])
def test_bleu_refuses_non_string_captions(candidates, references):
    with pytest.raises(TypeError, match="candidates|references"):
        corpus_bleu(candidates, references)
    with pytest.raises(TypeError, match="candidates|references"):
        caption_scores(candidates, references)


@pytest.mark.parametrize("max_n", [0, 5, 2.5, True])
def test_bleu_refuses_bad_order(max_n):
    with pytest.raises((TypeError, ValueError), match="^max_n: "):
        corpus_bleu(["a red star"], ["a red star"], max_n)


# --- combining maps -----------------------------------------------------------------------------------
def test_combine_refuses_maps_of_different_batch_sizes():
    """A batch of 1 used to broadcast against a batch of 3 without a word."""
    with pytest.raises(ValueError, match=r"per_layer.*batch"):
        combine([torch.rand(1, 1, 4, 4), torch.rand(3, 1, 4, 4)], [1, 1])
    with pytest.raises(ValueError, match=r"per_layer.*batch"):
        combine([torch.rand(2, 1, 4, 4), torch.rand(3, 1, 8, 8)], [1, 1])


@pytest.mark.parametrize("value", [NAN, INF])
def test_combine_and_normalize_refuse_non_finite_maps(value):
    bad = torch.rand(2, 1, 4, 4)
    bad[1, 0, 2, 2] = value
    with pytest.raises(ValueError, match=r"per_layer\[1\].*(NaN|infinite)"):
        combine([torch.rand(2, 1, 4, 4), bad], [1, 1])
    with pytest.raises(ValueError, match="maps.*(NaN|infinite)"):
        normalize_maps(bad)


@pytest.mark.parametrize("constant", ["nan", None, True])
def test_normalize_refuses_a_constant_that_is_not_a_number(constant):
    with pytest.raises(ValueError, match="^constant: "):
        normalize_maps(torch.ones(1, 1, 2, 2), constant)


@pytest.mark.parametrize("per_layer, match", [
    (torch.rand(2, 1, 4, 4), "per_layer"),  # one tensor: list() would split its batch into "layers"
    ([np.random.rand(2, 1, 4, 4), np.random.rand(2, 1, 4, 4)], r"per_layer\[0\]"),
    ([torch.rand(2, 4, 4), torch.rand(2, 4, 4)], r"per_layer\[0\]"),  # no channel axis
    ([torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)], r"per_layer\[0\]"),  # three channels
    ([torch.rand(0, 1, 4, 4), torch.rand(0, 1, 4, 4)], r"per_layer\[0\]"),  # empty batch
    ([torch.rand(2, 1, 0, 4), torch.rand(2, 1, 4, 4)], r"per_layer\[0\]"),  # empty map
])
def test_combine_refuses_malformed_maps(per_layer, match):
    with pytest.raises((TypeError, ValueError), match=match):
        combine(per_layer, [1, 1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(weights=[1, NAN]), "^weights: "),
    (dict(weights=["a", "b"]), "^weights: "),
    (dict(weights=[1, 1], mode="mean"), "^mode: "),
    (dict(weights=[1, 1], size=(0, 4)), "^size: "),
    (dict(weights=[1, 1], size=(4.5, 4)), "^size: "),
    (dict(weights=[1, 1], size="big"), "^size: "),
])
def test_combine_refuses_bad_arguments(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        combine([torch.rand(2, 1, 4, 4), torch.rand(2, 1, 8, 8)], **kwargs)


def test_combine_accepts_weights_from_a_generator_and_an_int_size():
    maps = [torch.rand(2, 1, 4, 4), torch.rand(2, 1, 8, 8)]
    torch.testing.assert_close(combine(maps, (w for w in [1.0, 3.0]), size=8), combine(maps, [1.0, 3.0], size=(8, 8)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="unifrom", num_layers=3), "kind"),  # a typo used to be blamed on missing features
    (dict(kind="linear", num_layers=2.5), "num_layers"),
    (dict(kind="uniform", num_layers=True), "num_layers"),
    (dict(kind="feature_spread", features=[torch.rand(4, 3, 2, 2), torch.full((4, 3, 2, 2), NAN)]), r"features\[1\]"),
    (dict(kind="feature_spread", features=[torch.rand(4, 3, 2, 2), torch.rand(5, 3, 2, 2)]), "features"),
    (dict(kind="feature_spread", features=[torch.rand(4, 3)]), r"features\[0\]"),
    (dict(kind="probe_accuracy", features=[torch.rand(4, 3, 2, 2)], labels=torch.tensor([0, 1, 0])), "labels"),
    (dict(kind="probe_accuracy_heldout", features=[torch.rand(4, 3, 2, 2)], labels=torch.tensor([0, 1, 0, 1]),
          holdout=1.0),
     "holdout"),
])
def test_layer_weights_refuses_bad_arguments(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        layer_weights(**kwargs)


def test_layer_activations_names_an_unknown_layer(tiny):
    with pytest.raises(ValueError, match="layers: 'stme'"):
        layer_activations(tiny, torch.rand(2, 3, 16, 16), ["stem", "stme"])
    with pytest.raises(ValueError, match="batch_size"):
        layer_activations(tiny, torch.rand(2, 3, 16, 16), ["stem"], batch_size=0)


def test_class_sensitivity_refuses_a_model_whose_logits_are_nan(tiny):
    """argmax/argmin of a NaN row pick the NaN's position: the max/min classes would be made up."""
    from revisal.metrics import class_sensitivity

    with torch.no_grad():
        tiny.head.bias[2] = NAN
    with pytest.raises(ValueError, match=r"model: .*NaN or Inf for images \[0, 1\]"):
        class_sensitivity(tiny, torch.rand(2, 3, 16, 16), ["point"], ["normgrad"])

