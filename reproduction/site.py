"""The executed notebooks of a profile as a static site that opens from disk (``make site``).

``python -m reproduction.site --profile mini`` reads ``build/executed/<profile>/`` (what
``make figures`` leaves) and the profile's outputs, and writes ``build/site/``:

* ``index.html``: the paper's title, the outcome line, the provenance line, the claims table (each
  claim linked to the notebook cell that wrote its verdict table), a link to each notebook and the
  gallery of every output;
* ``<NN_name>.html`` per notebook: every cell's outputs inline, each code cell's input folded under
  its prompt;
* ``figures/`` (the PNG and Markdown outputs the gallery links, and the verdict tables' CSVs) and ``mathjax/`` (MathJax 2, from the
  ``jupyter-server-mathjax`` package): nothing is fetched from the network at view time.

Every page is rendered by nbconvert (JupyterLab's template, ``reproduction/site_template``); the
index is a notebook of Markdown cells built here from the same functions as the README's generated
sections. The site replaces ``build/site/`` only once it is complete.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from reproduction import readme
from reproduction.storage import project_path

TEMPLATE_DIR = Path(__file__).with_name("site_template")
#: The MathJax 2 configuration the pages load from ``mathjax/`` (one that jupyter-server-mathjax ships;
#: the template sets its fonts).
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
#: What a profile's run is, said under the outcome line (a verdict there is on the claim, tested on this).
PROFILES = {
    "mini": "The `mini` profile tests the paper's claims on a stand-in: a synthetic testbed (64-px scenes of "
            "shapes) with two small CNNs trained here, EfficientNet-Lite0 on scikit-image's photos, and a small "
            "captioner. Its numbers are not the paper's measurements; each claim says what it rests on.",
    "paper": "The `paper` profile runs the paper's models (VGG16, ResNet-50, TorchRay's VOC07 and COCO14 "
             "checkpoints) on its datasets.",
}
#: How to read a verdict (the notebooks' "Verdicts" sections say the same).
VERDICT_RULES = (
    "A verdict compares the 95% bootstrap interval of the claim's statistic with its threshold and, for a "
    "comparison, its minimum effect: **supported** when the whole interval clears the bar, **not supported** "
    "when none of it is on the claim's side of the threshold, **not supported (effect too small)** when it is on "
    "the claim's side but short of the minimum effect, **inconclusive** when it straddles the bar.")
TITLE = "There and Back Again: Revisiting Backpropagation Saliency Methods"
AUTHORS = "Sylvestre-Alvise Rebuffi, Ruth Fong, Xu Ji, Andrea Vedaldi (CVPR 2020)"


def figures_dir(profile: str) -> Path:
    """Where ``make figures`` writes a profile's outputs (the Makefile's FIGDIR)."""
    return project_path("figures") if profile == "mini" else project_path("figures") / profile


def executed_notebooks(executed: Path) -> dict[str, Any]:
    """``{stem: notebook}`` of every numbered notebook's executed copy in ``executed``, each read once
    (nbformat); a ValueError naming each one missing or never run."""
    import nbformat

    stems = readme._notebook_stems(executed)
    found, missing = {}, []
    for stem in stems.values():
        path = executed / f"{stem}.ipynb"
        if not path.is_file():
            missing.append(f"{path}: missing")
            continue
        nb = nbformat.read(path, as_version=4)
        if not any(c.get("execution_count") for c in nb.cells if c.cell_type == "code"):
            missing.append(f"{path}: never executed")
            continue
        found[stem] = nb
    if missing:
        raise ValueError("the site needs every notebook executed (make figures):\n"
                         + "\n".join(f"  - {m}" for m in missing))
    return found


def _prompt_number(provenance: dict[str, Any] | None) -> int | None:
    match = re.fullmatch(r"In \[(\d+)\]", str((provenance or {}).get("cell") or ""))
    return int(match.group(1)) if match else None


def verdict_cells(figures: Path, notebooks: dict[str, Any]) -> dict[str, str]:
    """``{stem: cell id}``: the cell of each executed notebook that wrote its verdict table, read from
    the table's sidecar (``provenance.cell``, ``In [n]``) and found by its execution count. A
    sidecar without a cell, or a cell the executed notebook does not have, is a ValueError: the
    figures and the executed notebooks must come from the same run."""
    cells, errors = {}, []
    for stem, nb in notebooks.items():
        side = figures / f"verdicts_{stem[:2]}.json"
        if not side.is_file():
            errors.append(f"{side}: missing (the verdict table of {stem}; run make figures)")
            continue
        number = _prompt_number(json.loads(side.read_text()).get("provenance"))
        ids = [c.get("id") for c in nb.cells if c.cell_type == "code" and c.get("execution_count") == number]
        if number is None or not ids or not ids[0]:
            errors.append(f"{side}: its cell ({number and f'In [{number}]'}) is not a cell of {stem}'s executed notebook; the "
                          "figures and the executed notebooks come from different runs (run make figures)")
            continue
        cells[stem] = ids[0]
    if errors:
        raise ValueError("\n".join(errors))
    return cells


def _heading(nb, default: str) -> str:
    """A notebook's first Markdown heading (its title), without the ``#``; ``default`` if it has none."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default


def index_notebook(figures: Path, notebooks: dict[str, Any], cells: dict[str, str], profile: str):
    """The index as a notebook of Markdown cells: title, outcome, provenance, notebooks, claims
    (linked to their cells) and the gallery."""
    import nbformat.v4 as v4

    def link(stem: str, row: dict) -> str:
        return f"[`{stem}`]({stem}.html#cell-id={cells[stem]})"

    pages = "\n".join(f"- [{stem}]({stem}.html): {readme.cell(_heading(nb, stem))}" for stem, nb in notebooks.items())
    gallery = re.sub(r"^### (\d\d_\w+)$", r"### [\1](\1.html)", readme.gallery(figures), flags=re.MULTILINE)
    sources = [
        f"# {TITLE}\n\n{AUTHORS}. The executed notebooks of revisal, the paper's reproduction package, run "
        f"with its `{profile}` profile.\n\n"
        f"{readme.outcome(figures, run=f'the {profile}-profile run shown here')} {PROFILES.get(profile, '')}\n\n"
        f"{readme.provenance_line(figures)}",
        f"## Notebooks\n\n{pages}",
        "## Claims\n\nEach row is one claim of the paper as a notebook's verdict table tests it; the notebook "
        f"link opens the cell that computed its verdict table. {VERDICT_RULES}\n\n{readme.claims(figures, link=link)}",
        f"## Gallery\n\nThe figures and tables the notebooks caption, each with its file (click a figure for "
        f"its full size).\n\n{gallery}",
    ]
    nb = v4.new_notebook(cells=[v4.new_markdown_cell(s) for s in sources])
    nb.metadata["title"] = f"revisal: {TITLE}"
    return nb


WIDGET = "application/vnd.jupyter.widget-view+json"


def _progress_bar(output: dict) -> bool:
    """A progress bar: a widget (tqdm in a kernel; its page would fetch the widget manager from a CDN),
    or a stderr stream that redraws a bar with carriage returns."""
    return (WIDGET in output.get("data", {}) or
            (output.get("output_type") == "stream" and output.get("name") == "stderr" and "\r" in output.get("text", "")))


def _navigation(previous: str | None, following: str | None) -> str:
    parts = [f"[← {previous}]({previous}.html)"] if previous else []
    parts.append("[every notebook and claim](index.html#Claims)")
    parts += [f"[{following} →]({following}.html)"] if following else []
    return " · ".join(parts)


def _page(nb, stem: str, previous: str | None = None, following: str | None = None):
    """An executed notebook ``nb`` as a page, rewritten in place and returned: links to the index and
    to the notebooks before and after it, at the top and at the end, and no progress bars."""
    import nbformat.v4 as v4

    nb.metadata["title"] = _heading(nb, stem)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not _progress_bar(o)]
    nb.metadata.pop("widgets", None)
    nb.cells.insert(0, v4.new_markdown_cell(_navigation(previous, following)))
    nb.cells.append(v4.new_markdown_cell(_navigation(previous, following)))
    return nb


def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="revisal", extra_template_basedirs=[str(TEMPLATE_DIR)],
                        mathjax_url=f"mathjax/MathJax.js?config={MATHJAX_CONFIG}")


def _mathjax() -> Path:
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).with_name("static")


def build(executed: Path, figures: Path, out: Path, profile: str = "mini") -> list[Path]:
    """Write the site of ``executed`` (executed notebooks) and ``figures`` (their outputs) to ``out``;
    returns its pages, index first. ``out`` is replaced only once every page is written."""
    notebooks = executed_notebooks(executed)
    cells = verdict_cells(figures, notebooks)
    exporter = _exporter()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "figures").mkdir(parents=True)
        shutil.copytree(_mathjax(), tmp / "mathjax")
        for path in figures.iterdir():
            if path.suffix in (".png", ".md") or (path.suffix == ".csv" and path.name.startswith("verdicts_")):
                shutil.copy2(path, tmp / "figures" / path.name)
        pages = [("index", index_notebook(figures, notebooks, cells, profile))]
        stems = list(notebooks)
        pages += [(stem, _page(nb, stem, *([None] + stems + [None])[k:k + 3:2]))
                  for k, (stem, nb) in enumerate(notebooks.items())]
        written = []
        for name, nb in pages:
            html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
            (tmp / f"{name}.html").write_text(html, encoding="utf-8")
            written.append(out / f"{name}.html")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reproduction.site", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="mini", help="whose executed notebooks (default: mini)")
    parser.add_argument("--executed", help="the executed notebooks (default: build/executed/<profile>)")
    parser.add_argument("--figures", help="their outputs (default: the profile's figures directory)")
    parser.add_argument("--out", default="build/site", help="the site (default: build/site)")
    args = parser.parse_args(argv)
    executed = project_path(args.executed or f"build/executed/{args.profile}")
    figures = project_path(args.figures) if args.figures else figures_dir(args.profile)
    try:
        pages = build(executed, figures, project_path(args.out), args.profile)
    except (OSError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    print(f"{len(pages)} pages in {pages[0].parent}; open {pages[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
