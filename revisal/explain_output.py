"""What ``python -m revisal explain`` writes, and the check that it can write it before any work.

Per image ``<name>``: the maps ``<name>.npy`` ([methods, layers, S, S] float32), the grid figure
``<name>.png`` (and ``<name>.pdf`` when asked; none in maps-only mode), then the sidecar
``<name>.json`` last, so a sidecar means the image is complete. Per run: ``explanations.csv``, one
row per image (its top-5 and the explained class). Every file is written atomically
(:func:`revisal.files.atomic_write`).

The figures are drawn by the command line (:class:`revisal.plotting.MapGrid`, built once per run and
redrawn per image) and handed over as bytes; this module only names and writes them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

from revisal.explain_images import printable
from revisal.files import atomic_write, jsonable

if TYPE_CHECKING:
    from revisal.explain import Explanation

#: The run's table of every explained image.
TABLE = "explanations.csv"


class OutputError(ValueError):
    """``--out`` cannot hold the results; the message names it."""


def check_output(out: Path, files: Iterable[str] = ()) -> None:
    """Raise :class:`OutputError` naming ``--out`` unless ``out`` is a folder (or can be made as one)
    where files can be created, and none of ``files`` (names inside it) is a folder. Proven by
    creating and removing a temporary file (or folder, where ``out`` does not exist yet) in ``out``
    or its nearest existing ancestor: permissions, read-only or immutable file systems all show."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out: {printable(out)} exists and is not a folder")
    base = out
    while not base.exists() and base.parent != base:
        base = base.parent
    if not base.is_dir():
        raise OutputError(f"--out: {printable(out)} cannot be made: {printable(base)} is a file, not a folder")
    try:
        if base == out:
            fd, probe = tempfile.mkstemp(dir=out, prefix=".revisal-write-check-")
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(dir=base, prefix=".revisal-write-check-"))
    except OSError as error:
        where = "" if base == out else f" (cannot create a folder in {printable(base)})"
        raise OutputError(f"--out: {printable(out)} is not writable{where}: {error.strerror}") from None
    if out.is_dir():
        taken = [name for name in files if (out / name).is_dir()]
        if taken:
            raise OutputError(f"--out: {printable(out)} holds folders where files go: {[printable(t) for t in taken[:5]]}")


def output_files(name: str, *, figure: bool, pdf: bool) -> list[str]:
    """The files one image gets, in the order they are written (the sidecar last)."""
    figures = [f"{name}.png", *([f"{name}.pdf"] if pdf else [])] if figure else []
    return [f"{name}.npy", *figures, f"{name}.json"]


def figure_title(result: "Explanation") -> str:
    """The figure's title: the file (shortened to 60 characters), the explained class, the top-1."""
    top1 = result.top5[0]
    name = printable(result.path.name)
    name = name if len(name) <= 60 else name[:29] + "…" + name[-30:]
    return f"{name}: maps of class {result.target} '{result.target_name}' (top-1: '{top1[1]}' {top1[2]:.2f})"


def save_explanation(result: "Explanation", out: Path, *, figures: Mapping[str, bytes] | None = None, model: str,
                     extra: dict | None = None) -> list[Path]:
    """Write one image's files (:func:`output_files`): the maps, each figure of ``figures``
    (extension → bytes, e.g. ``{"png": ...}``), then the sidecar that says what they are."""
    files = []
    buf = io.BytesIO()
    np.save(buf, result.maps.astype(np.float32))
    files.append(atomic_write(out / f"{result.name}.npy", buf.getvalue()))
    written = [atomic_write(out / f"{result.name}.{ext}", data) for ext, data in (figures or {}).items()]
    files += written
    record = {
        "image": printable(result.path),
        "model": model,
        "target": {"index": result.target, "name": result.target_name},
        "top5": [{"index": c, "name": n, "probability": p} for c, n, p in result.top5],
        "maps": {"file": printable(f"{result.name}.npy"), "shape": list(result.maps.shape), "dtype": "float32",
                 "axes": ["method", "layer", "y", "x"], "methods": result.methods, "layers": result.layers,
                 "layer_resolution": {k: list(v) for k, v in result.layer_shapes.items()},
                 "values": "raw map values, bilinearly resized from each layer's resolution to the input crop"},
        "figures": [printable(f.name) for f in written],
        **(extra or {}),
    }
    files.append(atomic_write(out / f"{result.name}.json", json.dumps(jsonable(record), indent=2) + "\n"))
    return files


def table_row(result: "Explanation") -> dict[str, object]:
    """One row of :data:`TABLE`: the image, its files' stem, the explained class and the top-5."""
    row: dict[str, object] = {"image": printable(result.path), "name": printable(result.name),
                              "target": result.target, "target_name": result.target_name}
    for k, (index, name, p) in enumerate(result.top5, 1):
        row.update({f"top{k}": index, f"top{k}_name": name, f"top{k}_probability": f"{p:.6g}"})
    return row


def write_table(rows: Sequence[dict[str, object]], out: Path) -> Path:
    """:data:`TABLE` in ``out`` (one row per explained image), atomically."""
    text = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(out / TABLE, text.getvalue())


__all__ = ["OutputError", "TABLE", "check_output", "figure_title", "output_files", "save_explanation", "table_row",
           "write_table"]
