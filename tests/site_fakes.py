"""Executed notebooks as papermill leaves them, made without running a kernel: for the site's tests
in ``make test``, which has no ``make figures`` run to read. Each is a source notebook with papermill's
injected-parameters cell after its parameters cell, every non-empty code cell numbered in order
(``In [n]``), and, in the cell a sidecar of ``figures`` names, that output (its PNG, or its Markdown
table)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nbformat
import nbformat.v4 as v4


def outputs_by_cell(figures: Path) -> dict[tuple[str, int], list]:
    """``{(notebook, n): outputs}``: what each sidecar's cell wrote, as Jupyter would show it."""
    found: dict[tuple[str, int], list] = {}
    for side in sorted(figures.glob("*.json")):
        if side.name == "MANIFEST.json":
            continue
        data = json.loads(side.read_text())
        prov = data.get("provenance") or {}
        match = re.fullmatch(r"In \[(\d+)\]", str(prov.get("cell") or ""))
        if not match or not prov.get("notebook"):
            continue
        files = [figures / f for f in data.get("files", [])]
        png = next((f for f in files if f.suffix == ".png" and f.is_file()), None)
        md = next((f for f in files if f.suffix == ".md" and f.is_file()), None)
        if png is not None:
            output = v4.new_output("display_data", data={"image/png": base64.b64encode(png.read_bytes()).decode(),
                                                         "text/plain": f"<Figure {png.stem}>"})
        elif md is not None:
            output = v4.new_output("display_data", data={"text/markdown": md.read_text(), "text/plain": md.stem})
        else:
            continue
        found.setdefault((prov["notebook"], int(match.group(1))), []).append(output)
    return found


def executed_copy(source: Path, outputs: dict[tuple[str, int], list]):
    """``source`` as papermill would leave it, with ``outputs`` in the cells they name."""
    nb = nbformat.read(source, as_version=4)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            injected = v4.new_code_cell("# Parameters\nprofile = \"mini\"\n")
            injected.metadata["tags"] = ["injected-parameters"]
            cells.append(injected)
    count = 0
    for cell in cells:
        if cell.cell_type == "code" and cell.source.strip():
            count += 1
            cell.execution_count = count
            cell.outputs = list(outputs.get((source.stem, count), []))
    nb.cells = cells
    nb.metadata["papermill"] = {"duration": 1.0}
    # a kernel's tqdm bar: a widget view, its state in the notebook's metadata (as papermill keeps them)
    first = next(c for c in cells if c.cell_type == "code" and c.source.strip())
    first.outputs.insert(0, v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "f00d", "version_major": 2, "version_minor": 0},
        "text/plain": "  0%|          | 0/40 [00:00<?, ?it/s]"}))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    return nb


def executed_notebooks(notebooks: Path, figures: Path, out: Path) -> Path:
    """Every numbered notebook of ``notebooks``, executed as above into ``out``."""
    outputs = outputs_by_cell(figures)
    out.mkdir(parents=True, exist_ok=True)
    for source in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        nbformat.write(executed_copy(source, outputs), out / source.name)
    return out
