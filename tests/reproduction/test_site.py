"""``make site`` (reproduction/site.py) on executed notebooks made from the committed figures
(tests/site_fakes.py: papermill's numbering, each sidecar's output in the cell it names), without a
kernel or a browser: the pages, what they may load, the claims table and its links, the refusals.
The same site in headless Chromium is tests/browser/test_site_browser.py (``make test-site``)."""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import site_fakes

from reproduction import site

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "figures"


class Page(HTMLParser):
    """What a page loads (script, stylesheet and image sources), its links, its ids, and the Claims
    table's body rows."""

    def __init__(self, text: str):
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.claim_links: list[str] = []
        self._in_claims = self._in_body = False
        self._row: list[str] | None = None
        self.claim_rows = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
            if attrs["id"] == "Claims":
                self._in_claims = True
        if tag in ("script", "img", "iframe", "source") and attrs.get("src"):
            self.loads.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.loads.append(attrs["href"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
            if self._row is not None and not self._row:
                self._row.append(attrs["href"])
        if self._in_claims and tag == "tbody":
            self._in_body = True
        if self._in_body and tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if self._in_body and tag == "tr":
            self.claim_rows += 1
            self.claim_links.extend(self._row[:1])
            self._row = None
        if self._in_body and tag == "tbody":
            self._in_body = self._in_claims = False


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(site, executed notebooks)."""
    tmp = tmp_path_factory.mktemp("site")
    executed = site_fakes.executed_notebooks(ROOT / "notebooks", FIGURES, tmp / "executed")
    site.build(executed, FIGURES, tmp / "site")
    return tmp / "site", executed


def _pages(path: Path) -> dict[str, Page]:
    return {p.name: Page(p.read_text(encoding="utf-8")) for p in sorted(path.glob("*.html"))}


def test_an_index_and_a_page_per_notebook(built):
    path, _ = built
    stems = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.stem for p in path.glob("*.html")) == sorted(["index", *stems])
    index = (path / "index.html").read_text(encoding="utf-8")
    assert "There and Back Again: Revisiting Backpropagation Saliency Methods" in index
    assert re.search(r"Outcome of the mini-profile run shown here: <strong>\d+ supported</strong>", index)
    assert all(f'href="{stem}.html"' in index for stem in stems)


def test_nothing_is_fetched_from_the_network(built):
    """Every script, stylesheet and image is inline (data:) or a file of the site: the pages open from
    disk, offline (nbconvert's lab template would fetch require.js, MathJax and mermaid from a CDN)."""
    path, _ = built
    for name, page in _pages(path).items():
        assert page.loads, name
        for src in page.loads:
            if src.startswith("data:"):
                continue
            assert not re.match(r"[a-z]+:", src) and not src.startswith("//"), f"{name} loads {src}"
            assert (path / src.split("?")[0]).is_file(), f"{name} loads {src}, not in the site"
        text = (path / name).read_text(encoding="utf-8")
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", text), f"{name}: a stylesheet fetches from the network"
    assert (path / "mathjax" / "MathJax.js").is_file()
    assert (path / "mathjax" / "config" / f"{site.MATHJAX_CONFIG.split(',')[0]}.js").is_file()


def test_claims_link_the_cell_that_computed_each_verdict(built):
    """One row per row of the verdict tables; each links its notebook's page at the cell whose
    ``In [n]`` the verdict table's sidecar records, which is the cell that shows the verdict table."""
    path, executed = built
    pages = _pages(path)
    index = pages["index.html"]
    expected = sum(len(list(csv.DictReader(p.open(newline="")))) for p in FIGURES.glob("verdicts_*.csv"))
    assert index.claim_rows == expected == len(index.claim_links) > 0
    for href in set(index.claim_links):
        page, _, fragment = href.partition("#")
        assert fragment.startswith("cell-id=") and fragment in pages[page].ids, href
        nb = nbformat.read(executed / page.replace(".html", ".ipynb"), as_version=4)
        (cell,) = [c for c in nb.cells if c.get("id") == fragment.removeprefix("cell-id=")]
        assert "claims" in cell.source and cell.outputs, (href, cell.source)


def test_every_link_of_the_site_resolves(built):
    path, _ = built
    pages = _pages(path)
    for name, page in pages.items():
        for href in page.links:
            if re.match(r"(https?|mailto):", href):
                continue
            target, _, fragment = href.partition("#")
            target = target or name
            assert (path / target).is_file(), f"{name}: link {href}"
            if fragment and target.endswith(".html"):
                from urllib.parse import unquote

                assert {fragment, unquote(fragment)} & pages[target].ids, f"{name}: link {href}"


def test_code_is_folded_and_progress_bars_dropped(built):
    path, executed = built
    text = (path / "00_extract_aggregate.html").read_text(encoding="utf-8")
    assert text.count('<details class="revisal-code">') == sum(
        1 for c in nbformat.read(executed / "00_extract_aggregate.ipynb", as_version=4).cells
        if c.cell_type == "code")
    nb = nbformat.read(executed / "01_identity_trick.ipynb", as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and c.execution_count == 2)
    code.outputs = [nbformat.v4.new_output("stream", name="stderr", text="pairs:  40%|####  | 4/10\r"),
                    nbformat.v4.new_output("stream", name="stderr", text="UserWarning: kept\n")]
    page = site._page(copy.deepcopy(nb), "01_identity_trick")  # _page rewrites its notebook; nb is read below
    outputs = [c for c in page.cells if c.get("execution_count") == 2][0].outputs
    assert [o.text for o in outputs] == ["UserWarning: kept\n"]
    assert "index.html" in page.cells[0].source
    between = site._page(nbformat.read(executed / "01_identity_trick.ipynb", as_version=4), "01_identity_trick",
                         "00_extract_aggregate", "02_layer_combination")
    top, end = between.cells[0].source, between.cells[-1].source
    assert top == end and top.index("00_extract_aggregate.html") < top.index("index.html#Claims") < \
        top.index("02_layer_combination.html")
    widgets = [o for c in site._page(nbformat.read(executed / "01_identity_trick.ipynb", as_version=4),
                                     "01_identity_trick").cells for o in c.get("outputs", [])
               if site.WIDGET in o.get("data", {})]
    assert not widgets and "widgets" in nb.metadata and "jupyter-widgets" not in text


def test_an_incomplete_run_is_refused_and_the_old_site_kept(tmp_path, built):
    path, executed = built
    partial = tmp_path / "executed"
    shutil.copytree(executed, partial)
    (partial / "03_class_sensitivity.ipynb").unlink()
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("the previous site")
    with pytest.raises(ValueError, match=r"03_class_sensitivity\.ipynb: missing"):
        site.build(partial, FIGURES, out)
    assert (out / "index.html").read_text() == "the previous site"
    assert not (tmp_path / "site.tmp").exists()


def test_figures_from_another_run_are_refused(tmp_path, built):
    """A verdict sidecar naming a cell the executed notebook does not have: the figures and the
    notebooks are not from one run, so the claims cannot be linked."""
    _, executed = built
    figures = tmp_path / "figures"
    shutil.copytree(FIGURES, figures)
    side = figures / "verdicts_04.json"
    data = json.loads(side.read_text())
    data["provenance"]["cell"] = "In [999]"
    side.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"verdicts_04\.json: its cell \(In \[999\]\) is not a cell of .*different runs"):
        site.verdict_cells(figures, site.executed_notebooks(executed))


def test_the_command_line_names_what_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        site.main(["--executed", str(tmp_path / "none"), "--out", str(tmp_path / "site")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "00_extract_aggregate.ipynb: missing" in err and "make figures" in err
    assert not (tmp_path / "site").exists()
