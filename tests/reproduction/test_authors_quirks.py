"""``benchmarks/authors_quirks.py`` (docs/deviations.md row 19) on tiny inputs: each quirk's
measurement does what it says, in well under a second each."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import oracle

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "authors_quirks.py"


@pytest.fixture(scope="module")
def quirks():
    spec = importlib.util.spec_from_file_location("authors_quirks", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny(seed: int) -> nn.Module:
    """A VGG-shaped net: convs, max-pools, two linears with a ReLU between (the contrast layer "8")."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 4 * 4, 8), nn.ReLU(),
                         nn.Linear(8, 5)).eval().double()


def test_the_driver_stops_after_the_first_image(quirks):
    committed, fixed = quirks.sanity_driver(5), quirks.sanity_driver(5, fixed=True)
    assert (committed["sanity_check_calls"], committed["aggregated"], committed["none_stages"]) == (1, 0, 1)
    assert committed["stopped_by"] and committed["stage_list"] == len(quirks.THEIR_SHORT_VGG16) + 1
    assert (fixed["sanity_check_calls"], fixed["aggregated"], fixed["stopped_by"]) == (5, 5, None)


def test_the_p_value_is_scipys_and_says_nothing_of_rho_above_a_few_hundredths(quirks):
    spearmanr = oracle("scipy.stats").spearmanr
    rng = np.random.default_rng(0)
    a = rng.standard_normal(2000)
    for mix in (0.0, 0.05, 0.3, 1.0):
        b = mix * a + rng.standard_normal(2000)
        rho, p = spearmanr(a, b)
        assert quirks.spearman_p(rho, 2000) == pytest.approx(p, rel=1e-9, abs=1e-300)
    n = 224 * 224
    assert quirks.spearman_p(quirks.rho_at_p(0.05, n), n) == pytest.approx(0.05, rel=1e-6)
    assert quirks.spearman_p([0.05, 0.3, 1.0, -0.3], n).max() < 1e-25  # ρ = 0.05, 0.3, 1 and −0.3 all read "0"


def test_the_table4_loop_computes_one_layer_every_time(quirks):
    models = {"a": _tiny(0), "b": _tiny(1)}
    images = {k: torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) for k in models}
    target = {k: torch.tensor([1, 3]) for k in models}
    rows = quirks.table4_loop(models, images, target, layers={"a": ["0", "3"], "b": ["3"]},
                              args={"arch": "b", "saliency_layer": "3"})
    assert [r["loop"] for r in rows] == ["a 0", "a 3", "b 3"]
    assert {r["computed"] for r in rows} == {"b 3"} and {r["file"] for r in rows} == {"b_3_corrs_summary.csv"}
    assert len({r["rho_computed"] for r in rows}) == 1 and rows[0]["rho_computed"] == rows[2]["rho_intended"]
    assert rows[0]["rho_intended"] != rows[2]["rho_intended"]


def test_the_max_class_ceb_after_the_min_class_is_clamped_eb(quirks):
    oracle("torchray.attribution.excitation_backprop")
    model = _tiny(3)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    c = quirks.ceb_input_rho(model, x, contrast_layer="8")
    assert c["true"].shape == c["quirk"].shape == (2,) and bool((c["eb"] > 0.99).all())
    tr = quirks.ceb_input_torchray(model, x, c["top"], c["bottom"], c["maps"], contrast_layer="8", classifier_layer="9")
    assert tr["images"] == 2
    assert tr["min_map_vs_ceb"] < 1e-6  # the first call is a true cEB
    assert tr["max_map_vs_clamp_eb"] < 1e-9  # the second is clamp(EB, 0)
    assert tr["max_map_vs_ceb"] > 1e-3  # and not the cEB
