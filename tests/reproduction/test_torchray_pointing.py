"""The paper profile's pointing game against TorchRay 1.0's own pipeline on identical format fakes.

A fake VOCdevkit (non-square noise images of two sizes, PASCAL-difficult boxes, an image named as a
VOC07 test image so TorchRay's shipped flag file applies) and random-weight checkpoints in
TorchRay's key layout. TorchRay's public code is the oracle for each step:

* ``get_model(arch, "voc", convert_to_fully_convolutional=True)`` (checkpoint served in place of the
  download), with ResNet50's pool patched to 7×7 stride 1 as its benchmark does for backprop methods;
* ``get_transform("voc_2007", size)`` for the input;
* ``gradient``, ``guided_backprop``, ``grad_cam``, ``linear_approx``, ``excitation_backprop``
  (ResNet50 through ``update_resnet``) and ``contrastive_excitation_backprop`` (its contrast layer
  relu7 / avgpool), each seeded by ``get_pointing_gradient``, resized to the image and smoothed at
  the input by TorchRay's ``imsmooth``: the predicted point of every method at every layer must be
  the runner's, pair by pair;
* NormGrad ``‖g_u‖‖x_u‖`` and selective NormGrad ``‖(g_u ⊙ x_u)₊‖`` from plain autograd on TorchRay's
  model under the same seed, resize and smoothing;
* ``PointingGameBenchmark`` (all pairs, and the difficult subset from its flag file) for every
  hit and every accuracy.

The images are not square, so the class-score map is wider than 1×1 and the pointing gradient is
not the logit's gradient (checked: the test would fail with the logit as objective).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_paper_assets import torchray_layout
from torch import nn

import revisal
from conftest import oracle
from reproduction import run_pointing_game
from reproduction.caffe_models import CHECKPOINTS
from reproduction.datasets.labels import VOC_CLASSES
from reproduction.objectives import PointingObjective
from reproduction.profiles import detection_source
from revisal.models import load

pytestmark = pytest.mark.slow

INPUT_SIZE = 200  # TorchRay's protocol uses 224; 200 keeps VGG16's score map ≥ 1×1 and the test faster
BACKPROP = ["gradient", "guided_backprop", "grad_cam", "linear_approx", "excitation_backprop",
            "contrastive_excitation_backprop"]
FORMULAS = ["normgrad", "selective_normgrad"]
CONTRAST = {"vgg16": "classifier.4", "resnet50": "avgpool"}
#: name → (width, height, objects (class, box x0 y0 x1 y1 1-based inclusive, PASCAL difficult)).
#: 000001 is in TorchRay's VOC07 flag file; 900001 is not (so it stays in the difficult subset).
FAKE = {
    "000001": (52, 40, [("dog", (3, 4, 20, 30), 0), ("person", (25, 2, 50, 38), 0), ("dog", (40, 30, 52, 40), 1)]),
    "900001": (36, 46, [("cat", (5, 20, 30, 44), 0), ("cat", (1, 1, 6, 6), 1), ("car", (10, 10, 20, 20), 1)]),
}


def write_fake_voc(root: Path) -> None:
    base = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (w, h, objects) in FAKE.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(base / "JPEGImages" / f"{name}.jpg",
                                                                              quality=95)
        objs = "".join(
            f"<object><name>{c}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{d}</difficult>"
            f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
            for c, b, d in objects)
        (base / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{name}.jpg</filename>"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>")
    (base / "ImageSets" / "Main" / "test.txt").write_text("\n".join(FAKE) + "\n")


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc")
    write_fake_voc(root)
    return root


def torchray_model(arch: str, state: dict, monkeypatch_hub) -> nn.Module:
    """TorchRay's own fully convolutional model from ``state`` (served in place of the download),
    patched as its benchmark patches it for backprop methods."""
    models = oracle("torchray.benchmark.models")
    with monkeypatch_hub(lambda *a, **k: {k2: v.clone() for k2, v in state.items()}):
        model = models.get_model(arch, "voc", convert_to_fully_convolutional=True)
    if arch == "resnet50":
        model.avgpool = nn.AvgPool2d((7, 7), stride=1)
    return model.eval()


class _Hub:
    def __call__(self, replacement):
        self.replacement = replacement
        return self

    def __enter__(self):
        self.saved = torch.hub.load_state_dict_from_url
        torch.hub.load_state_dict_from_url = self.replacement

    def __exit__(self, *exc):
        torch.hub.load_state_dict_from_url = self.saved


class Clone(nn.Module):
    """A fresh tensor equal to the input: somewhere for TorchRay's output probe to watch the input."""

    def forward(self, x):
        return x.clone()


def _point(saliency: torch.Tensor) -> tuple[int, int]:
    flat = int(saliency.reshape(-1).argmax())
    return flat % saliency.shape[-1], flat // saliency.shape[-1]


def _tied_in_float32(saliency: torch.Tensor, point: tuple[int, int]) -> bool:
    """``point`` is one of the map's maximisers up to float32 rounding: a plateau (ResNet50's 7×7
    pooled score map makes layer4's gradient constant over a 7×7 window) resized bilinearly reaches
    each pixel through 4 taps whose weights sum to 1, so equal values can differ by 4 roundings
    (4·ε₃₂ relative), and which one argmax picks is the order of float operations, not the method."""
    top, there = float(saliency.max()), float(saliency[point[1], point[0]])
    return top - there <= 4 * torch.finfo(torch.float32).eps * abs(top)


class Oracle:
    """TorchRay's maps for one model: ``point(method, layer, x, class_id, (h, w))``."""

    def __init__(self, arch: str, state: dict, layers: list[str]):
        self.arch, self.layers, self._formulas = arch, layers, {}
        self.model = torchray_model(arch, state, _Hub())
        self.eb_model = self.model
        if arch == "resnet50":
            eb = oracle("torchray.attribution.excitation_backprop")
            self.eb_model = eb.update_resnet(copy.deepcopy(self.model))
        self.wrapped = nn.Sequential(Clone(), self.eb_model).eval()

    def saliency(self, method: str, layer: str, x: torch.Tensor, class_id: int, size: tuple[int, int]) -> torch.Tensor:
        common = oracle("torchray.attribution.common")
        utils = oracle("torchray.utils")
        h, w = size
        gpg = common.get_pointing_gradient
        x = x.clone()
        if method in BACKPROP[:4]:
            module = oracle(f"torchray.attribution.{method}")
            s = getattr(module, method)(self.model, x, class_id, saliency_layer=layer, resize=(w, h),
                                        smooth=0.02 if layer == "" else 0, get_backward_gradient=gpg)
            return s
        if method == "excitation_backprop":
            eb = oracle("torchray.attribution.excitation_backprop")
            s = eb.excitation_backprop(self.eb_model, x, class_id, saliency_layer=layer, resize=(w, h),
                                       smooth=0.02 if layer == "" else 0, get_backward_gradient=gpg)
            return s
        if method == "contrastive_excitation_backprop":
            eb = oracle("torchray.attribution.excitation_backprop")
            s = eb.contrastive_excitation_backprop(self.wrapped, x, class_id,
                                                   saliency_layer="0" if layer == "" else f"1.{layer}",
                                                   contrast_layer=f"1.{CONTRAST[self.arch]}", resize=(w, h),
                                                   get_backward_gradient=gpg)
        else:
            s = self.formula(method, layer, x, class_id, gpg)
            s = F.interpolate(s, (h, w), mode="bilinear", align_corners=False)
        if layer == "":
            s = utils.imsmooth(s, sigma=0.02 * max(s.shape[2:]), padding_mode="replicate")
        return s

    def formula(self, method: str, layer: str, x: torch.Tensor, class_id: int, gpg) -> torch.Tensor:
        """NormGrad ‖g_u‖‖x_u‖ / selective NormGrad ‖(g_u ⊙ x_u)₊‖ by plain autograd, with g the
        gradient of TorchRay's pointing seed at the layer's output (the input for ``""``). One
        forward and one backward per input give every layer's (these formulas are ours, not
        TorchRay's, so nothing is lost by sharing the pass); kept for the input's other calls."""
        key = (class_id, hashlib.sha256(x.detach().numpy().tobytes()).hexdigest())
        if self._formulas.get("key") != key:
            self._formulas = {"key": key, **self._formula_maps(x, class_id, gpg)}
        return self._formulas[method, layer]

    def _formula_maps(self, x: torch.Tensor, class_id: int, gpg) -> dict:
        modules = dict(self.model.named_modules())
        caught: dict[str, torch.Tensor] = {}
        hooks = [modules[name].register_forward_hook(lambda m, i, o, name=name: caught.setdefault(name, o))
                 for name in self.layers if name]
        for p in self.model.parameters():
            p.requires_grad_(False)
        caught[""] = x = x.clone().requires_grad_(True)
        try:
            out = self.model(x)
        finally:
            for hook in hooks:
                hook.remove()
        grads = torch.autograd.grad(out, [caught[name] for name in self.layers], gpg(out, class_id))
        maps = {}
        for name, g in zip(self.layers, grads):
            act = caught[name].detach()
            maps["normgrad", name] = g.norm(dim=1, keepdim=True) * act.norm(dim=1, keepdim=True)
            maps["selective_normgrad", name] = (g * act).clamp(min=0).norm(dim=1, keepdim=True)
        return maps


# one unit of work per architecture (conftest.SPLIT_BY_PARAMETER); VGG16's (≈ 2 worker-minutes, 4× the cost
# per TorchRay call) runs under make test-paper with the paper profile's other runs, ResNet50's under make test
@pytest.fixture(scope="module", params=["resnet50", pytest.param("vgg16", marks=pytest.mark.paper_profile)])
def pipelines(request, voc_root, tmp_path_factory):
    """Both pipelines for one architecture: (ours: results, source, zoo), TorchRay's oracle."""
    arch = request.param
    state = torchray_layout(arch, 20)
    if arch == "resnet50":  # random BatchNorms blow its scores up to ~1e4, where TorchRay's unshifted exp
        state["fc.weight"] = state["fc.weight"] * 2e-4  # overflows (see docs/deviations.md); bring them to ~10
        state["fc.bias"] = state["fc.bias"] * 2e-4
    path = tmp_path_factory.mktemp("ckpt") / CHECKPOINTS[arch, "voc"]
    torch.save(state, path)
    zoo = load(f"{arch}_voc", path=path, verify=False)
    source = detection_source(zoo, "voc07", str(voc_root), INPUT_SIZE, torchray_flags=True)
    torch.manual_seed(0)
    results = run_pointing_game(zoo, source, BACKPROP + FORMULAS, list(zoo.layers), combinations=(), cache_root=None,
                            progress=False)
    theirs = Oracle(arch, state, list(zoo.layers))
    theirs.checkpoint = path
    return arch, zoo, source, results, theirs


def test_fully_convolutional_model_is_torchrays(pipelines):
    """Same modules (VGG16: all but torchvision's unused ``avgpool``), same parameters, and the same
    class-score map bit for bit on a non-square input."""
    arch, zoo, _, _, theirs = pipelines
    ours_names = {n for n, _ in zoo.model.named_modules()}
    their_names = {n for n, _ in theirs.model.named_modules()}
    assert ours_names == their_names - ({"avgpool"} if arch == "vgg16" else set())
    x = torch.randn(1, 3, 200, 262, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, want = zoo.model(x), theirs.model(x)
    assert ours.shape == want.shape and ours.shape[-1] > 1
    assert torch.equal(ours, want)


def test_input_is_torchrays_transform(pipelines, voc_root):
    """Each image's input equals TorchRay's ``get_transform("voc_2007", size)`` bit for bit."""
    models = oracle("torchray.benchmark.models")
    _, _, source, _, _ = pipelines
    transform = models.get_transform("voc_2007", INPUT_SIZE)
    for pair in source.pairs():
        x, _, sizes = source.load([pair])
        name = source.image_id(pair)
        image = Image.open(voc_root / "VOCdevkit" / "VOC2007" / "JPEGImages" / f"{name}.jpg").convert("RGB")
        assert torch.equal(x[0], transform(image))
        assert sizes[0] == (image.height, image.width)


def test_points_match_torchray_for_every_method_and_layer(pipelines):
    """Pair by pair, method by method, layer by layer, the runner's point is TorchRay's. ResNet50:
    every pair; VGG16 (≈4× the cost per call, 48 TorchRay calls per pair on the CPU): the second
    class of 000001, whose map the runner computes in the same pass as the first's. Where TorchRay's
    map has a plateau the runner's point must lie on it (:func:`_tied_in_float32`)."""
    arch, zoo, source, results, theirs = pipelines
    pairs = source.pairs()
    assert len(pairs) == results.pairs == 3
    mismatches = []
    for k, pair in enumerate(pairs):
        if arch == "vgg16" and k != 1:
            continue
        x, _, sizes = source.load([pair])
        for mi, method in enumerate(results.methods):
            for li, layer in enumerate(results.layers):
                theirs_map = theirs.saliency(method, layer, x, pair.class_id, sizes[0])[0, 0]
                want = _point(theirs_map)
                got = tuple(int(v) for v in results.points[k, mi, li])
                if got != want and not _tied_in_float32(theirs_map, got):
                    mismatches.append((source.image_id(pair), pair.class_id, method, layer or "input", got, want))
    assert not mismatches, "\n".join(map(str, mismatches))


def test_pointing_gradient_is_not_the_logit_here(pipelines):
    """On these non-square inputs the score map is wider than 1×1, so seeding the backward at the
    logit (the class score averaged by a global pool) is a different objective: some method's
    point moves. (If it did not, the parity above would not tell the two apart.)"""
    _, zoo, source, _, _ = pipelines
    pair = source.pairs()[0]
    x, _, _ = source.load([pair])
    assert zoo.model(x).shape[-1] > 1
    layers = ["", zoo.layers[-1]]
    lse = revisal.saliency(zoo.model, x, PointingObjective([pair.class_id]), layers, ["gradient"])
    mean = revisal.saliency(zoo.model, x, lambda out: out[:, pair.class_id].flatten(1).mean(1), layers, ["gradient"])
    assert not all(torch.allclose(lse["gradient", layer], mean["gradient", layer]) for layer in layers)


def test_hits_and_accuracies_match_torchrays_benchmark(pipelines, voc_root):
    """Every hit as ``PointingGameBenchmark.evaluate`` scores the stored point, for all pairs and for
    the difficult subset of its flag file; accuracies as its ``accuracy``."""
    bench = oracle("torchray.benchmark.pointing_game")
    from torchvision.datasets import VOCDetection

    _, _, source, results, _ = pipelines
    dataset = VOCDetection(str(voc_root), year="2007", image_set="test")
    games = {subset: bench.PointingGameBenchmark(dataset, difficult=subset == "difficult") for subset in
             ("all", "difficult")}
    pairs = source.pairs()
    for mi, method in enumerate(results.methods):
        for li, layer in enumerate(results.layers):
            for game in games.values():
                game.reset()
            for k, pair in enumerate(pairs):
                _, label = dataset[pair.image]
                point = [int(v) for v in results.points[k, mi, li]]
                for subset, game in games.items():
                    verdict = game.evaluate(label, pair.class_id, point)
                    if subset == "difficult" and not pair.difficult:
                        assert verdict == 0, (pair, method, layer)
                        continue
                    assert verdict == (1 if results.hits[k, mi, li] else -1), (pair, method, layer)
                    game.aggregate(verdict, pair.class_id)
            for subset, game in games.items():
                assert results.accuracy(method, layer, subset) == pytest.approx(100 * float(game.accuracy), abs=1e-4)
    # pairs the benchmark skips (every box of the class PASCAL-difficult) are not ours either
    for index in range(len(dataset)):
        _, label = dataset[index]
        present = {VOC_CLASSES.index(o["name"]) for o in label["annotation"]["object"]}
        for c in present:
            skipped = games["all"].evaluate(label, c, [0, 0]) == 0
            assert skipped == (not any(p.image == index and p.class_id == c for p in pairs))


def test_results_do_not_depend_on_batch_size(pipelines):
    _, zoo, source, results, _ = pipelines
    if zoo.name != "resnet50_voc":
        pytest.skip("one architecture suffices (each image's pairs always share one pass)")
    again = run_pointing_game(zoo, source, results.methods, results.layers, combinations=(), cache_root=None,
                          progress=False, batch_size=1)
    assert np.array_equal(again.points, results.points) and np.array_equal(again.hits, results.hits)


def test_cli_exports_the_runners_points(pipelines, voc_root, tmp_path, capsys):
    """``pointing-game --export`` on the user's own copies (``--root``, ``--checkpoint-dir``,
    ``--no-verify-checkpoints``): one row per pair × method × layer, the runner's points and hits,
    ``""`` for the input layer, x and y in original-image pixels."""
    import csv

    from reproduction.__main__ import main

    arch, zoo, source, results, theirs = pipelines
    if arch != "resnet50":
        pytest.skip("one architecture suffices")
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    (checkpoints / CHECKPOINTS[arch, "voc"]).symlink_to(theirs.checkpoint)  # a fake: its sha256 differs
    out = tmp_path / "points.csv"
    methods = ["gradient", "grad_cam"]
    main(["pointing-game", "--model", "resnet50_voc", "--dataset", "voc07", "--root", str(voc_root),
          "--checkpoint-dir", str(checkpoints), "--no-verify-checkpoints", "--methods", *methods,
          "--input-size", str(INPUT_SIZE), "--no-combinations", "--export", str(out), "--quiet",
          "--cache-root", str(tmp_path / "cache"), "--device", "cpu"])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == results.pairs * len(methods) * len(results.layers)
    assert {r["layer"] for r in rows} == set(results.layers) and "" in {r["layer"] for r in rows}
    ids = [source.image_id(p) for p in source.pairs()]
    for row in rows:
        k = next(i for i, p in enumerate(source.pairs()) if ids[i] == row["image_id"] and p.class_id == int(row["class_id"]))
        mi, li = results.methods.index(row["method"]), results.layers.index(row["layer"])
        assert (int(row["x"]), int(row["y"])) == tuple(int(v) for v in results.points[k, mi, li])
        assert int(row["hit"]) == int(results.hits[k, mi, li])
        w, h = FAKE[row["image_id"]][:2]
        assert 0 <= int(row["x"]) < w and 0 <= int(row["y"]) < h
    assert "agrees on" in capsys.readouterr().out


def test_flags_by_default_missing_images_stay_difficult_and_the_rule_is_reported(voc_root):
    """TorchRay's flag file decides the difficult subset; 900001 is not in it, so its pair stays
    difficult (TorchRay skips a pair only on an explicit 0). The area rule is reported beside:
    000001's dog covers 30% of the image with its PASCAL-difficult box (the mask keeps it), so the
    rule calls it easy where the file says difficult; its person (46%) is easy by both; 900001's cat
    (41%) is easy by the rule."""
    zoo = load("resnet50_voc", pretrained=False)
    flagged = detection_source(zoo, "voc07", str(voc_root), INPUT_SIZE, torchray_flags=True)
    by_pair = {(flagged.image_id(p), VOC_CLASSES[p.class_id]): p.difficult for p in flagged.pairs()}
    assert by_pair == {("000001", "dog"): True, ("000001", "person"): False, ("900001", "cat"): True}
    assert flagged.flag_agreement() == {"pairs": 3, "agree": 1, "agreement": pytest.approx(100 / 3), "rule_only": 0,
                                        "flags_only": 2}
    rule = detection_source(zoo, "voc07", str(voc_root), INPUT_SIZE, torchray_flags=False)
    assert not any(p.difficult for p in rule.pairs()) and rule.flag_agreement()["agreement"] == 100
