"""Verdicts that say no more than their numbers: a statistic, its 95% bootstrap interval, a
threshold, and one of *supported*, *not supported* or *inconclusive*.

A claim such as "the best weighted combination beats the best single layer" is a statistic of a
sample of units (images, or image-class pairs) compared with a threshold. :func:`bootstrap` gives
the statistic's percentile interval: draw ``resamples`` samples of the same size with replacement
(seeded, so a run is reproducible), recompute the statistic on each, and take the
``(1 − level)/2`` and ``(1 + level)/2`` quantiles. :func:`verdict` reads the interval against the
threshold: *supported* when every value of the interval meets the claim, *not supported* when none
does, *inconclusive* when the interval straddles the threshold (or is undefined).

A claim that one thing beats another also names a **minimum effect** ``m`` (a parameter, with its
reason): the claim ``value > t`` is then read against ``t + m`` (``value < t`` against ``t − m``). An
interval wholly beyond ``t + m`` is *supported*; one wholly short of ``t + m`` is *not supported
(effect too small)*, or *not supported* when it is wholly on the wrong side of ``t`` itself; one that
straddles ``t + m`` is *inconclusive*. An interval that clears 0 but not the minimum effect supports no
claim.

Units are resampled as the independent draws they are: where several units share a source (the
image-class pairs of one photo), ``clusters`` names each unit's source and a resample draws whole
sources with replacement (the cluster bootstrap), so that the interval is not made narrow by units
that repeat each other.

:class:`VerdictTable` gathers a notebook's claims, one row each, renders them as Markdown in the
notebook and saves them like every table (CSV + Markdown + LaTeX + JSON sidecar)::

    table = VerdictTable("05", seed=seed)
    table.add("meta-saliency delays the degradation (LA)", "mean ρ over stages, meta − plain",
              lambda a, b: np.nanmean(a) - np.nanmean(b), meta_rho, plain_rho,
              threshold=0.0, relation=">", unit="images")
    table.save(out_dir=figures_dir, profile=profile, parameters=params, seed=seed)
    table  # shown as Markdown
"""

from __future__ import annotations

import math
import numbers
import operator
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import numpy as np

#: How a claim compares its statistic with its threshold.
RELATIONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
TOO_SMALL = "not supported (effect too small)"
VERDICTS = ("supported", "not supported", TOO_SMALL, "inconclusive")
#: The columns of every verdict table, in order (``clusters``: the independent sources resampled,
#: empty where the units themselves are).
COLUMNS = ("claim", "metric", "value", "ci_low", "ci_high", "relation", "threshold", "min_effect", "verdict", "n",
           "unit", "clusters", "rests_on", "why")


@dataclass(frozen=True)
class Interval:
    """A statistic's value on the sample and its bootstrap interval [low, high] at ``level``."""

    value: float
    low: float
    high: float
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an int ≥ {minimum}, got {value!r}")
    return int(value)


def _take(sample: Any, index: np.ndarray) -> Any:
    """Units ``index`` of a sample: rows of an array, or ``sample.take(index)`` for other objects
    (e.g. :class:`reproduction.PointingResults`)."""
    if isinstance(sample, np.ndarray):
        return sample[index]
    return sample.take(index)


def _units(sample: Any, name: str) -> int:
    try:
        n = len(sample)
    except TypeError:
        raise TypeError(f"{name}: expected an array (units along axis 0) or an object with len() and take(), "
                        f"got {type(sample).__name__}") from None
    if n == 0:
        raise ValueError(f"{name}: empty sample; a bootstrap needs at least one unit")
    if not isinstance(sample, np.ndarray) and not hasattr(sample, "take"):
        raise TypeError(f"{name}: {type(sample).__name__} has no take(indices) to resample it by")
    return n


def bootstrap(statistic: Callable[..., float], *samples: Any, resamples: int = 2000, level: float = 0.95,
              seed: int = 0, paired: bool = True, clusters: Any = None, nested: bool = False) -> Interval:
    """The statistic of ``samples`` and its percentile bootstrap interval.

    Args:
        statistic: ``statistic(*samples) -> float``.
        samples: one or more samples, each an array with one unit per row (lists are converted) or an
            object with ``len()`` and ``take(indices)``.
        resamples: bootstrap resamples B; the interval's ends are the empirical
            ``(1 − level)/2`` and ``(1 + level)/2`` quantiles (linear interpolation) of the B
            statistics, ignoring resamples where the statistic is NaN.
        paired: ``True``: the samples are measurements of the same units (equal lengths) and are
            resampled with the same indices; ``False``: each is resampled on its own (e.g. training
            vs validation images).
        seed: seeds ``numpy.random.default_rng``; the same call gives the same interval.
        clusters: for paired samples, the source of each unit (a label per unit, e.g. the photo an
            image-class pair comes from): a resample draws as many sources as there are, with
            replacement, and takes every unit of each drawn source (the cluster bootstrap).
        nested: with ``clusters``, also resample the units within each drawn source (the two-stage
            bootstrap: e.g. training seeds, then images), so that the interval holds both the
            variation between sources and within them.

    Returns:
        :class:`Interval`; ``low``/``high`` are NaN when every resample's statistic is NaN.
    """
    return intervals(lambda *s: [statistic(*s)], *samples, resamples=resamples, level=level, seed=seed,
                     paired=paired, clusters=clusters, nested=nested)[0]


def intervals(statistic: Callable[..., Any], *samples: Any, resamples: int = 2000, level: float = 0.95,
              seed: int = 0, paired: bool = True, clusters: Any = None, nested: bool = False) -> list[Interval]:
    """:func:`bootstrap` for a statistic that returns K numbers (e.g. one per layer, for a figure's
    band): one :class:`Interval` per number, all from the same resamples."""
    if not callable(statistic):
        raise TypeError(f"statistic: expected a callable, got {type(statistic).__name__}")
    if not samples:
        raise ValueError("samples: give at least one sample to resample")
    resamples = _count(resamples, "resamples", 1)
    seed = _count(seed, "seed", 0)
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    samples = tuple(s if not isinstance(s, (list, tuple)) else np.asarray(s) for s in samples)
    sizes = [_units(s, f"samples[{i}]") for i, s in enumerate(samples)]
    if paired and len(set(sizes)) > 1:
        raise ValueError(f"samples: paired samples must have the same number of units, got {sizes} "
                         "(pass paired=False for independent samples)")
    members = None if clusters is None else _cluster_members(clusters, sizes[0], paired)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():  # an all-NaN resample gives NaN (ignored below), not a warning per draw
        warnings.simplefilter("ignore", RuntimeWarning)
        value = np.asarray(statistic(*samples), dtype=np.float64).reshape(-1)
        stats = np.empty((resamples, len(value)))
        for b in range(resamples):
            if members is not None:
                chosen = [members[k] for k in rng.integers(0, len(members), len(members))]
                index = np.concatenate([m[rng.integers(0, len(m), len(m))] if nested else m for m in chosen])
                drawn = [_take(s, index) for s in samples]
            elif paired:
                index = rng.integers(0, sizes[0], sizes[0])
                drawn = [_take(s, index) for s in samples]
            else:
                drawn = [_take(s, rng.integers(0, n, n)) for s, n in zip(samples, sizes)]
            stats[b] = np.asarray(statistic(*drawn), dtype=np.float64).reshape(-1)
    out = []
    for k in range(len(value)):
        finite = stats[~np.isnan(stats[:, k]), k]
        low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2]) if len(finite) else (math.nan, math.nan)
        out.append(Interval(float(value[k]), float(low), float(high), float(level)))
    return out


def _cluster_members(clusters: Any, n: int, paired: bool) -> list[np.ndarray]:
    """The unit indices of each cluster, in order of first appearance."""
    if not paired:
        raise ValueError("clusters: a cluster bootstrap resamples paired samples (paired=True)")
    labels = np.asarray(clusters)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"clusters: expected one label per unit ({n}), got shape {labels.shape}")
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return [np.flatnonzero(inverse == k) for k in order]


def boundary(threshold: float, relation: str, min_effect: float = 0.0) -> float:
    """The value a claim must clear: ``threshold + min_effect`` for ``>``/``>=``, ``threshold −
    min_effect`` for ``<``/``<=``."""
    return threshold + min_effect if relation in (">", ">=") else threshold - min_effect


def verdict(interval: Interval, threshold: float, relation: str, min_effect: float = 0.0) -> str:
    """Read the interval against the claim ``value <relation> threshold`` by at least ``min_effect``
    (b = :func:`boundary`):

    * ``"supported"``: both ends meet ``value <relation> b`` (so every value between them does);
    * ``"not supported"``: neither end meets ``value <relation> threshold`` (no effect, or the other sign);
    * ``"not supported (effect too small)"``: neither end meets ``value <relation> b``, but the
      interval is not wholly on the wrong side of the threshold;
    * ``"inconclusive"``: the interval straddles b, or an end or the threshold is NaN.

    With ``min_effect = 0`` the third case cannot occur."""
    if relation not in RELATIONS:
        raise ValueError(f"relation: expected one of {list(RELATIONS)}, got {relation!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold: expected a number, got {threshold!r}")
    if isinstance(min_effect, bool) or not isinstance(min_effect, numbers.Real) or not min_effect >= 0 \
            or math.isinf(min_effect):
        raise ValueError(f"min_effect: expected a finite number ≥ 0, got {min_effect!r}")
    ends = (interval.low, interval.high)
    if any(math.isnan(v) for v in ends) or math.isnan(threshold):
        return "inconclusive"
    test = RELATIONS[relation]
    meets = [test(v, boundary(threshold, relation, min_effect)) for v in ends]
    if all(meets):
        return "supported"
    if any(meets):
        return "inconclusive"
    return "not supported" if not any(test(v, threshold) for v in ends) else TOO_SMALL


@dataclass(frozen=True)
class Claim:
    """One row of a verdict table."""

    claim: str
    metric: str
    interval: Interval
    relation: str
    threshold: float
    n: int | str
    unit: str
    min_effect: float = 0.0
    clusters: str = ""  # "5 photos": the independent sources resampled; "" where the units are
    why: str = ""  # what the verdict means here (the stand-in's limit, or the paper); for "supported", a caveat
    rests_on: str = ""  # the model and data the statistic comes from ("mini_vgg, testbed scenes")

    @property
    def verdict(self) -> str:
        return verdict(self.interval, self.threshold, self.relation, self.min_effect)

    @property
    def test(self) -> str:
        """The test as a reader reads it: ``> 0 by ≥ 1``."""
        by = f" by ≥ {self.min_effect:g}" if self.min_effect else ""
        return f"{self.relation} {self.threshold:g}{by}"

    def row(self) -> dict[str, Any]:
        return {"claim": self.claim, "metric": self.metric, "value": self.interval.value,
                "ci_low": self.interval.low, "ci_high": self.interval.high, "relation": self.relation,
                "threshold": float(self.threshold), "min_effect": float(self.min_effect), "verdict": self.verdict,
                "n": self.n, "unit": self.unit, "clusters": self.clusters, "rests_on": self.rests_on,
                "why": self.why}


def inconclusive_reading(claim: Claim) -> str:
    """What an inconclusive interval says, generated from it (the start of the claim's reading): one
    that also reaches the wrong side of the threshold cannot tell the claim from its opposite; one on
    the claim's side of the threshold falls short of the minimum effect at one end."""
    low, high = claim.interval.low, claim.interval.high
    if any(math.isnan(v) for v in (low, high, claim.interval.value)) or math.isnan(claim.threshold):
        return "This run gives no number to test (NaN). "
    test = RELATIONS[claim.relation]
    if not (test(low, claim.threshold) and test(high, claim.threshold)):
        return (f"The interval [{low:.3g}, {high:.3g}] reaches both sides of the threshold {claim.threshold:g}: this "
                "run cannot tell the claim from its opposite. ")
    bar = boundary(claim.threshold, claim.relation, claim.min_effect)
    return (f"The interval [{low:.3g}, {high:.3g}] is on the claim's side of {claim.threshold:g} but reaches inside "
            f"the minimum effect (the bar is {bar:g}). ")


def by_verdict(*, not_supported: str = "", too_small: str = "", inconclusive: str = "",
               supported: str = "") -> Callable[[Claim], str]:
    """A claim's ``why`` that depends on its verdict: the text for *not supported*, *not supported
    (effect too small)*, *inconclusive*, or a caveat for *supported* (empty for a verdict given no
    text)."""
    texts = {"not supported": not_supported, TOO_SMALL: too_small, "inconclusive": inconclusive,
             "supported": supported}
    return lambda claim: texts.get(claim.verdict, "")


#: Below this many clusters a cluster bootstrap's interval is rough (few distinct resamples), and the
#: reading says so.
ROUGH_CLUSTERS = 10


class VerdictTable:
    """A notebook's claims, each a statistic with its bootstrap interval, threshold and verdict.

    Args:
        notebook: the notebook's number (``"02"``); the table is saved as ``verdicts_<notebook>``.
        resamples, level, seed: the bootstrap's settings (recorded in the table's sidecar).
    """

    def __init__(self, notebook: str, *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> None:
        if not isinstance(notebook, str) or not notebook:
            raise ValueError(f"notebook: expected a notebook number such as '02', got {notebook!r}")
        self.notebook = notebook
        self.settings = {"resamples": _count(resamples, "resamples", 1), "level": level, "seed": _count(seed, "seed", 0)}
        self.claims: list[Claim] = []

    def add(self, claim: str, metric: str, statistic: Callable[..., float], *samples: Any, threshold: float,
            relation: str, unit: str, paired: bool = True, min_effect: float = 0.0, clusters: Any = None,
            cluster_unit: str = "clusters", why: str | Callable[["Claim"], str] = "", rests_on: str = "",
            nested: bool = False) -> Claim:
        """Bootstrap ``statistic`` over ``samples`` (see :func:`bootstrap`) and record the claim
        ``statistic <relation> threshold`` by at least ``min_effect``; ``unit`` names what one row of
        a sample is; ``clusters`` (a label per unit) resamples whole ``cluster_unit`` instead (and,
        with ``nested``, the units within each: :func:`bootstrap`).
        ``why``: what the verdict means when it is not "supported" (whether the cause is a limit of
        the stand-in or a disagreement with the paper, and where else the package shows the
        pattern), as text or as a function of the recorded claim; :meth:`reading` shows it.
        ``rests_on``: the model and data behind the statistic, for the README's claims table."""
        if relation not in RELATIONS:
            raise ValueError(f"relation: expected one of {list(RELATIONS)}, got {relation!r}")
        verdict(Interval(0.0, 0.0, 0.0), threshold, relation, min_effect)  # checks threshold and min_effect first
        interval = bootstrap(statistic, *samples, paired=paired, clusters=clusters, nested=nested, **self.settings)
        sizes = [len(s) for s in samples]
        n = sizes[0] if paired else " + ".join(map(str, sizes))
        groups = "" if clusters is None else f"{len(np.unique(np.asarray(clusters)))} {cluster_unit}"
        found = Claim(claim, metric, interval, relation, threshold, n, unit, float(min_effect), groups,
                      rests_on=rests_on)
        given = why
        if callable(why):
            why = why(found)  # a function may give a supported claim its caveat (by_verdict(supported=...))
        if not isinstance(why, str):
            raise TypeError(f"why: expected text (or a function of the claim returning text), got {type(why).__name__}")
        if found.verdict == "supported" and not callable(given):
            why = ""  # plain text explains a verdict other than "supported"
        if found.verdict == "inconclusive":
            why = inconclusive_reading(found) + why
        found = replace(found, why=why)
        self.claims.append(found)
        return found

    def rows(self) -> list[dict[str, Any]]:
        if not self.claims:
            raise ValueError(f"notebook {self.notebook}: no claim was added to the verdict table")
        return [c.row() for c in self.claims]

    def markdown(self) -> str:
        """The table as a reader sees it: value with its interval, the test, the verdict in bold."""
        from reproduction.report import markdown_cell

        pct = f"{100 * self.settings['level']:g}%"
        lines = [f"| claim | metric | value [{pct} CI] | test | verdict | n |", "|---|---|---|---|---|---|"]
        for c in self.claims:
            within = f" (resampled as {c.clusters})" if c.clusters else ""
            cells = [c.claim, c.metric, c.interval, c.test, f"**{c.verdict}**", f"{c.n} {c.unit}{within}"]
            lines.append("| " + " | ".join(markdown_cell(x) for x in cells) + " |")  # |ρ| ends no cell
        return "\n".join(lines) + "\n"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def outcome(self) -> str:
        """One line: how many claims are supported, not supported, too small, inconclusive."""
        counts = {v: sum(c.verdict == v for c in self.claims) for v in VERDICTS}
        return ", ".join(f"{n} {v}" for v, n in counts.items() if n) + f" (of {len(self.claims)} claims)"

    def reading(self) -> str:
        """"Reading the verdicts" as Markdown: the outcome line, then for every claim that is not
        supported, or is supported with a caveat (a ``why``), its numbers against its bar and what
        that means here."""
        lines = [f"**Outcome:** {self.outcome()}.", ""]
        for c in self.claims:
            if c.verdict == "supported" and not c.why:
                continue
            numbers_ = f"{c.interval.value:.3g}, 95% CI [{c.interval.low:.3g}, {c.interval.high:.3g}], against {c.test}"
            lines.append(f"- *{c.claim}*: **{c.verdict}** ({c.metric} = {numbers_}). "
                         + (c.why or "No reading was given for this claim."))
        rough = [c.claim for c in self.claims if c.clusters and int(c.clusters.split()[0]) < ROUGH_CLUSTERS]
        if rough:
            lines.append(f"- Resampled from fewer than {ROUGH_CLUSTERS} independent sources, the intervals of "
                         + "; ".join(f"*{r}*" for r in rough) + " are rough: a verdict near its bar can change "
                         "with one more source.")
        if all(c.verdict == "supported" for c in self.claims):
            lines.append("Every claim is supported at its threshold and minimum effect.")
        return "\n".join(lines) + "\n"

    def save(self, *, out_dir, profile: str, parameters: Mapping[str, Any], seed: int | None = None,
             notebook: str | None = None) -> list:
        """Save as ``verdicts_<notebook>`` (CSV + Markdown + LaTeX + JSON sidecar with the bootstrap settings)."""
        from reproduction.report import save_table

        return save_table(self.rows(), f"verdicts_{self.notebook}", out_dir=out_dir, profile=profile,
                          parameters=parameters, seed=seed, digits=3, extra={"bootstrap": self.settings},
                          notebook=notebook)


def read(path) -> list[dict[str, Any]]:
    """A saved verdict table's rows (from its CSV), numbers as floats."""
    import csv
    from pathlib import Path

    rows = list(csv.DictReader(Path(path).open(newline="")))
    for row in rows:
        for key in ("value", "ci_low", "ci_high", "threshold"):
            row[key] = float(row[key])
        row["min_effect"] = float(row.get("min_effect") or 0.0)
    return rows
