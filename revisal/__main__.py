"""``python -m revisal explain IMAGE_OR_DIR... --model NAME [--layers ...] [--methods ...] --out DIR``

Explain your own images with any model: prints each image's top-5 classes and writes, per image,
the raw maps (``.npy``), a grid figure (methods × layers, ``.png``; ``--pdf`` adds a PDF,
``--maps-only`` writes none) and a JSON sidecar, then ``explanations.csv`` (one row per image).

Everything is checked before any image is explained: the arguments, that ``--out`` can be written,
the model, and every image (decoded once). An image that cannot be read stops the run with a list
of all such images and nothing written (exit status 2); ``--skip-unreadable`` explains the others
instead, lists the skipped ones and exits with status 1. Each file is written atomically. Exit
status: 0 done, 1 done with images skipped or a write that failed, 2 refused before any work.

Examples::

    python -m revisal explain photos/ --model efficientnet_lite0 --out maps/
    python -m revisal explain photos/ --model efficientnet_lite0 --maps-only --out maps/   # large folders
    python -m revisal explain cat.jpg --model torchvision:resnet18 --weights resnet18.pth --pdf --out maps/
    python -m revisal explain cat.jpg --model mypackage.nets:build --layers layer3 layer4 --out maps/
    python -m revisal explain --model efficientnet_lite0 --list-layers
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revisal.explain import Explanation
    from revisal.plotting import MapGrid


def _positive_int(text: str) -> int:
    """An argparse type: the library's :func:`revisal.validation.check_int` on the parsed text."""
    from revisal.validation import check_int

    try:
        return check_int(int(text), "value", minimum=1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def explain_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``explain`` subcommand's arguments."""
    from revisal.explain import NORMALIZATIONS

    p.add_argument("images", nargs="*", metavar="IMAGE_OR_DIR", help="image files or folders (any format Pillow reads)")
    p.add_argument("--model", required=True,
                   help="zoo name (e.g. efficientnet_lite0), torchvision:<name>, timm:<name> or module.path:callable")
    p.add_argument("--weights", metavar="FILE", help="a state dict to load into the model (nothing is downloaded)")
    p.add_argument("--download", action="store_true", help="allow fetching published weights that are not on disk")
    p.add_argument("--layers", nargs="+", metavar="LAYER",
                   help="module names to explain at ('' = the input); default or 'auto': the model's preset, one "
                        "block per stage (see --list-layers)")
    p.add_argument("--layout", action="append", default=[], metavar="LAYER=KIND",
                   help="the layout of a layer whose output revisal cannot read from the model: nchw, nhwc or tokens")
    p.add_argument("--methods", nargs="+", metavar="METHOD", help="names in revisal.METHODS; default: the six "
                   "non-invasive methods (gradient, gradient_sum, linear_approx, grad_cam, normgrad, selective_normgrad)")
    p.add_argument("--target", help="class index or exact class name to explain; default: each image's top-1")
    p.add_argument("--meta", type=_positive_float, metavar="LR", help="meta-saliency: one inner SGD step of this lr first")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (required unless --list-layers)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="images per pass (default 8)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--normalize", choices=sorted(NORMALIZATIONS), help="preprocessing for models outside the zoo "
                   "(default: the zoo preset, timm's config, else ImageNet mean/std)")
    p.add_argument("--size", type=_positive_int, help="input side (default: the model's, else 224)")
    p.add_argument("--classes", metavar="FILE", help="class names, one per line, in output order")
    p.add_argument("--pdf", action="store_true", help="also write each figure as PDF (slower than the PNG)")
    p.add_argument("--maps-only", action="store_true", help="no figure: only the maps, sidecars and "
                   "explanations.csv (fastest, for large folders)")
    p.add_argument("--skip-unreadable", action="store_true", help="explain the readable images and list the "
                   "others (exit status 1) instead of refusing the run (exit status 2, nothing written)")
    p.add_argument("--list-layers", action="store_true", help="print the layers that can be explained and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def explain_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from revisal import explain as ex
    from revisal.explain_output import check_output, output_files, table_row, write_table
    from revisal.layouts import check_layout_argument
    from revisal.validation import check_layers

    if not args.list_layers:
        if not args.images:
            parser.error("IMAGE_OR_DIR: give at least one image file or folder (or --list-layers)")
        if args.out is None:
            parser.error("--out: required (the folder the maps, figures and sidecars go to)")
        if args.pdf and args.maps_only:
            parser.error("--pdf: no figure is drawn with --maps-only")
    try:
        if not args.list_layers:
            check_output(args.out)
        if args.device != "cpu":
            import torch

            try:
                torch.empty(0, device=args.device)
            except (RuntimeError, AssertionError) as error:
                parser.error(f"--device: {args.device!r} is not usable here ({error})")
        paths = ex.image_paths(args.images) if not args.list_layers else []
        # a torchvision/timm architecture's layers need no weights
        architecture = args.list_layers and args.weights is None and not args.download \
            and args.model.startswith(("torchvision:", "timm:"))
        zoo = ex.load(args.model, weights=args.weights, download=args.download, normalize=args.normalize,
                      input_size=args.size, classes=args.classes, random_weights=architecture)
        if args.list_layers:
            print(f"{zoo.name}: modules that revisal.saliency can explain at {zoo.input_size}² input "
                  "(real = a conv or per-location Linear, where normgrad_conv applies; preset = default --layers; "
                  "ambiguous = give its layout with --layout NAME=nchw|nhwc)")
            print(ex.format_layers(ex.list_layers(zoo), zoo.layers))
            return 0
        layers = None if args.layers == ["auto"] else args.layers
        layout = check_layout_argument(dict(item.partition("=")[::2] for item in args.layout))
        if layout:
            check_layers(zoo.model, list(layout), "--layout")
        ex.check_arguments(zoo, layers=layers, methods=args.methods, target=args.target,
                           batch_size=args.batch_size, meta_lr=args.meta)
        skipped = _unreadable(ex.check_image_files(paths, zoo.input_size), len(paths), args.skip_unreadable)
        paths = [p for p in paths if p not in skipped]
        names = ex.output_names(paths)
        figure = not args.maps_only
        check_output(args.out, [f for name in names for f in output_files(name, figure=figure, pdf=args.pdf)])
        extra = {"weights": args.weights, "weights_sha256": ex.weights_digest(Path(args.weights) if args.weights else None),
                 "meta_lr": args.meta, "input_size": zoo.input_size, "normalize": repr(zoo.normalize),
                 "model_mode": "eval (BatchNorm running statistics, no dropout)"}
        results = ex.explain(zoo, paths, layers=layers, methods=args.methods, target=args.target,
                             meta_lr=args.meta, batch_size=args.batch_size, device=args.device,
                             progress=not args.no_progress, check=False, layout=layout)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"revisal explain: error: {error}", file=sys.stderr)
        return 2
    rows, grid = [], None
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for result in results:
            print(ex.format_top5(result), flush=True)
            if figure and grid is None:
                grid = figure_for(result)
            write_explanation(result, args.out, grid=grid, pdf=args.pdf, model=zoo.name, extra=extra)
            rows.append(table_row(result))
        write_table(rows, args.out)
    except OSError as error:  # the check before the run passed: a full disk, a folder changed meanwhile
        print(f"revisal explain: error: --out: cannot write to {ex.printable(args.out)} after {len(rows)} "
              f"images ({ex.printable(error.filename or '')}: {error.strerror or error})", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as error:  # the model refused an image; the images before it are complete
        print(f"revisal explain: error: {error} (after {len(rows)} complete images)", file=sys.stderr)
        return 1
    kinds = ".npy, .json" + ("" if not figure else ", .png, .pdf" if args.pdf else ", .png")
    print(f"wrote {len(rows)} explanations ({kinds}) and {ex.printable(args.out / 'explanations.csv')}",
          file=sys.stderr)
    if skipped:
        print(f"revisal explain: {len(skipped)} unreadable images were left out (listed above)", file=sys.stderr)
        return 1
    return 0


def figure_for(result: "Explanation") -> "MapGrid":
    """The run's figure: one row per method, one column per layer, for images of ``result``'s size."""
    from revisal.plotting import MapGrid

    return MapGrid(result.methods, [layer or "(input)" for layer in result.layers], result.pixels.shape[-1])


def write_explanation(result: "Explanation", out: Path, *, grid: "MapGrid | None", pdf: bool, model: str,
                      extra: dict | None = None) -> list[Path]:
    """Write one image's files: the maps, the figure drawn on ``grid`` (PNG, and PDF when ``pdf``;
    none when ``grid`` is None), the sidecar (:func:`revisal.explain_output.save_explanation`)."""
    from revisal.explain_output import figure_title, save_explanation

    figures = {}
    if grid is not None:
        grid.draw(result.pixels.permute(1, 2, 0).numpy(), result.maps, figure_title(result))
        figures["png"] = grid.png()
        if pdf:
            figures["pdf"] = grid.pdf()
    return save_explanation(result, out, figures=figures, model=model, extra=extra)


def _unreadable(bad: list, total: int, skip: bool) -> set[Path]:
    """Print one line per unreadable image (``bad``: (path, reason) pairs), then refuse the run with a
    ValueError unless ``skip`` (and some image is readable); the paths to leave out."""
    for _, reason in bad:
        print(f"revisal explain: {'skipped' if skip else 'cannot read'} {reason}", file=sys.stderr)
    if bad and (not skip or len(bad) == total):
        raise ValueError(f"images: {len(bad)} of {total} images cannot be read (listed above); nothing was "
                         "explained" + ("" if skip else " (--skip-unreadable explains the others)"))
    return {path for path, _ in bad}


#: Entry-point group of the subcommands installed packages add to ``revisal`` (the reproduction's
#: ``train``, ``params``, ``readme``, ...): each names a ``main(argv) -> int | None``.
COMMANDS = "revisal.commands"


def _commands() -> dict[str, object]:
    from importlib.metadata import entry_points

    return {e.name: e for e in entry_points(group=COMMANDS) if e.name != "explain"}


def main(argv: list[str] | None = None) -> int:
    """The one console entry point, ``revisal <command>``: ``explain`` and the subcommands of
    :data:`COMMANDS` (each gets the rest of the command line and parses it itself)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = _commands()
    if argv and argv[0] in commands:
        return int(commands[argv[0]].load()(argv[1:]) or 0)
    parser = argparse.ArgumentParser(prog="revisal", description="Backpropagation saliency: `revisal explain`, and the "
                                     "subcommands installed packages add (the reproduction: run, train, params, ...).")
    sub = parser.add_subparsers(dest="command", required=True)
    explain = explain_parser(sub.add_parser("explain", help="explain images with a model",
                                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    for name, entry in sorted(commands.items()):
        sub.add_parser(name, help=f"{entry.value} (revisal {name} --help)", add_help=False)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    return explain_command(args, explain)


if __name__ == "__main__":
    sys.exit(main())
