"""Four quirks of the authors' scripts that revisal does not reproduce, measured on fakes.

``docs/deviations.md`` row 19. The authors' scripts are TorchRay's ``normgrad`` branch (commit
832524e): ``torchray/benchmark/sanity_check.py`` with its driver ``examples/sanity_check.py``
(Figs. 8, 13), ``examples/class_selectivity.py`` (Figs. 6, 7) and
``examples/norm_grad_virtual_identity_correlation.py`` (Table 4). Each quirk is measured here, on
random weights and noise images (CPU, seeded), next to what revisal computes instead:

  (a) the sanity check stores Spearman's p-value (``_, p = spearmanr(...)``), not ρ: a cascade
      (``cascading_randomization`` by the authors' stages, their target rule) read both ways;
  (b) its driver prepends ``None`` to a stage list that every image (and the benchmark's
      ``aggregate`` check) shares: a re-typed minimal loop counts the images that get through;
  (c) the class-sensitivity script computes the min-class map first, on the input tensor it then
      reuses, so the max-class contrastive EB at the input is ``clamp(EB, 0)`` (row 1's mechanism):
      ρ(max, min) at the input with and without the quirk (and, where TorchRay 1.0 is installed,
      the authors' call order through its ``contrastive_excitation_backprop``, to check the mechanism);
  (d) the Table 4 script loops over architectures and layers but passes its command-line
      ``--arch``/``--saliency_layer`` to every call: what the loop computes against the intended
      per-layer correlations.

The fakes: torchvision's VGG16 with 512-wide hidden classifier layers (its 13 convolutions and
module names; ``tests/narrow_vgg.vgg16_narrow_head``) and torchvision's ResNet-50, random init::

    python benchmarks/authors_quirks.py [--size 32] [--images 4] [--resnet-size 64] [--threads 1]

About 25 s on one CPU thread. The numbers are quoted in docs/deviations.md ("Measured on fakes").
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from reproduction.paper import AUTHORS_STAGES
from revisal import saliency
from revisal.metrics import cascading_randomization, identity_trick_correlation, spearman, staged_blocks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' narrow-head VGG16
from narrow_vgg import vgg16_narrow_head  # noqa: E402

#: Their ``modules_to_run['short']['vgg16']`` (examples/sanity_check.py), in their order.
THEIR_SHORT_VGG16 = ["", "features.3", "features.8", "features.15", "features.22", "features.29",
                     "classifier.2", "classifier.4", "classifier.6"]

#: Their Table 4 loop (examples/norm_grad_virtual_identity_correlation.py): architectures, layers,
#: and the command-line defaults every call receives instead.
TABLE4_LAYERS = {
    "vgg16": ["features.28", "features.21", "features.14", "features.7", "features.2"],
    "resnet50": ["layer4.0.conv1", "layer3.0.conv1", "layer2.0.conv1", "layer1.0.conv1"],
}
TABLE4_ARGS = {"arch": "resnet50", "saliency_layer": "layer4.0.conv1"}


def vgg16_fake(seed: int = 0, width: int = 512) -> nn.Module:
    """``tests/narrow_vgg.vgg16_narrow_head`` (torchvision's VGG16, ``width``-wide hidden classifier
    layers, module names kept), initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = vgg16_narrow_head(width)
    return model.eval()


def resnet50_fake(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torchvision.models.resnet50()
    return model.eval()


def noise(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def labels(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 1000, (n,), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------
# (a) Spearman's p-value instead of ρ


def spearman_p(rho, n: int) -> np.ndarray:
    """The p-value ``scipy.stats.spearmanr`` returns with ρ (two-sided t test, n − 2 degrees of
    freedom), from ρ and the number of pixels n: the number their sanity check stores."""
    from scipy.stats import t

    rho = np.clip(np.asarray(rho, dtype=np.float64), -1.0, 1.0)  # as np.corrcoef clips
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = rho * np.sqrt(np.clip((n - 2) / ((rho + 1.0) * (1.0 - rho)), 0, None))
    return 2 * t.sf(np.abs(stat), n - 2)


def _unit_abs(m: torch.Tensor) -> torch.Tensor:
    """Their ``abs(normalize(map, -1, 1))``."""
    return (2 * (m - m.min()) / (m.max() - m.min()) - 1).abs()


def sanity_p_values(model: nn.Module, images: torch.Tensor, target: torch.Tensor, methods, layer: str, *,
                    map_size: int = 224, seed: int = 0) -> dict:
    """The authors' cascade (their stages and target rule) read as they store it, the p-value of
    ``spearmanr(map_stage, map_trained)``, and as ρ. Maps are resized to ``map_size``² first (theirs
    are resized to their 224² input, which sets the n behind p).

    Returns ``{method: [{stage, rho, rho_min, rho_max, p, p_max, rho_abs, p_abs} (over images), …]}``,
    ``"n"`` and ``"scipy_check"``: for one later stage and image per method, the largest difference
    between (ρ, p) here and ``scipy.stats.spearmanr``'s on the same maps, signed and absolute."""
    from scipy.stats import spearmanr

    blocks = staged_blocks(model, AUTHORS_STAGES["vgg16"])
    result = cascading_randomization(model, images, target, [layer], methods, blocks=blocks, seed=seed,
                                     target_rule="predicted", size=(map_size, map_size), keep_maps=True)
    n = map_size * map_size
    out, check = {"n": n}, 0.0
    for method in methods:
        key = (method, layer)
        rho, rho_abs = result.correlation[key].numpy(), result.correlation_abs[key].numpy()  # [stages, images]
        p, p_abs = spearman_p(rho, n), spearman_p(rho_abs, n)
        up = [F.interpolate(result.maps[k][key][:1].detach().double(), size=(map_size, map_size), mode="bilinear",
                            align_corners=False)[0] for k in (0, 1)]
        for k, (a, b) in enumerate(((up[1], up[0]), (_unit_abs(up[1]), _unit_abs(up[0])))):
            r, q = spearmanr(a.flatten().numpy(), b.flatten().numpy())
            mine = (rho, p) if k == 0 else (rho_abs, p_abs)
            check = max(check, abs(r - mine[0][1, 0]), abs(q - mine[1][1, 0]))
        out[method] = [{"stage": stage, "rho": float(rho[k].mean()), "rho_min": float(rho[k].min()),
                        "rho_max": float(rho[k].max()), "p": float(p[k].mean()), "p_max": float(p[k].max()),
                        "rho_abs": float(rho_abs[k].mean()), "p_abs": float(p_abs[k].mean())}
                       for k, stage in enumerate(result.stages)]
    out["scipy_check"] = check
    return out


def rho_at_p(p: float, n: int) -> float:
    """The |ρ| above which scipy's spearmanr p-value (t test, n − 2 dof) falls below ``p``."""
    from scipy.stats import t

    q = t.isf(p / 2, n - 2)
    return float(q / np.sqrt(n - 2 + q * q))


# --------------------------------------------------------------------------------------------
# (b) the driver's shared, mutated stage list


class _Benchmark:
    """Their ``SanityCheckBenchmark``, reduced to what its ``aggregate`` checks."""

    def __init__(self, modules_to_run: list):
        self.modules_to_run = modules_to_run  # the caller's list itself, as theirs keeps it
        self.aggregated = 0

    def aggregate(self, results: dict) -> None:
        assert results["modules_to_run"] == self.modules_to_run
        self.aggregated += 1


def _sanity_check(modules_to_run: list, fixed: bool) -> dict:
    """Their ``sanity_check``'s handling of ``modules_to_run`` (the maps left out)."""
    if fixed:
        modules_to_run = list(modules_to_run)
    modules_to_run.insert(0, None)  # stage 0: the trained model
    return {"modules_to_run": modules_to_run[1:]}


def sanity_driver(n_images: int, fixed: bool = False) -> dict:
    """Their driver's loop: one stage list per architecture (``modules_to_run[...][arch]``), handed to
    the ``Experiment``, the executor's benchmark and every ``sanity_check`` call."""
    stages = list(THEIR_SHORT_VGG16)
    bench = _Benchmark(stages)
    processed, error = 0, None
    try:
        for _ in range(n_images):
            results = _sanity_check(stages, fixed)
            processed += 1
            bench.aggregate(results)
    except AssertionError:
        error = "AssertionError in aggregate"
    return {"images": n_images, "sanity_check_calls": processed, "aggregated": bench.aggregated,
            "stage_list": len(stages), "none_stages": stages.count(None), "stopped_by": error}


# --------------------------------------------------------------------------------------------
# (c) min-class map first: the max-class contrastive EB at the input is clamp(EB, 0)


def ceb_input_rho(model: nn.Module, images: torch.Tensor, contrast_layer: str = "classifier.4") -> dict:
    """ρ(max-class map, min-class map) at the input, per image, for the true cEB and for the
    authors' order (min first: its cEB is true; max second: ``clamp(EB, 0)``)."""
    with torch.no_grad():
        logits = model(images.clone())
    top, bottom = logits.argmax(1), logits.argmin(1)
    n = len(images)
    maps = saliency(model, torch.cat([images, images]), torch.cat([top, bottom]), [""],
                    ["excitation_backprop", "contrastive_excitation_backprop"], contrast_layer=contrast_layer)
    ceb, eb = maps["contrastive_excitation_backprop", ""], maps["excitation_backprop", ""]
    size = tuple(images.shape[-2:])
    true = spearman(ceb[:n], ceb[n:], size)
    quirk = spearman(eb[:n].clamp(min=0), ceb[n:], size)
    eb_rho = spearman(eb[:n], eb[n:], size)
    same = spearman(ceb[:n], eb[:n].clamp(min=0), size)
    return {"true": true, "quirk": quirk, "eb": eb_rho, "ceb_vs_clamp_eb": same, "top": top, "bottom": bottom,
            "maps": {"ceb": ceb, "eb": eb}}


def ceb_input_torchray(model: nn.Module, images: torch.Tensor, top, bottom, maps: dict, count: int | None = None,
                       contrast_layer: str = "classifier.4", classifier_layer: str = "classifier.6") -> dict | None:
    """The authors' call order through pip TorchRay 1.0's ``contrastive_excitation_backprop`` (None
    where TorchRay is not installed). 1.0 probes the input only as a module's output, so the model
    is wrapped behind an ``nn.Identity`` (whose output *is* the input tensor, as the branch's
    ``target='input'`` probe sees it); the branch zeroes ``input.grad`` at the start of each call,
    done here by hand. Returns, over the first ``count`` images (default all), the largest relative
    distance of the first (min-class) map to revisal's cEB, and of the second (max-class) map to
    revisal's ``clamp(EB, 0)`` and to revisal's cEB."""
    try:
        from torchray.attribution.excitation_backprop import contrastive_excitation_backprop
    except ImportError:
        return None
    net = copy.deepcopy(model)
    for m in net.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False  # TorchRay's backward hooks need out-of-place ReLUs
    wrapped = nn.Sequential(OrderedDict(input=nn.Identity(), net=net)).eval()
    n = len(images)
    to_clamp = to_fresh = first_to_fresh = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n if count is None else min(count, n)):
            x = images[i:i + 1].clone()  # one loader batch, reused for both classes as in their loop
            out = []
            for cls in (int(bottom[i]), int(top[i])):
                if x.grad is not None:
                    x.grad.zero_()
                out.append(contrastive_excitation_backprop(
                    wrapped, x, cls, saliency_layer="input", contrast_layer=f"net.{contrast_layer}",
                    classifier_layer=f"net.{classifier_layer}").detach())
            low, high = out
            ceb_max, ceb_min = maps["ceb"][i:i + 1], maps["ceb"][n + i:n + i + 1]
            clamp_eb = maps["eb"][i:i + 1].clamp(min=0)
            first_to_fresh = max(first_to_fresh, float((low - ceb_min).abs().max() / ceb_min.abs().max()))
            to_clamp = max(to_clamp, float((high - clamp_eb).abs().max() / clamp_eb.abs().max()))
            to_fresh = max(to_fresh, float((high - ceb_max).abs().max() / ceb_max.abs().max()))
    return {"images": n if count is None else min(count, n), "min_map_vs_ceb": first_to_fresh,
            "max_map_vs_clamp_eb": to_clamp, "max_map_vs_ceb": to_fresh}


# --------------------------------------------------------------------------------------------
# (d) the Table 4 loop ignores its loop variables


def table4_loop(models: dict, images: dict, target: dict, layers: dict | None = None,
                args: dict | None = None) -> list[dict]:
    """Their loop ``for a in archs: for l in layers[a]: correlate(arch=args.arch,
    saliency_layer=args.saliency_layer)``, next to the intended ``correlate(a, l)``. ``models``,
    ``images``, ``target``: per architecture; ``layers``, ``args``: default their lists and their
    command-line defaults. Each (arch, layer) is computed once, and the loop's call a second time to
    check that a repeated call gives the same numbers (the other repeats are read back)."""
    layers = TABLE4_LAYERS if layers is None else layers
    args = TABLE4_ARGS if args is None else args
    intended = {arch: identity_trick_correlation(models[arch], images[arch], target[arch], names)
                for arch, names in layers.items()}
    arch, layer = args["arch"], args["saliency_layer"]
    done = (intended[arch][layer] if layer in intended.get(arch, {}) else
            identity_trick_correlation(models[arch], images[arch], target[arch], [layer])[layer])
    again = identity_trick_correlation(models[arch], images[arch], target[arch], [layer])[layer]
    if not torch.equal(done, again):
        raise RuntimeError("a repeated call gave other numbers")
    rows = []
    for a, names in layers.items():
        for name in names:
            rows.append({"loop": f"{a} {name}", "computed": f"{arch} {layer}",
                         "file": f"{arch}_{layer}_corrs_summary.csv",
                         "rho_computed": float(done.mean()), "rho_intended": float(intended[a][name].mean())})
    return rows


# --------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32, help="VGG16 input side (default 32)")
    parser.add_argument("--resnet-size", type=int, default=64, help="ResNet-50 input side (default 64)")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--check-images", type=int, default=2,
                        help="images for (c)'s TorchRay check of the mechanism (default 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the numbers do not depend on it, and at these sizes "
                             "two threads on a busy 2-core machine run ~10x slower than one)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    vgg = vgg16_fake(0)
    x = noise(args.images, args.size, 1)
    y = labels(args.images, 2)

    print(f"Fakes: VGG16 (random, 512-wide head) at {args.size} px, ResNet-50 (random) at {args.resnet_size} px, "
          f"{args.images} noise images, seeds fixed.\n")

    # (a)
    methods = ["gradient", "guided_backprop", "linear_approx"]
    a = sanity_p_values(vgg, x, y, methods, "", seed=0)
    print(f"(a) Sanity check: ρ vs the p-value their code keeps (maps at the input, resized to 224², n = {a['n']}; "
          f"stages: AUTHORS_STAGES['vgg16'], target: label then top class; mean over images)")
    print(f"    |ρ| above which p < 0.05: {rho_at_p(0.05, a['n']):.4f}; p < 1e-10: {rho_at_p(1e-10, a['n']):.4f}"
          f"   ((ρ, p) vs scipy's spearmanr on the same maps, largest difference: {a['scipy_check']:.1e})")
    for method in methods:
        print(f"    {method}")
        print(f"      {'stage':<14}{'ρ':>8}{'ρ min':>8}{'ρ max':>8}{'p':>11}{'p max':>11}{'ρ abs':>8}{'p abs':>11}")
        for r in a[method]:
            print(f"      {r['stage'] or '(input)':<14}{r['rho']:8.3f}{r['rho_min']:8.3f}{r['rho_max']:8.3f}"
                  f"{r['p']:11.1e}{r['p_max']:11.1e}{r['rho_abs']:8.3f}{r['p_abs']:11.1e}")
    t_a = time.perf_counter()

    # (b)
    print("\n(b) Sanity-check driver: a stage list shared by every image, None prepended per call")
    print(f"    {'variant':<34}{'images':>7}{'calls':>7}{'aggregated':>11}{'list len':>9}{'None':>6}  stopped by")
    for name, fixed in (("as committed (shared list)", False), ("a copy per call", True)):
        r = sanity_driver(50, fixed)
        print(f"    {name:<34}{r['images']:>7}{r['sanity_check_calls']:>7}{r['aggregated']:>11}{r['stage_list']:>9}"
              f"{r['none_stages']:>6}  {r['stopped_by'] or '-'}")
    t_b = time.perf_counter()

    # (c) in float64: on random weights the contrast that reaches the input is ~1e-8 of EB (the
    # positive and the dual pass converge as they go down), float32 rounding noise
    vgg64, x64 = copy.deepcopy(vgg).double(), x.double()
    c = ceb_input_rho(vgg64, x64)
    tr = ceb_input_torchray(vgg64, x64, c["top"], c["bottom"], c["maps"], args.check_images)
    scale = (c["maps"]["ceb"].abs().amax((1, 2, 3)) / c["maps"]["eb"].abs().amax((1, 2, 3))).max()
    print("\n(c) Class sensitivity, contrastive EB at the input (float64): ρ(max class, min class) per image; "
          "quirk: the max-class map is clamp(EB, 0)")
    print(f"    (on these random weights max |cEB| / max |EB| ≤ {float(scale):.1e} at the input)")
    print(f"    {'image':<7}{'true cEB':>10}{'quirk':>10}{'EB':>10}{'ρ(cEB, clamp EB) max class':>28}")
    for i in range(len(x)):
        print(f"    {i:<7}{float(c['true'][i]):10.3f}{float(c['quirk'][i]):10.3f}{float(c['eb'][i]):10.3f}"
              f"{float(c['ceb_vs_clamp_eb'][i]):28.3f}")
    print(f"    {'mean':<7}{float(c['true'].mean()):10.3f}{float(c['quirk'].mean()):10.3f}{float(c['eb'].mean()):10.3f}"
          f"{float(c['ceb_vs_clamp_eb'].mean()):28.3f}")
    if tr is None:
        print("    (TorchRay not installed: the authors' call order not checked)")
    else:
        print(f"    TorchRay 1.0, their order (min class, then max class on the same tensor), {tr['images']} images, "
              f"largest relative distance:"
              f"\n      min-class map to revisal's cEB {tr['min_map_vs_ceb']:.1e}; max-class map to clamp(EB, 0) "
              f"{tr['max_map_vs_clamp_eb']:.1e}, to revisal's cEB {tr['max_map_vs_ceb']:.1e}")
    t_c = time.perf_counter()

    # (d)
    resnet = resnet50_fake(0)
    models = {"vgg16": vgg, "resnet50": resnet}
    imgs = {"vgg16": x, "resnet50": noise(args.images, args.resnet_size, 3)}
    targets = {"vgg16": y, "resnet50": labels(args.images, 4)}
    rows = table4_loop(models, imgs, targets)
    print("\n(d) Table 4 script: what each iteration of its loop computes (mean ρ(identity trick, conv) over images)")
    print(f"    {'loop variables':<26}{'computed':<26}{'ρ computed':>11}{'ρ intended':>11}  file written")
    for r in rows:
        print(f"    {r['loop']:<26}{r['computed']:<26}{r['rho_computed']:11.3f}{r['rho_intended']:11.3f}  {r['file']}")
    print(f"    {len(rows)} iterations, {len({r['computed'] for r in rows})} distinct computation, "
          f"{len({r['file'] for r in rows})} file written (each iteration overwrites it)")
    t_d = time.perf_counter()
    print(f"\nTime: (a) {t_a - start:.1f} s, (b) {t_b - t_a:.2f} s, (c) {t_c - t_b:.1f} s, (d) {t_d - t_c:.1f} s; "
          f"total {t_d - start:.1f} s")


if __name__ == "__main__":
    main()
