"""Run experiments from a shell (results cached under data/cache/, shared with the notebooks).

    python -m revisal.experiments pointing-game --model mini_vgg --dataset testbed --methods normgrad grad_cam
    python -m revisal.experiments pointing-game --model vgg16_voc --dataset voc07 --shard 0/4   # one of 4 shards
    python -m revisal.experiments pointing-game ... --merge        # print the merged table of all shards
    python -m revisal.experiments class-sensitivity --model mini_resnet --n 200 --meta 1e-3
"""

from __future__ import annotations

import argparse

import numpy as np

from ..methods import DEFAULT_METHODS
from ..models import load
from .analyses import class_sensitivity, weights_for_layers
from .cache import CACHE_ROOT
from .pointing import DEFAULT_COMBINATIONS, pointing_game
from .setup import detection_source, testbed_source, weight_sample


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a revisal.models name, e.g. mini_vgg, vgg16_voc")
    p.add_argument("--dataset", default="testbed", choices=["testbed", "voc07", "coco14"])
    p.add_argument("--root", default=None, help="dataset folder (VOC/COCO; default under data/)")
    p.add_argument("--split", default="test", help="testbed split")
    p.add_argument("--n", type=int, default=None, help="testbed scenes (default: the split's size)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    p.add_argument("--layers", nargs="+", default=None, help="module names (default: the model's preset)")
    p.add_argument("--meta", type=float, default=None, help="meta-saliency with this ε (MetaStep(lr=ε))")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-root", default=CACHE_ROOT)
    p.add_argument("--quiet", action="store_true")


def _source(args, zoo):
    if args.dataset == "testbed":
        return testbed_source(zoo, args.split, args.n, progress=not args.quiet)
    return detection_source(zoo, args.dataset, args.root)


def pointing_command(args) -> None:
    from ..meta import MetaStep

    zoo = load(args.model)
    layers = args.layers or list(zoo.layers)
    source = _source(args, zoo)
    combinations = () if args.no_combinations else DEFAULT_COMBINATIONS
    weights = None
    if combinations:
        images, labels = weight_sample(zoo, args.dataset, source=None if args.dataset == "testbed" else source)
        weights = weights_for_layers(zoo, images, labels, layers, device=args.device, cache_root=args.cache_root)
    results = pointing_game(zoo, source, args.methods, layers, combinations=combinations, weights=weights,
                            meta=MetaStep(args.meta) if args.meta is not None else None, batch_size=args.batch_size,
                            device=args.device, shard="0/1" if args.merge else args.shard,
                            cache_root=args.cache_root, progress=not args.quiet, compute=not args.merge)
    if results is None:
        return
    for subset in ("all", "difficult"):
        print(f"\n{args.model} on {args.dataset} ({results.pairs} pairs), {subset}: pointing accuracy %")
        print("| method | " + " | ".join(l or "input" for l in layers) + " | best single | best combination |")
        print("|---|" + "---|" * (len(layers) + 2))
        for m in args.methods:
            cells = [f"{results.accuracy(m, l, subset):.1f}" for l in layers]
            bs, bs_acc = results.best_single(m, subset)
            best = f"{bs_acc:.1f} ({bs or 'input'})"
            combo = ""
            if combinations:
                bw, bw_acc = results.best_combination(m, subset)
                combo = f"{bw_acc:.1f} ({bw})"
            print(f"| {m} | " + " | ".join(cells) + f" | {best} | {combo} |")
        print(f"centre baseline: {results.center_accuracy(subset):.1f}")


def sensitivity_command(args) -> None:
    from ..meta import MetaStep

    zoo = load(args.model)
    layers = args.layers or [l for l in zoo.layers if l]
    images, _ = weight_sample(zoo, "testbed", m=args.n or 200)
    corr = class_sensitivity(zoo, images, args.methods, layers, meta=MetaStep(args.meta) if args.meta else None,
                             batch_size=args.batch_size, device=args.device, cache_root=args.cache_root,
                             progress=not args.quiet)
    print("| method | " + " | ".join(layers) + " |")
    print("|---|" + "---|" * len(layers))
    for m in args.methods:
        print(f"| {m} | " + " | ".join(f"{np.nanmean(corr[m, l]):.2f}" for l in layers) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m revisal.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    pg = sub.add_parser("pointing-game", help="pointing game for methods × layers × combinations")
    _common(pg)
    pg.add_argument("--shard", default=None, help="'i/n': compute parts p with p %% n == i (default: torchrun rank)")
    pg.add_argument("--merge", action="store_true", help="compute nothing; print the table once all shards are done")
    pg.add_argument("--no-combinations", action="store_true", help="score single layers only")
    pg.set_defaults(func=pointing_command)
    cs = sub.add_parser("class-sensitivity", help="max- vs min-class map correlation (testbed scenes)")
    _common(cs)
    cs.set_defaults(func=sensitivity_command)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
