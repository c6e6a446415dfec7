"""revisal.metrics.pointing_accuracy, the one pointing-game scorer: it equals PointingGame fed pair by
pair (TorchRay's accumulate-then-average), column by column, with and without a subset of pairs counted."""

from __future__ import annotations

import numpy as np
import pytest

from revisal.metrics import PointingGame, pointing_accuracy


# The two sum the same C per-class ratios (each in [0, 1]) in different orders: in float64 they agree to C·eps.
def _close(num_classes: int) -> float:
    return num_classes * np.finfo(np.float64).eps


def _game(hits, class_ids, num_classes, counted=None) -> float:
    game = PointingGame(num_classes)
    for k, (c, h) in enumerate(zip(class_ids, hits)):
        if counted is None or counted[k]:
            game.add(int(c), bool(h))
    return game.accuracy


@pytest.mark.parametrize("seed", range(3))
def test_equals_the_pointing_game_pair_by_pair(seed):
    rng = np.random.default_rng(seed)
    hits, classes = rng.random((200, 4)) < 0.6, rng.integers(0, 7, 200)  # class 7 of 8 never occurs: counts 0
    counted = rng.random((200, 4)) < 0.7
    got, got_counted = pointing_accuracy(hits, classes, 8), pointing_accuracy(hits, classes, 8, counted)
    for k in range(4):
        assert got[k] == pytest.approx(_game(hits[:, k], classes, 8), abs=_close(8))
        assert got_counted[k] == pytest.approx(_game(hits[:, k], classes, 8, counted[:, k]), abs=_close(8))
    one = pointing_accuracy(hits[:, 1], classes, 8)  # one column: a float
    assert isinstance(one, float) and one == pytest.approx(got[1], abs=_close(8))


def test_known_values_and_uncounted_columns():
    hits = np.array([[True, True], [False, True], [True, False]])
    classes = np.array([0, 0, 2])
    # class 0: 1/2, class 1: no pair (0), class 2: 1/1 → (0.5 + 0 + 1)/3
    assert pointing_accuracy(hits[:, 0], classes, 3) == pytest.approx(0.5)
    counted = np.array([[True, False], [True, False], [True, False]])
    got = pointing_accuracy(hits, classes, 3, counted)
    assert got[0] == pytest.approx(0.5) and np.isnan(got[1])  # nothing counted in column 1: no score
    assert pointing_accuracy(np.zeros((0, 2), dtype=bool), np.zeros(0, dtype=int), 3).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("class_ids", [[0, 3], [0, -1], [0.0, 1.0], [0]])
def test_refuses_class_ids_it_cannot_count(class_ids):
    with pytest.raises(ValueError, match="class_ids"):
        pointing_accuracy([True, False], np.asarray(class_ids), 3)
