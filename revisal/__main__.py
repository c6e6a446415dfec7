"""``python -m revisal explain IMAGE_OR_DIR... --model NAME [--layers ...] [--methods ...] --out DIR``

Explain your own images with any model: prints each image's top-5 classes and writes, per image, a
grid figure (methods × layers, PNG and PDF), the raw maps (``.npy``) and a JSON sidecar.

Examples::

    python -m revisal explain photos/ --model efficientnet_lite0 --out maps/
    python -m revisal explain cat.jpg --model torchvision:resnet18 --weights resnet18.pth --out maps/
    python -m revisal explain cat.jpg --model mypackage.nets:build --layers layer3 layer4 --out maps/
    python -m revisal explain --model efficientnet_lite0 --list-layers
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .explain import Explanation


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
    from .explain import NORMALIZATIONS

    p.add_argument("images", nargs="*", metavar="IMAGE_OR_DIR", help="image files or folders (any format Pillow reads)")
    p.add_argument("--model", required=True,
                   help="zoo name (e.g. efficientnet_lite0), torchvision:<name>, timm:<name> or module.path:callable")
    p.add_argument("--weights", metavar="FILE", help="a state dict to load into the model (nothing is downloaded)")
    p.add_argument("--download", action="store_true", help="allow fetching published weights that are not on disk")
    p.add_argument("--layers", nargs="+", metavar="LAYER",
                   help="module names to explain at ('' = the input); default: the model's preset (see --list-layers)")
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
    p.add_argument("--list-layers", action="store_true", help="print the layers that can be explained and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def save_explanation(result: "Explanation", out_dir: Path, *, model: str, extra: dict | None = None) -> list[Path]:
    """Write ``<name>.png``/``.pdf`` (grid: one row per method, one column per layer, over the
    image), ``<name>.npy`` (maps [methods, layers, S, S], float32) and ``<name>.json`` (what they are)."""
    import matplotlib.pyplot as plt

    from .files import atomic_write, jsonable
    from .plotting import grid

    image = result.pixels.permute(1, 2, 0).numpy()
    rows = {m: [result.maps[i, j] for j in range(len(result.layers))] for i, m in enumerate(result.methods)}
    columns = [layer or "(input)" for layer in result.layers]
    top1 = result.top5[0]
    title = (f"{result.path.name}: maps of class {result.target} '{result.target_name}' "
             f"(top-1: '{top1[1]}' {top1[2]:.2f})")
    fig, _ = grid(image, rows, columns, suptitle=title)
    files = []
    try:
        for ext in ("png", "pdf"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=150, bbox_inches="tight", facecolor="white",
                        metadata={"Software": None} if ext == "png" else {"CreationDate": None})
            files.append(atomic_write(out_dir / f"{result.name}.{ext}", buf.getvalue()))
    finally:
        plt.close(fig)
    buf = io.BytesIO()
    np.save(buf, result.maps.astype(np.float32))
    files.append(atomic_write(out_dir / f"{result.name}.npy", buf.getvalue()))
    record = {
        "image": str(result.path),
        "model": model,
        "target": {"index": result.target, "name": result.target_name},
        "top5": [{"index": c, "name": n, "probability": p} for c, n, p in result.top5],
        "maps": {"file": f"{result.name}.npy", "shape": list(result.maps.shape), "dtype": "float32",
                 "axes": ["method", "layer", "y", "x"], "methods": result.methods, "layers": result.layers,
                 "layer_resolution": {k: list(v) for k, v in result.layer_shapes.items()},
                 "values": "raw map values, bilinearly resized from each layer's resolution to the input crop"},
        "figures": [f"{result.name}.png", f"{result.name}.pdf"],
        **(extra or {}),
    }
    files.append(atomic_write(out_dir / f"{result.name}.json", json.dumps(jsonable(record), indent=2) + "\n"))
    return files


def explain_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import explain as ex

    if not args.list_layers:
        if not args.images:
            parser.error("IMAGE_OR_DIR: give at least one image file or folder (or --list-layers)")
        if args.out is None:
            parser.error("--out: required (the folder the figures, maps and sidecars go to)")
        if args.out.exists() and not args.out.is_dir():
            parser.error(f"--out: {args.out} exists and is not a folder")
    try:
        if args.device != "cpu":
            import torch

            try:
                torch.empty(0, device=args.device)
            except (RuntimeError, AssertionError) as error:
                parser.error(f"--device: {args.device!r} is not usable here ({error})")
        paths = ex.image_paths(args.images) if not args.list_layers else []
        zoo = ex.load_model(args.model, weights=args.weights, download=args.download, normalize=args.normalize,
                            input_size=args.size, classes=args.classes)
        if args.list_layers:
            print(f"{zoo.name}: modules that revisal.saliency can explain at {zoo.input_size}² input "
                  "(conv = a real nn.Conv2d, where normgrad_conv applies; preset = default --layers)")
            print(ex.format_layers(ex.list_layers(zoo), zoo.layers))
            return 0
        extra = {"weights": args.weights, "weights_sha256": ex.weights_digest(Path(args.weights) if args.weights else None),
                 "meta_lr": args.meta, "input_size": zoo.input_size, "normalize": repr(zoo.normalize)}
        args.out.mkdir(parents=True, exist_ok=True)
        results = ex.explain(zoo, paths, layers=args.layers, methods=args.methods, target=args.target,
                             meta_lr=args.meta, batch_size=args.batch_size, device=args.device,
                             progress=not args.no_progress)
        count = 0
        for result in results:
            print(ex.format_top5(result), flush=True)
            save_explanation(result, args.out, model=zoo.name, extra=extra)
            count += 1
        print(f"wrote {count} explanations (.png, .pdf, .npy, .json) to {args.out}", file=sys.stderr)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"revisal explain: error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m revisal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    explain = explain_parser(sub.add_parser("explain", help="explain images with a model",
                                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    return explain_command(args, explain)


if __name__ == "__main__":
    sys.exit(main())
