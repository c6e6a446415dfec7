"""Experiment runners: cached, resumable after a kill, corruption detected, sharded = unsharded;
and the model-level analyses (class sensitivity, identity trick, randomisation)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import reproduction
import reproduction as experiments
import revisal
from reproduction import pointing_runs as pointing_module
from revisal.metrics import cascading_randomization, class_sensitivity, identity_trick_correlation, spearman
from revisal.metrics.pointing import gaussian_smooth
from revisal.models import load

METHODS = ["normgrad", "grad_cam", "linear_approx", "guided_backprop"]


@pytest.fixture(scope="module")
def setup():
    zoo = load("mini_resnet")
    source = experiments.testbed_source(zoo, "test", n=24)
    images, labels = experiments.weight_sample(zoo, m=60)
    weights = experiments.weights_for_layers(zoo, images, labels, zoo.layers, cache_root=None)
    return zoo, source, weights


def run(setup, root, **kwargs):
    zoo, source, weights = setup
    return experiments.run_pointing_game(zoo, source, METHODS, list(zoo.layers), weights=weights, cache_root=root,
                                     part_size=16, batch_size=8, progress=False, **kwargs)


def same_results(a, b):
    for name in ("hits", "class_ids", "difficult", "center"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_pointing_runner_scores_match_direct_computation(setup):
    """Each stored hit equals the pointing rule applied to revisal.saliency's map for that pair.

    The maps are computed on the runner's first batch (pairs 0-7, batch_size=8): the same float32
    inputs in the same batch give the same maps bit for bit on any CPU (another batch would round
    differently, by CPU). ``point`` smooths one map, the runner a batch of 8, which may round
    differently too (≤ a few float32 steps of the maximum per tap of the blur): where pixels within
    1e-5 of the maximum disagree on hit or miss, either answer is right."""
    zoo, source, weights = setup
    res = run(setup, None)
    pairs = source.pairs()
    assert res.pairs == len(pairs) > 24 and res.columns[: len(zoo.layers)] == list(zoo.layers)
    first = pairs[:8]
    inputs, masks, sizes = source.load(first)
    maps = revisal.saliency(zoo.model, inputs, torch.tensor([p.class_id for p in first]), zoo.layers,
                            METHODS).resized(sizes[0])
    for k in range(len(first)):
        for mi, method in enumerate(METHODS):
            for li, layer in enumerate(zoo.layers):
                smooth = experiments.INPUT_SMOOTHING if layer == "" else 0.0  # every method, at the input only
                m = maps[method, layer][k : k + 1]
                want = revisal.metrics.is_hit(masks[k], revisal.metrics.point(m[0, 0], sizes[0], smooth), source.tolerance)
                if res.hits[k, mi, li] != want:  # only at a near-tie
                    blurred = gaussian_smooth(m, smooth * max(sizes[0]))[0, 0]
                    ys, xs = (blurred >= blurred.max() - 1e-5 * blurred.abs().max()).nonzero(as_tuple=True)
                    assert any(revisal.metrics.is_hit(masks[k], (int(x), int(y)), source.tolerance) == res.hits[k, mi, li]
                               for x, y in zip(xs, ys)), (k, method, layer)
    acc = res.accuracy("normgrad", "layer2")
    assert 0 <= acc <= 100 and res.best_single("normgrad")[1] >= acc
    assert res.best_combination("linear_approx")[0].startswith(("+", "×"))


def test_combination_columns_are_the_combined_maps_maxima(setup):
    """Every combination column's stored point is the maximum of ``revisal.combine`` of the pair's
    resized non-input maps with that weighting (same batch of 8, so the same maps bit for bit), and
    its hit is the pointing rule at that point."""
    zoo, source, weights = setup
    res = run(setup, None)
    first = source.pairs()[:8]
    inputs, masks, sizes = source.load(first)
    maps = revisal.saliency(zoo.model, inputs, reproduction.objectives.PointingObjective([p.class_id for p in first]),
                            zoo.layers, METHODS)
    combined = [layer for layer in zoo.layers if layer]
    for mi, method in enumerate(METHODS):
        resized = [torch.nn.functional.interpolate(maps[method, layer].float(), size=sizes[0], mode="bilinear",
                                                   align_corners=False) for layer in combined]
        for ci, column in enumerate(res.columns[len(res.layers):], start=len(res.layers)):
            mode, kind = ("sum" if column[0] == "+" else "product"), column[1:]
            m = revisal.combine(resized, np.asarray(weights[kind])[[i for i, l in enumerate(zoo.layers) if l]], mode,
                                size=sizes[0])
            flat = m.flatten(1).argmax(1)
            for k in range(len(first)):
                x, y = int(flat[k] % m.shape[-1]), int(flat[k] // m.shape[-1])
                assert tuple(res.points[k, mi, ci]) == (x, y), (k, method, column)
                assert res.hits[k, mi, ci] == revisal.metrics.is_hit(masks[k], (x, y), source.tolerance)


def test_accuracies_are_the_mean_of_per_class_hit_rates():
    """``accuracy_table`` against a loop over classes (absent classes count 0, as TorchRay), all
    pairs and the difficult subset, on random hits; and ``take`` keeps every per-pair array."""
    rng = np.random.default_rng(0)
    pairs, methods, columns = 57, 3, 4
    res = experiments.PointingResults(
        [f"m{i}" for i in range(methods)], [f"c{i}" for i in range(columns)], ["c0", "c1"],
        rng.random((pairs, methods, columns)) < 0.6, rng.integers(0, 6, pairs), rng.random(pairs) < 0.4,
        rng.random(pairs) < 0.3, num_classes=7, tolerance=1.0,
        points=rng.integers(0, 9, (pairs, methods, columns, 2)), images=np.array([f"im{i}" for i in range(pairs)]))
    for subset in ("all", "difficult"):
        keep = res.difficult if subset == "difficult" else np.ones(pairs, dtype=bool)
        want = np.zeros((methods, columns))
        for c in range(7):
            rows = keep & (res.class_ids == c)
            if rows.any():
                want += res.hits[rows].sum(0) / rows.sum()
        np.testing.assert_allclose(res.accuracy_table(subset), 100 * want / 7, rtol=1e-13)
    index = rng.integers(0, pairs, pairs)
    taken = res.take(index)
    for name in ("hits", "class_ids", "difficult", "center", "points", "images"):
        assert np.array_equal(getattr(taken, name), getattr(res, name)[index]), name


def test_cache_reused_resumed_and_verified(setup, tmp_path, monkeypatch):
    uninterrupted = run(setup, None)
    computed = []

    def kill_after_first(part):
        computed.append(part)
        if len(computed) == 1:
            raise KeyboardInterrupt  # the run is killed after writing one part

    with pytest.raises(KeyboardInterrupt):
        run(setup, tmp_path, on_part_saved=kill_after_first)
    computed.clear()
    resumed = run(setup, tmp_path, on_part_saved=computed.append)
    assert 0 not in computed and len(computed) >= 1  # part 0 came from the cache
    same_results(resumed, uninterrupted)

    def no_saliency(*args, **kwargs):
        raise AssertionError("everything should come from the cache")

    monkeypatch.setattr(pointing_module, "saliency", no_saliency)
    same_results(run(setup, tmp_path), uninterrupted)
    monkeypatch.undo()

    part = next(tmp_path.rglob("part-00001.npz"))
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated: unreadable
    with np.load(next(tmp_path.rglob("part-00002.npz"))) as z:  # readable, but a value was edited
        arrays = dict(z)
    arrays["hits"] = ~arrays["hits"]
    np.savez_compressed(next(tmp_path.rglob("part-00002.npz")), **arrays)
    computed.clear()
    with pytest.warns(UserWarning, match="corrupt cache part"):
        again = run(setup, tmp_path, on_part_saved=computed.append)
    assert computed == [1, 2]
    same_results(again, uninterrupted)


def test_two_shards_merge_to_the_unsharded_result(setup, tmp_path):
    assert run(setup, tmp_path, shard="0/2") is None  # shard 1 still missing
    merged = run(setup, tmp_path, shard="1/2")
    same_results(merged, run(setup, None))
    same_results(run(setup, tmp_path, compute=False), merged)


def test_parameters_change_the_key(setup):
    zoo, source, weights = setup
    a = experiments.RunCache("pointing", {"m": 1}, None).key
    assert a != experiments.RunCache("pointing", {"m": 2}, None).key
    other = copy.deepcopy(zoo.model)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert experiments.weights_checksum(zoo.model) != experiments.weights_checksum(other)
    with pytest.raises(ValueError, match="shard"):
        experiments.parse_shard("2/2")


_MODULE = '''"""Module docstring."""
# a comment
import math

EPS = 1e-8


class Thing:
    """Class docstring."""

    def f(self, x):
        """Function docstring: f(x) = x + ε."""
        return math.fsum([x, EPS])  # inline comment


async def g():
    """Only a docstring."""
'''


def test_code_version_counts_code_not_comments_or_docstrings(tmp_path):
    """A cache key's code hash survives comments, docstrings and layout; any change to code (a
    constant, an argument, a string that is not a docstring, a new module) changes it; figure
    writers and command lines do not count."""
    from reproduction.cache import source_digest
    from reproduction.storage import digest_json

    assert experiments.code_version() == digest_json({
        "revisal": source_digest(Path(revisal.__file__).resolve().parent),
        "reproduction": source_digest(Path(experiments.__file__).resolve().parent)})[:16]
    (tmp_path / "sub").mkdir()
    (tmp_path / "mod.py").write_text(_MODULE)
    (tmp_path / "report.py").write_text("def save():\n    return 1\n")
    (tmp_path / "sub" / "__main__.py").write_text("print(1)\n")
    base = source_digest(tmp_path)

    def edited(old: str, new: str, path: str = "mod.py") -> str:
        file = tmp_path / path
        text = file.read_text()
        assert old in text
        file.write_text(text.replace(old, new, 1))
        try:
            return source_digest(tmp_path)
        finally:
            file.write_text(text)

    same = [("# a comment", "# another comment\n# and one more"), ("EPS = 1e-8", "EPS = 1e-8  # why"),
            ("EPS = 1e-8\n", "EPS = 1e-8\n\n\n"), ("[x, EPS]", "[ x , EPS ]"),
            ('"""Module docstring."""', '"""Module docstring, edited."""'),
            ('"""Class docstring."""', "'Class docstring, reworded.'"),
            ('"""Function docstring: f(x) = x + ε."""', '"""f(x) = x + ε, the formula."""'),
            ('"""Only a docstring."""', '"""Only a docstring, longer."""')]
    for old, new in same:
        assert edited(old, new) == base, (old, new)
    assert edited("return 1", "return 2", "report.py") == base
    assert edited("print(1)", "print(2)", "sub/__main__.py") == base
    changed = [("EPS = 1e-8", "EPS = 1e-7"), ("[x, EPS]", "[EPS, x]"), ("def f(self, x)", "def f(self, x=0)"),
               ('"""Only a docstring."""', '"""Only a docstring."""\n    return 1'),
               ("import math", "import math\nNAME = 'a string that is not a docstring'")]
    for old, new in changed:
        assert edited(old, new) != base, (old, new)
    (tmp_path / "sub" / "new.py").write_text("X = 1\n")
    assert source_digest(tmp_path) != base


def test_cli_prints_the_table(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "reproduction", "pointing-game", "--model", "mini_vgg", "--n", "12",
         "--methods", "normgrad", "grad_cam", "--quiet", "--cache-root", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout
    assert "| normgrad |" in out and "centre baseline" in out and "difficult" in out
    help_text = subprocess.run([sys.executable, "-m", "reproduction", "pointing-game", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "--shard" in help_text and "--merge" in help_text


# --- analyses --------------------------------------------------------------------------------------
@pytest.fixture
def small():
    zoo = load("mini_vgg")
    split = reproduction.testbed.load_split("val", n=6, progress=False, cache_dir=None, workers=1)
    return zoo, zoo.normalize(split.pixels(range(6)))


def test_class_sensitivity_correlates_max_and_min_class_maps(small):
    """In float64: class_sensitivity explains a batch of 12 (both classes), the reference two batches
    of 6, which round differently in float32 by CPU (and a rank correlation jumps when two
    near-equal values swap); in float64 the maps agree to ~1e-15."""
    zoo, x = small
    model, x = copy.deepcopy(zoo.model).double(), x.double()
    corr = class_sensitivity(model, x, ["features.13"], ["linear_approx", "guided_backprop"])
    with torch.no_grad():
        logits = model(x)
    a = revisal.saliency(model, x, logits.argmax(1), ["features.13"], ["linear_approx"])
    b = revisal.saliency(model, x, logits.argmin(1), ["features.13"], ["linear_approx"])
    want = spearman(a["linear_approx", "features.13"], b["linear_approx", "features.13"], (64, 64))
    torch.testing.assert_close(corr["linear_approx", "features.13"], want, rtol=1e-10, atol=1e-10)
    assert corr["guided_backprop", "features.13"].shape == (6,)


def test_identity_trick_correlation(small):
    zoo, x = small
    corr = identity_trick_correlation(zoo.model, x, 3, ["features.5", "features.14"])
    maps = revisal.saliency(zoo.model, x, 3, ["features.5", "features.14"], ["normgrad", "normgrad_conv"])
    # the same call on the same batch as inside identity_trick_correlation: equal bit for bit on any CPU
    torch.testing.assert_close(corr["features.5"], spearman(maps["normgrad", "features.5"],
                                                             maps["normgrad_conv", "features.5"], (64, 64)),
                               rtol=0, atol=0)
    assert float(corr["features.14"].mean()) > 0.5  # the two NormGrads agree closely (paper Table 4)


def test_cascading_randomization_leaves_the_model_alone(small):
    zoo, x = small
    before = {k: v.clone() for k, v in zoo.model.state_dict().items()}
    res = cascading_randomization(zoo.model, x, 2, ["features.8"], ["selective_normgrad", "guided_backprop"],
                                  blocks=["classifier.3", "classifier.0", "features.16", "features.14"],
                                  keep_maps=True)
    assert all(torch.equal(v, zoo.model.state_dict()[k]) for k, v in before.items())
    assert res.stages == ["trained", "classifier.3", "classifier.0", "features.16", "features.14"]
    corr = res.correlation["selective_normgrad", "features.8"]
    assert corr.shape == (5, 6) and torch.allclose(corr[0], torch.ones(6, dtype=torch.float64))
    assert float(corr[-1].nanmean()) < 0.9  # randomising the top of the network scrambles the map
    again = cascading_randomization(zoo.model, x, 2, ["features.8"], ["selective_normgrad"],
                                    blocks=["classifier.3", "classifier.0"])
    torch.testing.assert_close(again.correlation["selective_normgrad", "features.8"], corr[:3])  # seeded
    assert len(res.maps) == 5


def test_cascade_with_the_authors_target_rule_equals_the_slow_way(small):
    """target_rule="predicted" (the authors' sanity check): stage 0 explains the given class, every
    later stage the partially randomised model's own top class; each stage's map and both Spearman
    variants equal a slow re-run on an independently randomised copy, in float64."""
    import copy

    from revisal.metrics.randomization import randomize

    zoo, x = small
    model = copy.deepcopy(zoo.model).double()
    x = x[:4].double()
    given = torch.tensor([1, 2, 3, 4])
    blocks = ["classifier.3", "classifier.0", "features.16"]
    res = cascading_randomization(model, x, given, ["features.8"], ["linear_approx"], blocks=blocks, seed=5,
                                  target_rule="predicted", keep_maps=True)
    slow, first = copy.deepcopy(model), None
    for k, block in enumerate([None, *blocks]):
        if block is not None:
            randomize(dict(slow.named_modules())[block], 5 + k)
        with torch.no_grad():
            target = given if k == 0 else slow(x).argmax(1)
        assert torch.equal(res.targets[k], target), k
        want = revisal.saliency(slow, x, target, ["features.8"], ["linear_approx"])["linear_approx", "features.8"]
        torch.testing.assert_close(res.maps[k]["linear_approx", "features.8"], want, rtol=1e-10, atol=0)
        first = want if first is None else first
        for absolute, table in ((False, res.correlation), (True, res.correlation_abs)):
            rho = spearman(first, want, (64, 64), absolute=absolute)
            torch.testing.assert_close(table["linear_approx", "features.8"][k], rho, rtol=0, atol=1e-12)
    assert not torch.equal(res.targets[-1], given)  # a randomised top layer predicts other classes
    fixed = cascading_randomization(model, x, given, ["features.8"], ["linear_approx"], blocks=blocks, seed=5)
    assert all(torch.equal(t, given) for t in fixed.targets)
    with pytest.raises(ValueError, match="target_rule"):
        cascading_randomization(model, x, given, ["features.8"], ["linear_approx"], blocks=blocks, target_rule="top")
    with pytest.raises(ValueError, match="class ids"):
        cascading_randomization(model, x, 3, ["features.8"], ["linear_approx"], blocks=blocks, target_rule="predicted")


def test_absolute_spearman_is_the_sanity_checks_second_variant():
    """ρ between |a'| and |b'|, each map scaled to [−1, 1] by its own range (the authors'
    ``spearman_abs``), against scipy on the same values; a sign flip leaves it unchanged."""
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 1, 9, 7, generator=g, dtype=torch.float64), torch.randn(3, 1, 9, 7, generator=g, dtype=torch.float64)
    b[1] = a[1] * 0.5 + 0.1 * b[1]
    got = spearman(a, b, None, absolute=True)
    for i in range(3):
        unit = [2 * (m[i] - m[i].min()) / (m[i].max() - m[i].min()) - 1 for m in (a, b)]
        want = spearmanr(unit[0].abs().flatten().numpy(), unit[1].abs().flatten().numpy()).statistic
        assert float(got[i]) == pytest.approx(want, abs=1e-12)
    symmetric = torch.tensor([-3.0, -1.0, 0.5, 2.0, 3.0, 1.5], dtype=torch.float64).view(1, 1, 2, 3)  # min = −max
    assert float(spearman(symmetric, -symmetric, None, absolute=True)) == pytest.approx(1.0, abs=1e-12)
    assert float(spearman(symmetric, -symmetric, None)) == pytest.approx(-1.0, abs=1e-12)
    assert torch.isnan(spearman(torch.ones(1, 1, 2, 3), symmetric, None, absolute=True)).all()  # no range
    with pytest.raises(TypeError, match="absolute"):
        spearman(a, b, None, absolute=1)


def test_cached_analyses_are_reused(small, tmp_path, monkeypatch):
    zoo, x = small
    first = experiments.run_class_sensitivity(zoo, x, ["normgrad"], ["features.8"], cache_root=tmp_path, progress=False)
    monkeypatch.setattr(experiments.correlation_runs, "class_sensitivity_variants",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = experiments.run_class_sensitivity(zoo, x, ["normgrad"], ["features.8"], cache_root=tmp_path, progress=False)
    np.testing.assert_array_equal(first["normgrad", "features.8"], again["normgrad", "features.8"])
    # the other Spearman variant came from the same pass: read from the cache, and it is the absolute one
    absolute = experiments.run_class_sensitivity(zoo, x, ["normgrad"], ["features.8"], cache_root=tmp_path,
                                                 progress=False, absolute=True)
    monkeypatch.undo()
    want = revisal.metrics.class_sensitivity(zoo.model, x, ["features.8"], ["normgrad"], absolute=True, batch_size=32)
    np.testing.assert_allclose(absolute["normgrad", "features.8"], want["normgrad", "features.8"].numpy(), rtol=0, atol=1e-12)


def test_meta_dynamics_over_checkpoints(tmp_path):
    from reproduction import train

    cfg = train.TrainConfig(model="mini_resnet", epochs=2, batch_size=16, train_size=64, val_size=32, test_size=32,
                            threads=1, out=str(tmp_path / "models"))
    manifest = train.train(cfg, progress=False)
    folder = tmp_path / "models" / "mini_resnet"
    checkpoints = [folder / e["file"] for e in manifest["epochs"]]
    split = reproduction.testbed.load_split("val", n=4, progress=False, cache_dir=None, workers=1)
    zoo = load("mini_resnet")
    x = zoo.normalize(split.pixels(range(4)))
    splits = {"train": (x[:2], torch.tensor([0, 1])), "val": (x[2:], torch.tensor([2, 3]))}
    out = experiments.meta_dynamics(lambda c: load("mini_resnet", checkpoint=c), checkpoints, splits,
                                    ["normgrad"], ["layer3"], revisal.MetaStep(1e-2), cache_root=tmp_path / "cache",
                                    progress=False)
    assert out["val|normgrad|layer3"].shape == (2,) and out["train|normgrad|layer3"].shape == (2,)
    assert out["final|val|normgrad|layer3"][-1] == pytest.approx(1.0)  # the last epoch against itself
    # two epochs: the one step between them is the first epoch against the last
    np.testing.assert_array_equal(out["image|step|val|normgrad|layer3"], out["image|final|val|normgrad|layer3"][:1])
    first, last = (load("mini_resnet", checkpoint=c).model for c in checkpoints)
    want = revisal.metrics.spearman(*(revisal.saliency(m, x[2:], torch.tensor([2, 3]), ["layer3"], ["normgrad"])
                                      ["normgrad", "layer3"] for m in (first, last)), tuple(x.shape[-2:]))
    np.testing.assert_allclose(out["image|plainstep|val|normgrad|layer3"][0], want.numpy(), rtol=0, atol=1e-12)
    again = experiments.meta_dynamics(lambda c: (_ for _ in ()).throw(AssertionError("recomputed")), checkpoints,
                                      splits, ["normgrad"], ["layer3"], revisal.MetaStep(1e-2),
                                      cache_root=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(again["val|normgrad|layer3"], out["val|normgrad|layer3"])


def test_randomization_runner_keeps_maps(small, tmp_path):
    zoo, x = small
    out = experiments.randomization(zoo, x[:3], torch.tensor([1, 2, 3]), ["linear_approx"], ["features.8"],
                                    blocks=["classifier.3", "features.16"], keep_maps=2, cache_root=tmp_path)
    assert out["stages"].tolist() == ["trained", "classifier.3", "features.16"]
    assert out["corr|linear_approx|features.8"].shape == out["corr_abs|linear_approx|features.8"].shape == (3, 3)
    assert out["targets"].tolist() == [[1, 2, 3]] * 3  # the default rule keeps the given target
    assert out["maps|linear_approx|features.8"].shape == (3, 2, 64, 64)


def test_randomization_variants_equal_each_variants_own_cascade(small, tmp_path):
    """Notebook 05 runs one cascade per meta step for all its methods: every variant's correlations
    and kept maps must be exactly those of the variant's own one-method cascade."""
    zoo, x = small
    target = torch.tensor([1, 2, 3, 4])
    step = revisal.MetaStep(1e-3)
    variants = {"sNG": ("selective_normgrad", None), "LA": ("linear_approx", None), "Gui": ("guided_backprop", None),
                "LA + meta": ("linear_approx", step), "sNG + meta": ("selective_normgrad", revisal.MetaStep(1e-3))}
    kw = dict(blocks=["classifier.3", "features.16"], seed=3, keep_maps=2)
    got = experiments.randomization_variants(zoo, x[:4], target, variants, "features.8", cache_root=tmp_path, **kw)
    assert list(got) == list(variants)
    for name, (method, meta) in variants.items():
        alone = experiments.randomization(zoo, x[:4], target, [method], ["features.8"], meta=meta, cache_root=None, **kw)
        assert got[name]["stages"].tolist() == ["trained", "classifier.3", "features.16"]
        assert np.array_equal(got[name]["corr"], alone[f"corr|{method}|features.8"], equal_nan=True), name
        assert np.array_equal(got[name]["corr_abs"], alone[f"corr_abs|{method}|features.8"], equal_nan=True), name
        assert np.array_equal(got[name]["maps"], alone[f"maps|{method}|features.8"]), name


def test_the_authors_stages_re_initialise_what_their_sanity_check_does():
    """Their partially_randomize_model walks the modules from the top down and re-initialises every
    one with weights down to the stage's module: counted on torchvision's VGG16 and ResNet50 (modules
    holding parameters, cumulatively), and a cascade over those stages equals re-initialising each
    stage's group by hand."""
    import itertools

    import torchvision

    from reproduction.paper import AUTHORS_STAGES
    from revisal.metrics import staged_blocks
    from revisal.metrics.randomization import randomize

    with torch.device("meta"):
        vgg, resnet = torchvision.models.vgg16(), torchvision.models.resnet50()
    for model, arch, want in ((vgg, "vgg16", [1, 1, 2, 3, 6, 9, 12, 14, 16]), (resnet, "resnet50", [1, 21, 59, 85, 105, 105])):
        groups = staged_blocks(model, AUTHORS_STAGES[arch])
        assert list(groups) == list(AUTHORS_STAGES[arch])
        assert list(itertools.accumulate(len(g) for g in groups.values())) == want
    assert "conv1" not in sum(staged_blocks(resnet, AUTHORS_STAGES["resnet50"]).values(), [])  # never, as theirs
    assert staged_blocks(vgg, ["features.3"])["features.3"][0] == "features.5"  # below the named ReLU: kept
    with pytest.raises(ValueError, match="top of the network down"):
        staged_blocks(vgg, ["features.3", "features.29"])
    with pytest.raises(ValueError, match="no module"):
        staged_blocks(vgg, ["features.99"])
    torch.manual_seed(0)
    small = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    stages = staged_blocks(small, ["6", "2", ""])
    assert stages == {"6": ["6"], "2": ["2"], "": ["0"]}
    got = cascading_randomization(small, x, 1, ["1"], ["linear_approx"], blocks={"top": ["6", "2"], "all": ["0"]},
                                  seed=4, keep_maps=True)
    assert got.stages == ["trained", "top", "all"]
    by_hand = copy.deepcopy(small)
    randomize([by_hand[6], by_hand[2]], 5)  # stage 1: seed + 1, one stream for the group
    want = revisal.saliency(by_hand, x, 1, ["1"], ["linear_approx"])["linear_approx", "1"]
    torch.testing.assert_close(got.maps[1]["linear_approx", "1"], want, rtol=0, atol=0)


def test_blocks_above_a_layer_are_those_registered_after_it_and_not_inside_it():
    import torchvision

    model = torchvision.models.resnet18()
    cascade = revisal.metrics.default_blocks(model)
    above = revisal.metrics.blocks_above(model, cascade, "layer3")
    assert above == [b for b in cascade if b.startswith(("fc", "layer4"))]  # layer3's own convs are not above it
    assert revisal.metrics.blocks_above(model, cascade, "layer3.1.conv2") == \
        [b for b in cascade if b.startswith(("fc", "layer4", "layer3.1.bn2"))] == cascade[:cascade.index("layer3.1.bn2") + 1]
    assert revisal.metrics.blocks_above(model, cascade, "") == cascade
    assert revisal.metrics.blocks_above(model, cascade, "fc") == []
    with pytest.raises(ValueError, match="no module 'layer9'"):
        revisal.metrics.blocks_above(model, cascade, "layer9")


def test_the_late_stage_is_the_last_whose_modules_all_lie_above_the_map_layer():
    """Judged by what a stage re-initialises, not by its name: the authors' VGG16 stage
    ``features.29`` re-initialises only ``classifier.0``; their ``features.22`` re-initialises
    ``features.24`` … ``features.28`` (every conv above the map at ``features.22``), so that is the
    stage the paper reads; ``features.15`` would reach ``features.21``, the map layer's own conv."""
    import torchvision

    from reproduction.paper import AUTHORS_STAGES

    vgg = torchvision.models.vgg16()
    stages = revisal.metrics.staged_blocks(vgg, AUTHORS_STAGES["vgg16"])
    assert stages["features.29"] == ["classifier.0"]
    assert stages["features.22"] == ["features.24", "features.26", "features.28"]
    names = ["trained", *stages]
    assert names[revisal.metrics.late_stage(vgg, stages, "features.22")] == "features.22"
    assert names[revisal.metrics.late_stage(vgg, stages, "features.29")] == "features.29"
    assert names[revisal.metrics.late_stage(vgg, stages, "features.28")] == "features.29"  # 28's own conv is at 22
    assert revisal.metrics.late_stage(vgg, stages, "classifier.6") == 0
    # one module per stage (the default cascade): the last block above the layer
    cascade = revisal.metrics.default_blocks(vgg)
    k = revisal.metrics.late_stage(vgg, cascade, "features.22")
    assert cascade[k - 1] == "features.24" and cascade[k] == "features.21"
    assert revisal.metrics.late_stage(vgg, None, "features.22") == k
    assert revisal.metrics.late_stage(vgg, cascade, "") == len(cascade)


def test_cascade_blocks_resolves_the_authors_stages_by_the_model_and_passes_the_rest_through():
    import torchvision

    from reproduction.correlation_runs import cascade_blocks
    from reproduction.paper import AUTHORS_STAGES

    zoo = revisal.models.ZooModel("vgg16", torchvision.models.vgg16(), lambda x: x, ["a"], ("features.22",))
    assert cascade_blocks(zoo, "authors") == revisal.metrics.staged_blocks(zoo.model, AUTHORS_STAGES["vgg16"])
    assert cascade_blocks(zoo, None) is None and cascade_blocks(zoo, ["classifier.6"]) == ["classifier.6"]
    other = revisal.models.ZooModel("mini_vgg", zoo.model, lambda x: x, ["a"], ("features.22",))
    with pytest.raises(ValueError, match="blocks: the authors' stages exist for \\['resnet50', 'vgg16'\\], not 'mini_vgg'"):
        cascade_blocks(other, "authors")
