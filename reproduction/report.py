"""Write figures (PDF + PNG) and tables (CSV + Markdown + LaTeX), each with a JSON sidecar.

Every file is written atomically (:func:`revisal.files.atomic_write`), so an interrupted run never
leaves a half-written artefact. Sidecars record the profile, parameters, seed and library versions,
and the output's provenance (:mod:`reproduction.provenance`: commit, notebook and cell, config and
parameters hash, device, time since the notebook started).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from reproduction.provenance import record as provenance
from reproduction.provenance import versions
from reproduction.storage import project_path
from revisal.files import atomic_write, jsonable


def _png_rgb(png: bytes) -> bytes:
    """Matplotlib writes RGBA; an opaque RGB PNG of the same pixels is about a third smaller.
    zlib's default level: ``optimize=True`` (level 9) took 3.6× as long for files 2% smaller."""
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(out, format="png", compress_level=6)
    return out.getvalue()


def write_sidecar(path: Path, *, kind: str, files: list[Path], profile: str, parameters: Mapping[str, Any],
                  seed: int | None, extra: Mapping[str, Any] | None = None, notebook: str | None = None) -> Path:
    record = {
        "kind": kind,
        "files": [f.name for f in files],
        "profile": profile,
        "parameters": jsonable(parameters),
        "seed": seed,
        "versions": versions(),
        "provenance": provenance(profile, parameters, notebook),
        **jsonable(extra or {}),
    }
    return atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def save_figure(fig, name: str, *, out_dir: str | os.PathLike = "figures", profile: str,
                parameters: Mapping[str, Any], seed: int | None = None, dpi: int = 150,
                values: Sequence[Mapping[str, Any]] | Any | None = None, notebook: str | None = None) -> list[Path]:
    """Save a matplotlib figure as ``<name>.pdf`` and ``<name>.png`` (``dpi`` ≥ 150) plus
    ``<name>.json``; ``values``, the plotted numbers (same-keyed rows, or a pandas DataFrame), go to
    ``<name>.csv`` beside them, so a figure can be re-plotted or checked without re-running."""
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 150:
        raise ValueError(f"dpi: expected an int ≥ 150 (maps must stay readable), got {dpi!r}")
    out = project_path(out_dir)
    files = []
    for ext, meta in (("pdf", {"CreationDate": None}), ("png", {"Software": None})):
        buf = io.BytesIO()
        # matplotlib's PNG is only read back by _png_rgb (which compresses): written uncompressed
        extra = {"pil_kwargs": {"compress_level": 0}} if ext == "png" else {}
        fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight", metadata=meta, facecolor="white", **extra)
        raw = _png_rgb(buf.getvalue()) if ext == "png" else buf.getvalue()
        files.append(atomic_write(out / f"{name}.{ext}", raw))
    if values is not None:
        files.append(atomic_write(out / f"{name}.csv", _values_csv(values)))
    files.append(write_sidecar(out / f"{name}.json", kind="figure", files=files, profile=profile,
                               parameters=parameters, seed=seed, notebook=notebook))
    return files


def _values_csv(values) -> str:
    if hasattr(values, "to_csv"):  # a pandas DataFrame
        return values.to_csv(index=False, lineterminator="\n")
    return _csv_text(_columns(values), values)  # only the CSV: a map grid's values run to 10⁵-10⁶ rows


#: How Markdown and LaTeX show an empty (NaN) number; each table that has one says why in a note.
EMPTY = "—"


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return EMPTY if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(a, b)
    return text


def markdown_cell(text: Any) -> str:
    """Text for a Markdown table's cell or header: a ``|`` inside it is escaped (unescaped, it ends
    the cell, and the row is shown as one line of text)."""
    return str(text).replace("|", r"\|")


def table_text(rows: Sequence[Mapping[str, Any]], digits: int = 2, notes: Sequence[str] = ()) -> dict[str, str]:
    """CSV (full precision), Markdown and LaTeX renderings of a list of same-keyed rows. NaN numbers
    show as "—" in Markdown and LaTeX (NaN in the CSV); ``notes`` (one line each, e.g. why a cell
    is empty) follow the table in Markdown and LaTeX. A table with an empty number and no note
    gets one that names the columns, so that no empty cell goes unremarked."""
    columns = _columns(rows)
    notes = [n for n in notes if n]
    empty = list(dict.fromkeys(c for r in rows for c in columns if isinstance(r[c], float) and math.isnan(r[c])))
    if empty and not notes:
        notes = [f"{EMPTY}: no value (NaN in the CSV) in column(s) {', '.join(empty)}."]
    md = ["| " + " | ".join(markdown_cell(c) for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    md += ["| " + " | ".join(markdown_cell(_cell(r[c], digits)) for c in columns) + " |" for r in rows]
    tex = [r"\begin{tabular}{" + "l" * len(columns) + "}", r"\toprule",
           " & ".join(_latex_escape(c) for c in columns) + r" \\", r"\midrule"]
    tex += [" & ".join(_latex_escape(_cell(r[c], digits)) for c in columns) + r" \\" for r in rows]
    tex += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        md += [""] + [f"*{note}*" + ("  " if k + 1 < len(notes) else "") for k, note in enumerate(notes)]
        tex += [r"\par\footnotesize " + r" \\ ".join(_latex_escape(n) for n in notes)]
    return {"csv": _csv_text(columns, rows), "md": "\n".join(md) + "\n", "tex": "\n".join(tex) + "\n"}


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys every row has, in the same order (else ValueError)."""
    if not rows:
        raise ValueError("rows: empty table")
    columns = list(rows[0])
    if any(list(r) != columns for r in rows):
        raise ValueError("rows: every row must have the same keys in the same order")
    return columns


def _csv_text(columns: list[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV, full precision."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[r[c] for c in columns] for r in rows])
    return buf.getvalue()


def save_table(rows: Sequence[Mapping[str, Any]], name: str, *, out_dir: str | os.PathLike = "figures",
               profile: str, parameters: Mapping[str, Any], seed: int | None = None, digits: int = 2,
               extra: Mapping[str, Any] | None = None, notes: Sequence[str] = (), notebook: str | None = None) -> list[Path]:
    """Save ``rows`` as ``<name>.csv``, ``.md``, ``.tex`` plus ``<name>.json`` (with ``extra`` and
    the ``notes`` in it); see :func:`table_text` for empty cells and notes."""
    out = project_path(out_dir)
    files = [atomic_write(out / f"{name}.{ext}", text) for ext, text in table_text(rows, digits, notes).items()]
    extra = {**(extra or {}), **({"notes": list(notes)} if notes else {})}
    files.append(write_sidecar(out / f"{name}.json", kind="table", files=files, profile=profile,
                               parameters=parameters, seed=seed, extra=extra or None, notebook=notebook))
    return files
