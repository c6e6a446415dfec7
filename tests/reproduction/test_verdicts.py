"""Bootstrap intervals and verdicts: known values, coverage on a known distribution, boundaries."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from reproduction import PointingResults, verdicts
from reproduction.verdicts import Interval, VerdictTable, bootstrap, verdict
from revisal.metrics import PointingGame


# --- bootstrap ---------------------------------------------------------------------------------------------
def test_a_constant_sample_has_a_zero_width_interval():
    got = bootstrap(np.mean, np.full(40, 3.25), resamples=300)
    assert got == Interval(3.25, 3.25, 3.25, 0.95)


def test_paired_samples_share_indices_independent_ones_do_not():
    x = np.random.default_rng(0).normal(size=60)
    paired = bootstrap(lambda a, b: a.mean() - b.mean(), x, x.copy(), resamples=300)
    assert paired.low == paired.high == 0.0  # the same units drawn for both: a − a = 0 every time
    independent = bootstrap(lambda a, b: a.mean() - b.mean(), x, x.copy(), resamples=300, paired=False)
    assert independent.value == 0.0 and independent.low < -0.1 and independent.high > 0.1


def test_interval_matches_the_normal_theory_interval_of_a_large_sample():
    """For the mean of n = 4000 normal draws, the percentile interval is mean ± 1.96 s/√n (to the
    bootstrap's Monte Carlo error, far below the 10% allowed here)."""
    x = np.random.default_rng(1).normal(5.0, 2.0, size=4000)
    got = bootstrap(np.mean, x, resamples=2000, seed=3)
    half = 1.959964 * x.std(ddof=1) / math.sqrt(len(x))
    assert got.value == pytest.approx(x.mean())
    assert got.low == pytest.approx(x.mean() - half, abs=0.1 * half)
    assert got.high == pytest.approx(x.mean() + half, abs=0.1 * half)


def test_coverage_on_a_known_distribution():
    """95% intervals of the mean of n = 60 exponential draws (mean 1) cover the true mean in about 95%
    of 300 seeded experiments (percentile bootstrap of a skewed mean: ~93%; the bounds allow ± 4 s.e.)."""
    rng = np.random.default_rng(7)
    covered = [(lambda i: i.low <= 1.0 <= i.high)(bootstrap(np.mean, rng.exponential(1.0, 60), resamples=400,
                                                             seed=k)) for k in range(300)]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_the_same_seed_gives_the_same_interval():
    x = np.random.default_rng(2).normal(size=50)
    assert bootstrap(np.median, x, seed=4, resamples=200) == bootstrap(np.median, x, seed=4, resamples=200)
    assert bootstrap(np.median, x, seed=4, resamples=200) != bootstrap(np.median, x, seed=5, resamples=200)


def test_nan_resamples_are_ignored_and_an_all_nan_statistic_gives_a_nan_interval():
    x = np.array([1.0, np.nan, 2.0, 4.0])
    got = bootstrap(np.nanmean, x, resamples=500)
    assert got.low >= 1.0 and got.high <= 4.0
    undefined = bootstrap(np.nanmean, np.full(5, np.nan), resamples=20)
    assert math.isnan(undefined.low) and math.isnan(undefined.high)
    assert verdict(undefined, 0.0, ">") == "inconclusive"


@pytest.mark.parametrize("kwargs, samples, error, match", [
    (dict(resamples=0), [np.ones(3)], ValueError, "resamples: expected an int ≥ 1"),
    (dict(level=1.0), [np.ones(3)], ValueError, "level: expected a number in"),
    (dict(seed=-1), [np.ones(3)], ValueError, "seed: expected an int ≥ 0"),
    ({}, [np.ones(3), np.ones(4)], ValueError, "paired samples must have the same number of units"),
    ({}, [np.ones(0)], ValueError, r"samples\[0\]: empty sample"),
    ({}, [], ValueError, "samples: give at least one sample"),
    ({}, [3.0], TypeError, r"samples\[0\]: expected an array"),
])
def test_bad_bootstrap_arguments_are_named(kwargs, samples, error, match):
    with pytest.raises(error, match=match):
        bootstrap(np.mean, *samples, **kwargs)


def test_a_cluster_bootstrap_of_repeated_units_is_the_bootstrap_of_the_sources():
    """Five photos, each giving eight identical image-class pairs: resampling photos is resampling the
    five values (the same draws, so the same interval); resampling pairs is narrower, falsely."""
    values = np.random.default_rng(3).normal(size=5)
    pairs, photos = np.repeat(values, 8), np.repeat(["chelsea", "coffee", "astronaut", "rocket", "moto"], 8)
    clustered = bootstrap(np.mean, pairs, clusters=photos, resamples=500, seed=2)
    sources = bootstrap(np.mean, values, resamples=500, seed=2)
    assert clustered.value == pytest.approx(sources.value, abs=1e-12)
    assert clustered.low == pytest.approx(sources.low, abs=1e-12) and clustered.high == pytest.approx(sources.high, abs=1e-12)
    naive = bootstrap(np.mean, pairs, resamples=500, seed=2)
    assert naive.high - naive.low < 0.6 * (clustered.high - clustered.low)


def test_clusters_of_unequal_size_take_every_member():
    seen = []
    bootstrap(lambda a, b: seen.append((a.copy(), b.copy())) or 0.0, np.arange(6.0), np.arange(6.0) * 10,
              clusters=[0, 0, 0, 1, 2, 2], resamples=50)
    for a, b in seen[1:]:
        assert np.array_equal(b, a * 10)  # both samples drawn with the same indices
        runs = {0: [0.0, 1.0, 2.0], 1: [3.0], 2: [4.0, 5.0]}
        i = 0
        while i < len(a):  # the resample is a concatenation of whole clusters
            k = next(k for k, members in runs.items() if a[i] == members[0])
            assert list(a[i:i + len(runs[k])]) == runs[k]
            i += len(runs[k])


@pytest.mark.parametrize("kwargs, match", [
    (dict(clusters=[0, 1]), r"clusters: expected one label per unit \(3\)"),
    (dict(clusters=[0, 1, 1], paired=False), "clusters: a cluster bootstrap resamples paired samples"),
])
def test_bad_clusters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap(np.mean, np.ones(3), **kwargs)


# --- verdicts at the boundaries -------------------------------------------------------------------------------
@pytest.mark.parametrize("low, high, relation, expected", [
    (0.1, 0.5, ">", "supported"), (-0.1, 0.5, ">", "inconclusive"), (-0.5, -0.1, ">", "not supported"),
    (0.0, 0.5, ">", "inconclusive"),  # touching the threshold: 0 is not > 0
    (0.0, 0.5, ">=", "supported"), (0.0, 0.0, ">", "not supported"), (0.0, 0.0, ">=", "supported"),
    (-0.5, 0.0, ">=", "inconclusive"), (-0.5, -1e-12, ">=", "not supported"),
    (-0.5, -0.1, "<", "supported"), (-0.5, 0.0, "<", "inconclusive"), (-0.5, 0.0, "<=", "supported"),
    (0.0, 0.3, "<", "not supported"), (0.0, 0.3, "<=", "inconclusive"), (1e-12, 0.3, "<=", "not supported"),
    (math.nan, 0.3, ">", "inconclusive"),
])
def test_verdict_reads_the_interval_against_the_threshold(low, high, relation, expected):
    assert verdict(Interval((low + high) / 2, low, high), 0.0, relation) == expected


@pytest.mark.parametrize("low, high, relation, expected", [
    (0.06, 0.3, ">", "supported"),  # wholly beyond 0 + 0.05
    (0.01, 0.04, ">", "not supported (effect too small)"),  # clears 0, not the minimum effect
    (-0.01, 0.04, ">", "not supported (effect too small)"),  # whatever its sign, below the minimum effect
    (0.01, 0.3, ">", "inconclusive"),  # straddles the minimum effect
    (-0.3, -0.01, ">", "not supported"),  # the other sign
    (-0.3, 0.0, ">", "not supported"),
    (-0.3, -0.06, "<", "supported"), (-0.04, -0.01, "<", "not supported (effect too small)"),
    (0.01, 0.2, "<", "not supported"), (-0.2, -0.01, "<", "inconclusive"),
    (0.05, 0.2, ">=", "supported"), (0.05, 0.2, ">", "inconclusive"),
])
def test_a_minimum_effect_moves_the_bar_and_names_a_too_small_effect(low, high, relation, expected):
    assert verdict(Interval((low + high) / 2, low, high), 0.0, relation, min_effect=0.05) == expected


def test_without_a_minimum_effect_no_effect_is_too_small():
    for low, high in [(-1.0, -0.5), (-0.5, 0.5), (0.5, 1.0), (0.0, 0.0)]:
        for relation in verdicts.RELATIONS:
            assert verdict(Interval(low, low, high), 0.0, relation) != verdicts.TOO_SMALL


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan, "0.1", True])
def test_a_bad_minimum_effect_is_named(bad):
    with pytest.raises(ValueError, match="min_effect: expected a finite number ≥ 0"):
        verdict(Interval(0, 0, 0), 0.0, ">", min_effect=bad)
    with pytest.raises(ValueError, match="min_effect"):
        VerdictTable("02", resamples=10).add("c", "m", np.mean, np.ones(3), threshold=0.0, relation=">",
                                             unit="images", min_effect=bad)


def test_verdict_refuses_an_unknown_relation_or_threshold():
    with pytest.raises(ValueError, match="relation: expected one of"):
        verdict(Interval(0, 0, 0), 0.0, "=>")
    with pytest.raises(ValueError, match="threshold: expected a number"):
        verdict(Interval(0, 0, 0), "0", ">")


# --- verdict tables ---------------------------------------------------------------------------------------------
def test_verdict_table_rows_markdown_and_files(tmp_path):
    table = VerdictTable("05", resamples=300, seed=1)
    rng = np.random.default_rng(0)
    table.add("clearly above", "mean", np.mean, rng.normal(2, 1, 80), threshold=0.0, relation=">", unit="images")
    table.add("straddles", "mean", np.mean, rng.normal(0, 1, 80), threshold=0.0, relation=">", unit="images")
    table.add("train below val", "val − train", lambda a, b: b.mean() - a.mean(), rng.normal(0, 1, 30),
              rng.normal(3, 1, 40), threshold=0.0, relation=">", unit="images", paired=False)
    table.add("small gain", "mean", np.mean, rng.normal(0.3, 0.1, 40), threshold=0.0, relation=">", unit="pairs",
              min_effect=1.0, clusters=np.repeat(np.arange(5), 8), cluster_unit="photos")
    rows = table.rows()
    assert [list(r) for r in rows] == [list(verdicts.COLUMNS)] * 4
    assert [r["verdict"] for r in rows] == ["supported", "inconclusive", "supported", verdicts.TOO_SMALL]
    assert rows[2]["n"] == "30 + 40" and rows[2]["clusters"] == "" and rows[3]["clusters"] == "5 photos"
    assert rows[3]["min_effect"] == 1.0 and rows[0]["min_effect"] == 0.0
    md = table.markdown()
    assert "**supported**" in md and "| > 0 |" in md and "| > 0 by ≥ 1 |" in md and "40 pairs (resampled as 5 photos)" in md
    bars = VerdictTable("05", resamples=50, seed=1)
    bars.add("mean |ρ| low", "mean |ρ| over layers", np.mean, rng.normal(2, 1, 20), threshold=0.0, relation=">",
             unit="images")
    last = bars.markdown().splitlines()[-1]  # a | inside a cell is escaped: the row keeps its 6 cells
    assert r"mean \|ρ\| low" in last and len(re.split(r"(?<!\\)\|", last)) == 6 + 2
    files = table.save(out_dir=tmp_path, profile="smoke", parameters={"seed": 1}, seed=1)
    assert sorted(f.name for f in files) == sorted(f"verdicts_05.{e}" for e in ("csv", "md", "tex", "json"))
    side = json.loads((tmp_path / "verdicts_05.json").read_text())
    assert side["bootstrap"] == {"resamples": 300, "level": 0.95, "seed": 1}
    back = verdicts.read(tmp_path / "verdicts_05.csv")
    assert [r["verdict"] for r in back] == [r["verdict"] for r in rows]
    assert back[0]["ci_low"] == rows[0]["ci_low"]  # full precision in the CSV


def test_an_empty_verdict_table_is_refused():
    with pytest.raises(ValueError, match="no claim was added"):
        VerdictTable("01").rows()


# --- the pointing game resampled by pairs ---------------------------------------------------------------------
def _results(seed: int = 0, pairs: int = 300, classes: int = 6) -> PointingResults:
    rng = np.random.default_rng(seed)
    return PointingResults(methods=["a", "b"], columns=["l1", "l2", "+uniform"], layers=["l1", "l2"],
                           hits=rng.random((pairs, 2, 3)) < 0.6, class_ids=rng.integers(0, classes - 1, pairs),
                           difficult=rng.random(pairs) < 0.3, center=rng.random(pairs) < 0.5,
                           num_classes=classes, tolerance=15.0)


@pytest.mark.parametrize("subset", ["all", "difficult"])
def test_vectorised_pointing_accuracy_equals_the_pointing_game(subset):
    """The one-pass accuracies equal TorchRay's PointingGame fed pair by pair (a class without pairs
    counts 0: class 5 never occurs here)."""
    res = _results()
    keep = res.difficult if subset == "difficult" else np.ones(res.pairs, dtype=bool)
    for m, method in enumerate(res.methods):
        for k, column in enumerate(res.columns):
            game = PointingGame(res.num_classes, res.tolerance)
            for c, h in zip(res.class_ids[keep], res.hits[keep, m, k]):
                game.add(int(c), bool(h))
            assert res.accuracy(method, column, subset) == pytest.approx(100 * game.accuracy, abs=1e-12)
            assert res.accuracies(method, subset)[column] == pytest.approx(100 * game.accuracy, abs=1e-12)


def test_pointing_results_resample_by_pairs():
    res = _results()
    index = np.array([3, 3, 7])
    sub = res.take(index)
    assert len(sub) == 3 and np.array_equal(sub.hits, res.hits[index]) and np.array_equal(sub.center, res.center[index])
    got = bootstrap(lambda r: r.best_combination("a")[1] - r.best_single("a")[1], res, resamples=200)
    assert got.value == pytest.approx(res.best_combination("a")[1] - res.best_single("a")[1])
    assert got.low <= got.value <= got.high


def test_selected_pointing_results_score_as_the_full_ones():
    res = _results()
    small = res.select(["b"], ["l2", "+uniform"])
    assert small.layers == ["l2"] and small.hits.shape == (res.pairs, 1, 2)
    for subset in ("all", "difficult"):
        assert small.accuracy("b", "+uniform", subset) == res.accuracy("b", "+uniform", subset)
        assert small.best_single("b", subset) == ("l2", res.accuracy("b", "l2", subset))


def test_a_resample_without_difficult_pairs_scores_zero_as_the_pointing_game():
    """A bootstrap resample of a small detection set can hold no difficult pair (the paper profile's
    fakes did): every class then has no pair, which TorchRay's PointingGame scores 0."""
    res = _results()
    easy = res.take(np.flatnonzero(~res.difficult)[:5])
    assert easy.accuracy("a", "l1", "difficult") == 100 * PointingGame(res.num_classes, res.tolerance).accuracy == 0.0
    assert easy.accuracy_table("difficult").shape == (2, 3) and not easy.accuracy_table("difficult").any()


def test_flat_maps_are_left_out_of_the_pointing_accuracy():
    """A pair whose map was flat ("n/a") counts neither as a hit nor as a pair of its class; a
    column with no scored pair is NaN, never the best."""
    res = _results()
    scored = np.ones_like(res.hits)
    scored[:, 0, 0] = False  # method a at l1: every map flat
    scored[:10, 1, 1] = False  # method b at l2: ten pairs flat
    marked = PointingResults(**{**res.__dict__, "scored": scored})
    assert np.isnan(marked.accuracy("a", "l1")) and marked.flat_share("a", "l1") == 1.0
    assert marked.best_single("a")[0] == "l2"
    keep = np.arange(res.pairs) >= 10
    game = PointingGame(res.num_classes, res.tolerance)
    for c, h in zip(res.class_ids[keep], res.hits[keep, 1, 1]):
        game.add(int(c), bool(h))
    assert marked.accuracy("b", "l2") == pytest.approx(100 * game.accuracy, abs=1e-12)
    assert marked.accuracy_table()[1, 1] == pytest.approx(100 * game.accuracy, abs=1e-12)
    assert marked.accuracy("b", "l1") == res.accuracy("b", "l1")  # untouched columns unchanged
    assert np.array_equal(marked.take(np.arange(5)).scored, scored[:5])
    assert marked.select(["b"], ["l2"]).flat_share("b", "l2") == pytest.approx(10 / res.pairs)


def test_the_reading_gives_numbers_and_meaning_of_every_claim_not_supported(tmp_path):
    table = VerdictTable("03", resamples=200, seed=0)
    rng = np.random.default_rng(1)
    table.add("holds", "mean", np.mean, rng.normal(2, 0.1, 50), threshold=0.0, relation=">", unit="images",
              why="never shown", rests_on="mini_vgg, testbed")
    table.add("too small", "mean", np.mean, rng.normal(0.02, 0.01, 50), threshold=0.0, relation=">", unit="images",
              min_effect=0.5, why=lambda c: f"an effect of {c.interval.value:.2f} is within the stand-in's noise")
    table.add("fails", "mean", np.mean, rng.normal(-1, 0.1, 50), threshold=0.0, relation=">", unit="images")
    text = table.reading()
    assert text.startswith("**Outcome:** 1 supported, 1 not supported, 1 not supported (effect too small) (of 3 claims).")
    assert "never shown" not in text and "*holds*" not in text
    assert "*too small*: **not supported (effect too small)**" in text and "against > 0 by ≥ 0.5" in text
    assert "an effect of 0.02 is within the stand-in's noise" in text
    assert "*fails*: **not supported**" in text and "No reading was given" in text
    rows = table.rows()
    assert rows[0]["why"] == "" and rows[0]["rests_on"] == "mini_vgg, testbed" and rows[1]["why"].startswith("an effect")
    with pytest.raises(TypeError, match="why: expected text"):
        table.add("x", "m", np.mean, np.ones(3), threshold=0.0, relation=">", unit="images", why=3)


def test_a_reading_by_verdict_picks_the_text_of_the_verdict_found():
    why = verdicts.by_verdict(not_supported="no", too_small="small", inconclusive="unsure")
    table = VerdictTable("02", resamples=100)
    got = [table.add(name, "m", np.mean, sample, threshold=0.0, relation=">", unit="u", min_effect=0.5, why=why).why
           for name, sample in [("a", np.full(5, -1.0)), ("b", np.full(5, 0.2)), ("c", np.array([0.0, 1.0] * 5)),
                                ("d", np.full(5, 2.0))]]
    assert got[:2] == ["no", "small"] and got[3] == ""
    assert got[2].endswith("unsure") and "reaches inside the minimum effect (the bar is 0.5)" in got[2]  # [0.2, 0.8]


def test_an_inconclusive_reading_says_whether_its_interval_reaches_the_other_side():
    """Generated from the interval: one that reaches past the threshold cannot tell the claim from its
    opposite; one on the claim's side falls short of the minimum effect at one end."""
    table = VerdictTable("02", resamples=200)
    straddles = table.add("s", "m", np.mean, np.array([-1.0, 1.2] * 5), threshold=0.0, relation=">", unit="u",
                          min_effect=0.05, why="more")
    assert straddles.verdict == "inconclusive" and straddles.interval.low < 0 < straddles.interval.high
    assert straddles.why.startswith("The interval [") and "reaches both sides of the threshold 0" in straddles.why
    assert straddles.why.endswith("its opposite. more")
    short = table.add("t", "m", np.mean, np.array([0.01, 0.2] * 5), threshold=0.0, relation=">", unit="u",
                      min_effect=0.1)
    assert short.verdict == "inconclusive" and 0 < short.interval.low < 0.1 < short.interval.high
    assert "is on the claim's side of 0 but reaches inside the minimum effect (the bar is 0.1)" in short.why
    below = table.add("u", "m", np.mean, np.array([-0.01, -0.2] * 5), threshold=0.0, relation="<", unit="u",
                      min_effect=0.1)
    assert below.verdict == "inconclusive" and "(the bar is -0.1)" in below.why
    caveat = verdicts.by_verdict(not_supported="no", supported="holds at this ε only")
    claim = table.add("e", "m", np.mean, np.full(5, 2.0), threshold=0.0, relation=">", unit="u", why=caveat)
    assert claim.verdict == "supported" and claim.why == "holds at this ε only"
    assert "*e*: **supported**" in table.reading() and "holds at this ε only" in table.reading()
    assert "*d*" not in table.reading()  # supported without a caveat: not in the reading


def test_the_reading_says_when_a_cluster_bootstrap_had_few_sources():
    table = VerdictTable("00", resamples=100)
    values = np.random.default_rng(0).normal(1, 0.1, 24)
    table.add("few photos", "mean", np.mean, values, threshold=0.0, relation=">", unit="pairs",
              clusters=np.repeat(np.arange(4), 6), cluster_unit="target photos")
    table.add("many images", "mean", np.mean, values, threshold=0.0, relation=">", unit="images")
    text = table.reading()
    assert "Every claim is supported" in text
    assert f"fewer than {verdicts.ROUGH_CLUSTERS} independent sources" in text and "*few photos*" in text
    assert "*many images*" not in text


def test_a_nested_bootstrap_holds_the_variation_between_and_within_sources():
    """Three training seeds that saw the same 50 values: resampling seeds alone sees no variation (a
    zero-width interval); resampling the images within each seed too gives the images' variation.
    Seeds whose images all agree but whose means differ: both give the seeds' spread."""
    rng = np.random.default_rng(4)
    seeds = np.repeat([0, 1, 2], 50)
    same = np.tile(rng.normal(0, 0.5, 50), 3)
    outer = bootstrap(np.mean, same, clusters=seeds, resamples=800, seed=1)
    both = bootstrap(np.mean, same, clusters=seeds, nested=True, resamples=800, seed=1)
    assert outer.high - outer.low == pytest.approx(0.0, abs=1e-12) and both.high - both.low > 0.1
    flat = np.array([0.0, 0.3, 0.6])[seeds]  # no variation within a seed
    a = bootstrap(np.mean, flat, clusters=seeds, nested=True, resamples=400, seed=2)
    assert a.low >= -1e-12 and a.high <= 0.6 + 1e-12 and a.value == pytest.approx(0.3) and a.high - a.low > 0.2
    seen = []
    bootstrap(lambda x: seen.append(x.copy()) or 0.0, np.arange(6.0), clusters=[0, 0, 0, 1, 1, 1], nested=True,
              resamples=30)
    for x in seen[1:]:  # each half of a resample comes from one seed's units, drawn with replacement
        for half in (x[:3], x[3:]):
            assert set(half) <= {0.0, 1.0, 2.0} or set(half) <= {3.0, 4.0, 5.0}
