"""Metrics against independent implementations."""

from __future__ import annotations

import numpy as np
import pytest

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
