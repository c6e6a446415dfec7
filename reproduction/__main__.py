"""Run experiments from a shell (results cached under data/cache/, shared with the notebooks).

    python -m reproduction pointing-game --model mini_vgg --dataset testbed --methods normgrad grad_cam
    python -m reproduction pointing-game --model vgg16_voc --dataset voc07 --shard 0/4   # one of 4 shards
    python -m reproduction pointing-game ... --merge        # print the merged table of all shards
    python -m reproduction pointing-game --model resnet50_voc --dataset voc07 --root ~/voc \
        --checkpoint-dir ~/torchray --export points.csv              # one row per pair, method, layer
    python -m reproduction class-sensitivity --model mini_resnet --n 200 --meta 1e-3
"""

from __future__ import annotations

import argparse
from typing import Callable

import numpy as np

from reproduction import checks, report, tables
from reproduction.cache import CACHE_ROOT, IncompleteRun
from reproduction.correlation_runs import run_class_sensitivity, weights_for_layers
from reproduction.pointing_runs import DEFAULT_COMBINATIONS, run_pointing_game
from reproduction.profiles import detection_source, profile_model, testbed_source, weight_sample
from revisal.methods import DEFAULT_METHODS
from revisal.models import load, skeleton


def _type(check: Callable, convert: Callable = str) -> Callable[[str], object]:
    """An argparse ``type`` from a check of :mod:`.checks` (its message, minus the parameter name)."""
    def parse(text: str):
        try:
            return check(convert(text), "value")
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None
    parse.__name__ = check.__name__  # argparse names the type in some messages
    return parse


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"value: expected a number, got {text!r}") from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"value: expected an int, got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=_type(checks.model_name),
                   help="a revisal.models name, e.g. mini_vgg, vgg16_voc")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   type=_type(lambda v, name: checks.method_names([v], name)[0]))
    p.add_argument("--layers", nargs="+", default=None, help="module names (default: the model's preset)")
    p.add_argument("--meta", type=_type(checks.positive_number, _number), default=None,
                   help="meta-saliency with this ε: one SGD step θ' = θ − 2ε∇ℓ (MetaStep(lr=ε)); the authors' "
                        "TorchRay meta_saliency(lr) steps by lr, so their lr = 1e-4 is --meta 5e-5")
    p.add_argument("--batch-size", type=_type(checks.positive_int, _int), default=64)
    p.add_argument("--device", default="auto", type=_type(lambda v, name: checks.device(v, name, allow_auto=True)))
    p.add_argument("--cache-root", default=CACHE_ROOT, type=_type(checks.text))
    p.add_argument("--quiet", action="store_true")


def _check_layers(parser: argparse.ArgumentParser, args, preset: Callable[[list[str]], list[str]]) -> list[str] | None:
    """The requested layers (None: ``preset`` of the model's layer preset), checked on the model's
    skeleton (no weights read) before any work, and every method checked at every one of them."""
    layers = args.layers
    if layers is not None:
        try:
            layers = checks.modules_of(args.model, layers, "layers")
        except ValueError as e:
            parser.error(f"argument --layers: {str(e).removeprefix('layers: ')}")
    used = layers if layers is not None else preset(list(skeleton(args.model).layers))
    try:
        checks.methods_fit_layers(args.model, args.methods, used, "methods")
    except ValueError as e:
        where = "" if layers is not None else f" (the layers of {args.model}'s preset, as no --layers was given)"
        parser.error(f"argument --methods: {str(e).removeprefix('methods: ')}{where}")
    return layers


def _check_pointing(parser: argparse.ArgumentParser, args) -> None:
    """Everything the pointing game needs that argparse's types cannot see alone: layers of this model,
    a model that predicts the dataset's classes, an existing data folder, a shard to compute."""
    args.layers = _check_layers(parser, args, preset=lambda layers: layers)
    problems = checks.Problems()
    problems.check(checks.fits_dataset, args.model, args.dataset, "--model")
    if args.dataset == "testbed":
        if args.root is not None:
            problems.messages.append("--root: the testbed is generated, not read from a folder; drop --root")
        args.split = args.split or "test"
    else:
        for flag, value in (("--n", args.n), ("--split", args.split)):
            if value is not None:
                problems.messages.append(f"{flag}: applies to the testbed only, not to {args.dataset}")
        if args.root is not None:
            problems.check(checks.existing_path, args.root, "--root")
    if args.checkpoint_dir is not None:
        problems.check(checks.existing_path, args.checkpoint_dir, "--checkpoint-dir")
    if args.merge and args.shard is not None:
        problems.messages.append("--merge computes nothing: drop --shard")
    elif not args.merge:
        problems.check(checks.shard, args.shard, "--shard")  # None: torchrun's RANK/WORLD_SIZE, checked here
    if problems.messages:
        parser.error("; ".join(problems.messages))


def _check_sensitivity(parser: argparse.ArgumentParser, args) -> None:
    args.layers = _check_layers(parser, args, preset=_sensitivity_layers)


def _sensitivity_layers(preset: list[str]) -> list[str]:
    """The layers class sensitivity uses by default: the preset's, less the input."""
    return [layer for layer in preset if layer]


def _source(args, zoo):
    if args.dataset == "testbed":
        return testbed_source(zoo, args.split, args.n, progress=not args.quiet)
    return detection_source(zoo, args.dataset, args.root, args.input_size, torchray_flags=args.difficult == "flags")


def export_csv(results, path: str) -> None:
    """``results``' points as CSV (``image_id,class_id,method,layer,x,y,hit``), written atomically."""
    import csv
    import io

    from revisal.files import atomic_write

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["image_id", "class_id", "method", "layer", "x", "y", "hit"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(results.export_rows())
    atomic_write(path, out.getvalue())


def pointing_command(args) -> None:
    from revisal.meta import MetaStep

    zoo = profile_model(args.model, {"checkpoint_dir": args.checkpoint_dir, "verify_checkpoints": args.verify_checkpoints})
    layers = args.layers or list(zoo.layers)
    source = _source(args, zoo)
    combinations = () if args.no_combinations else DEFAULT_COMBINATIONS
    weights = None
    try:
        if combinations:
            images, labels = weight_sample(zoo, args.dataset, source=None if args.dataset == "testbed" else source)
            weights = weights_for_layers(zoo, images, labels, [l for l in layers if l], device=args.device,
                                         cache_root=args.cache_root,
                                         compute=not args.merge)
        results = run_pointing_game(zoo, source, args.methods, layers, combinations=combinations, weights=weights,
                                meta=MetaStep(args.meta) if args.meta is not None else None,
                                batch_size=args.batch_size, device=args.device,
                                shard="0/1" if args.merge else args.shard, cache_root=args.cache_root,
                                progress=not args.quiet, compute=not args.merge)
    except IncompleteRun as e:
        raise SystemExit(f"python -m reproduction: error: {e}") from None  # exit status 1
    if results is None:
        return  # this shard is done; the others are still running
    if args.export:
        export_csv(results, args.export)
        print(f"wrote {results.pairs * len(results.methods) * len(results.columns)} rows to {args.export}")
    if args.dataset != "testbed":
        agreement = source.flag_agreement()
        print(f"difficult subset from {'TorchRay flags' if args.difficult == 'flags' else 'the area rule'}; "
              f"area rule agrees on {agreement['agreement']:.1f}% of {agreement['pairs']} pairs")
    for subset in ("all", "difficult"):
        print(f"\n{args.model} on {args.dataset} ({results.pairs} pairs), {subset}: pointing accuracy %")
        print(report.table_text(tables.by_layer(results, subset), digits=1)["md"])
        print(f"centre baseline: {results.center_accuracy(subset):.1f}")


def sensitivity_command(args) -> None:
    from revisal.meta import MetaStep

    zoo = load(args.model)
    layers = args.layers or _sensitivity_layers(list(zoo.layers))
    images, _ = weight_sample(zoo, "testbed", m=args.n)
    meta = MetaStep(args.meta) if args.meta is not None else None
    corr = run_class_sensitivity(zoo, images, args.methods, layers, meta=meta,
                             batch_size=args.batch_size, device=args.device, cache_root=args.cache_root,
                             progress=not args.quiet)
    print("| method | " + " | ".join(layers) + " |")
    print("|---|" + "---|" * len(layers))
    for m in args.methods:
        print(f"| {m} | " + " | ".join(f"{np.nanmean(corr[m, l]):.2f}" for l in layers) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reproduction", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    pg = sub.add_parser("pointing-game", help="pointing game for methods × layers × combinations")
    _common(pg)
    pg.add_argument("--dataset", default="testbed", choices=list(checks.POINTING_DATASETS))
    pg.add_argument("--root", default=None, help="dataset folder (VOC/COCO; default under data/)")
    pg.add_argument("--split", default=None, choices=["train", "val", "test"], help="testbed split (default: test)")
    pg.add_argument("--n", type=_type(checks.positive_int, _int), default=None,
                    help="testbed scenes (default: the split's size)")
    pg.add_argument("--shard", default=None, type=_type(checks.shard),
                    help="'i/n': compute parts p with p %% n == i (default: torchrun's RANK/WORLD_SIZE)")
    pg.add_argument("--merge", action="store_true",
                    help="compute nothing; print the table once all shards are done (fails if some are not)")
    pg.add_argument("--no-combinations", action="store_true", help="score single layers only")
    pg.add_argument("--export", default=None, metavar="FILE.csv",
                    help="write image_id,class_id,method,layer,x,y,hit per pair, method and layer/combination "
                         "(layer: module name, '' = input, sum:<weighting> / product:<weighting>; x, y in "
                         "original-image pixels)")
    pg.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                    help="folder of TorchRay's checkpoints (default: data/checkpoints/torchray)")
    pg.add_argument("--no-verify-checkpoints", dest="verify_checkpoints", action="store_false",
                    help="load checkpoints whose sha256 differs from the published one (e.g. your own or fakes)")
    pg.add_argument("--input-size", type=_type(checks.positive_int, _int), default=224,
                    help="shorter side of the model input (TorchRay's get_transform; VOC/COCO only)")
    pg.add_argument("--difficult", choices=["flags", "rule"], default="flags",
                    help="difficult subset: TorchRay's shipped flag files (needs the torchray package) or the "
                         "area rule (VOC/COCO only)")
    pg.set_defaults(func=pointing_command, check=_check_pointing)
    cs = sub.add_parser("class-sensitivity", help="max- vs min-class map correlation (testbed validation scenes)")
    _common(cs)
    cs.add_argument("--n", type=_type(checks.positive_int, _int), default=200, help="testbed scenes")
    cs.set_defaults(func=sensitivity_command, check=_check_sensitivity)
    args = parser.parse_args(argv)
    args.check(sub.choices[args.command], args)  # every argument is checked before any data is read
    args.func(args)


if __name__ == "__main__":
    main()
