"""Speed of ``python -m revisal explain`` on a folder: images per second, by what is written.

    python benchmarks/explain.py [--images 8] [--batch 8] [--model efficientnet_lite0]

The shipped EfficientNet-Lite0 (CPU) with its preset layers and the six default methods (a 6 × 5
grid, 30 panels) on ``--images`` photos (scikit-image's, as PNG files, repeated under other names).
Each mode runs what the CLI runs after its checks: decode every image (the up-front check), explain
in batches, write each image's files and the table, into a fresh folder:

  (a) maps only (``--maps-only``): ``.npy`` + ``.json``;
  (b) maps + PNG figure (the default);
  (c) maps + PNG + PDF (``--pdf``).

It also times, per image, the figure alone: the run's reused :class:`revisal.plotting.MapGrid` (draw + PNG,
+ PDF) against a fresh :func:`reproduction.charts.grid` figure saved as the CLI did before (layout
engine, ``bbox_inches="tight"``, PNG at zlib level 6 and PDF). Numbers come from one run on one
machine (noisy on shared cores): compare the rows with each other, not with another machine.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from revisal.__main__ import figure_for, write_explanation  # noqa: E402
from revisal.data.photos import PHOTOS  # noqa: E402
from revisal.explain import check_image_files, explain  # noqa: E402
from revisal.explain_output import figure_title, table_row, write_table  # noqa: E402
from revisal.models import load as load_model  # noqa: E402


def photo_folder(folder: Path, count: int) -> list[Path]:
    """``count`` PNG photos in ``folder`` (the shipped photos in turn)."""
    names = sorted(PHOTOS)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}_{names[i % len(names)]}.png"
        Image.fromarray(PHOTOS[names[i % len(names)]]()).save(path)
        paths.append(path)
    return paths


def run(zoo, paths: list[Path], out: Path, *, figure: bool, pdf: bool, batch: int) -> float:
    """Seconds for the CLI's work after loading the model: check, explain, write."""
    start = time.perf_counter()
    assert not check_image_files(paths, zoo.input_size)
    grid, rows = None, []
    for result in explain(zoo, paths, batch_size=batch, progress=False, check=False):
        if figure and grid is None:
            grid = figure_for(result)
        write_explanation(result, out, grid=grid, pdf=pdf, model=zoo.name)
        rows.append(table_row(result))
    write_table(rows, out)
    return time.perf_counter() - start


def figure_alone(result, repeats: int = 2) -> dict[str, float]:
    """Seconds per image for the figure alone: reused (PNG; PNG + PDF), and the old fresh grid."""
    import matplotlib.pyplot as plt

    from reproduction.charts import grid

    reused = figure_for(result)
    image, title = result.pixels.permute(1, 2, 0).numpy(), figure_title(result)
    reused.draw(image, result.maps, title)
    reused.png()  # the first draw also lays out the text
    times: dict[str, list[float]] = {"reused figure, PNG": [], "reused figure, PNG + PDF": [],
                                     "old fresh grid, PNG + PDF": []}
    for _ in range(repeats):
        t = time.perf_counter()
        reused.draw(image, result.maps, title)
        reused.png()
        times["reused figure, PNG"].append(time.perf_counter() - t)
        t = time.perf_counter()
        reused.draw(image, result.maps, title)
        reused.png()
        reused.pdf()
        times["reused figure, PNG + PDF"].append(time.perf_counter() - t)
        t = time.perf_counter()
        rows = {m: [result.maps[i, j] for j in range(len(result.layers))] for i, m in enumerate(result.methods)}
        fig, _ = grid(image, rows, result.layers, suptitle=title)
        for ext in ("png", "pdf"):
            fig.savefig(io.BytesIO(), format=ext, dpi=150, bbox_inches="tight", facecolor="white")
        plt.close(fig)
        times["old fresh grid, PNG + PDF"].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()

    zoo = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        paths = photo_folder(Path(tmp), args.images)
        modes = {"(a) maps only (--maps-only)": (False, False), "(b) maps + PNG (default)": (True, False),
                 "(c) maps + PNG + PDF (--pdf)": (True, True)}
        run(zoo, paths[: min(2, len(paths))], Path(tmp) / "warm", figure=True, pdf=True, batch=args.batch)
        seconds = {name: run(zoo, paths, Path(tmp) / f"out{i}", figure=f, pdf=p, batch=args.batch)
                   for i, (name, (f, p)) in enumerate(modes.items())}
        first = next(explain(zoo, paths[:1], progress=False))
        alone = figure_alone(first)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, {zoo.name}, "
          f"{len(first.methods)} methods × {len(first.layers)} layers, {args.images} images, batch {args.batch}")
    print("| mode | seconds | images/s | × maps only |")
    print("|---|---|---|---|")
    base = seconds["(a) maps only (--maps-only)"]
    for name, t in seconds.items():
        print(f"| {name} | {t:.1f} | {args.images / t:.2f} | {t / base:.2f} |")
    print()
    print("| figure alone, per image | seconds |")
    print("|---|---|")
    for name, t in alone.items():
        print(f"| {name} | {t:.2f} |")
    print(f"| (maps per image, from (a)) | {base / args.images:.2f} |")


if __name__ == "__main__":
    main()
