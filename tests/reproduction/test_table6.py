"""Table 6 both ways: the gains of the weightings computed here and of the authors' published ones,
each beside the paper's row it stands for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reproduction import paper
from reproduction.pointing_runs import PointingResults, combination_name
from reproduction.published_weights import PUBLISHED_WEIGHTINGS
from reproduction.tables import table6

METHODS = ["linear_approx", "selective_normgrad"]
PAIRS, CLASSES = 200, 5
rng = np.random.default_rng(0)
CLASS_IDS, DIFFICULT = rng.integers(0, CLASSES, PAIRS), rng.random(PAIRS) < 0.4


def _results(methods, layers, kinds, seed) -> PointingResults:
    """Random hits on the same pairs (as runs on one source)."""
    columns = layers + [combination_name(k, mode) for mode in ("sum", "product") for k in kinds]
    hits = np.random.default_rng(seed).random((PAIRS, len(methods), len(columns))) < 0.6
    return PointingResults(methods=list(methods), columns=columns, layers=list(layers), hits=hits,
                           class_ids=CLASS_IDS, difficult=DIFFICULT, center=np.zeros(PAIRS, bool),
                           num_classes=CLASSES, tolerance=15.0)


@pytest.fixture(scope="module")
def runs():
    kinds = ["probe_accuracy", "feature_spread", "linear", "uniform", "probe_accuracy_heldout"]
    results = {"resnet50_voc": _results(METHODS + ["grad_cam"], ["", "layer1", "layer2", "layer3", "layer4"], kinds, 1),
               "vgg16_voc": _results(METHODS, ["", "features.3", "features.29"], kinds[:4], 2)}
    published = {"resnet50_voc": {m: _results([m], ["layer1", "layer2", "layer3", "layer4"], PUBLISHED_WEIGHTINGS, 3 + i)
                                  for i, m in enumerate(METHODS)}}
    return results, published


def _gain(results, combined, model, method, column, subset):
    res = results[model]
    best = max(res.accuracy(method, layer, subset) for layer in res.layers)
    return combined.accuracy(method, column, subset) - best


def test_table6_has_the_computed_rows_then_the_published_ones(runs):
    results, published = runs
    rows = table6(results, published)
    labels = [(r["method"], r["combination"], r["weights"]) for r in rows]
    computed = ["probe_accuracy", "feature_spread", "linear", "uniform", "probe_accuracy_heldout"]
    authors = [f"{k} (published)" for k in PUBLISHED_WEIGHTINGS]
    assert labels == [(short, sign, w) for short in ("LA", "sNG") for sign in ("+", "×") for w in computed + authors]


def test_table6_gains_and_the_paper_beside_them(runs):
    results, published = runs
    rows = {(r["method"], r["combination"], r["weights"]): r for r in table6(results, published)}
    for method, short in zip(METHODS, ("LA", "sNG")):
        for mode, sign in (("sum", "+"), ("product", "×")):
            for subset in ("all", "difficult"):
                row = rows[short, sign, "uniform"]
                for model in results:
                    want = _gain(results, results[model], model, method, combination_name("uniform", mode), subset)
                    assert row[f"{model} {subset}"] == pytest.approx(want, abs=1e-12)
                row = rows[short, sign, "accuracy (published)"]
                want = _gain(results, published["resnet50_voc"][method], "resnet50_voc", method,
                             combination_name("accuracy", mode), subset)
                assert row[f"resnet50_voc {subset}"] == pytest.approx(want, abs=1e-12)
                assert math.isnan(row[f"vgg16_voc {subset}"])  # no published run for that model
            # the paper's numbers: accuracy ↔ its accuracy row, activation ↔ its spread row, none for the others
            for label, kind in (("accuracy (published)", "probe_accuracy"), ("probe_accuracy_heldout", "probe_accuracy"),
                                ("activation (published)", "feature_spread"), ("linear", "linear")):
                published_row = paper.TABLE6[method, mode, kind]
                r = rows[short, sign, label]
                assert (r["paper resnet50 all"], r["paper resnet50 difficult"], r["paper vgg16 all"],
                        r["paper vgg16 difficult"]) == published_row
            for label in ("activation_in (published)", "pointing_accuracy (published)"):
                assert all(math.isnan(v) for k, v in rows[short, sign, label].items() if k.startswith("paper"))


def test_table6_without_published_runs_is_the_computed_rows_only(runs):
    results, _ = runs
    rows = table6(results)
    assert {r["weights"] for r in rows} == {"probe_accuracy", "feature_spread", "linear", "uniform",
                                            "probe_accuracy_heldout"}
    heldout = [r for r in rows if r["weights"] == "probe_accuracy_heldout"]
    assert all(math.isnan(r["vgg16_voc all"]) and not math.isnan(r["resnet50_voc all"]) for r in heldout)


# --- the runner for the published weightings ---------------------------------------------------------------
class _Zoo:
    def __init__(self, name, layers):
        self.name, self.layers = name, tuple(layers)


def test_published_pointing_passes_the_authors_numbers_over_the_non_input_layers(monkeypatch):
    from reproduction import correlation_runs as analyses
    from reproduction import published_weights as published

    calls = []
    monkeypatch.setattr(analyses, "run_pointing_game", lambda zoo, source, methods, layers, **kw: calls.append(
        (methods, layers, kw)) or "scored")
    zoo = _Zoo("vgg16_voc", ["", "features.3", "features.8", "features.15", "features.22", "features.29"])
    out = analyses.published_pointing(zoo, None, METHODS, batch_size=4)
    assert out == {m: "scored" for m in METHODS}
    for (methods, layers, kw), theirs in zip(calls, ("linear_approx", "norm_grad_selective")):
        assert layers == list(published.LAYERS["vgg16"]) and kw["batch_size"] == 4
        assert kw["combinations"] == [(k, mode) for mode in ("sum", "product") for k in PUBLISHED_WEIGHTINGS]
        assert kw["weights"]["accuracy"].tolist() == list(published.PER_ARCH["accuracy"]["vgg16"])
        assert kw["weights"]["pointing_accuracy"].tolist() == list(published.POINTING_ACCURACY["vgg16"][theirs])
    calls.clear()
    # a model whose layers are not the authors' gets no published rows; meta picks the authors' *_meta sets
    assert analyses.published_pointing(_Zoo("mini_vgg", ["", "features.3", "features.8"]), None, METHODS) == {}
    analyses.published_pointing(zoo, None, ["selective_normgrad"], ["pointing_accuracy"], meta=object())
    assert calls[0][2]["weights"]["pointing_accuracy"].tolist() == list(
        published.POINTING_ACCURACY["vgg16"]["norm_grad_selective_meta"])


def test_published_pointing_runs_on_a_model_with_the_authors_layer_names():
    import reproduction as experiments
    from revisal.models import load

    zoo = load("mini_resnet")  # layer1 … layer4, as ResNet-50's
    source = experiments.testbed_source(zoo, "test", n=4)
    out = experiments.published_pointing(zoo, source, ["linear_approx"], ["accuracy", "activation"], cache_root=None,
                                         progress=False, batch_size=8)
    res = out["linear_approx"]
    assert res.layers == ["layer1", "layer2", "layer3", "layer4"]
    assert res.columns[4:] == ["+accuracy", "+activation", "×accuracy", "×activation"]
    assert res.pairs == len(source.pairs())
