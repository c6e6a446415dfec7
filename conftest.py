"""Checks of what the notebooks display, on the run `make test` already does under nbval.

`make test` executes build/smoke/*.ipynb cell by cell under nbval. After each notebook's last cell,
one more test item reads the outputs nbval collected from that notebook's kernel (no second
execution) and checks that a reader sees what the notebook saved: every cell that saves a figure
displays it inline as a PNG, and no progress bar spills onto stderr as text (tqdm renders as a
widget in a kernel).

``pytest --shuffle SEED`` runs the tests in a seeded random order (a notebook's cells stay together
and in order, as a kernel needs them): the suite must pass in any order, and this is how to check.
"""

from __future__ import annotations

import random

import pytest

SAVES_FIGURE = "report.save_figure("


class NotebookDisplays(pytest.Item):
    """The displayed outputs of one notebook's executed cells (``cells``: nbval's cell items)."""

    def __init__(self, *, cells, **kwargs):
        super().__init__(**kwargs)
        self.cells = cells

    def runtest(self) -> None:
        if any(c.test_outputs is None for c in self.cells):
            pytest.skip("a cell of this notebook did not run; its own test reports why")
        problems = []
        for c in self.cells:
            images = [o for o in c.test_outputs if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
            saves = c.cell.source.count(SAVES_FIGURE)
            if saves and not images:
                problems.append(f"cell {c.cell_num} saves {saves} figure(s) but displays no image/png output")
            for o in c.test_outputs:
                if o.get("output_type") == "stream" and o.get("name") == "stderr" and "%|" in o.get("text", ""):
                    problems.append(f"cell {c.cell_num} prints a text progress bar on stderr: {o['text'][:80]!r}")
        calls = sum(c.cell.source.count(SAVES_FIGURE) for c in self.cells)
        shown = sum(1 for c in self.cells for o in c.test_outputs
                    if o.get("output_type") == "display_data" and "image/png" in o.get("data", {}))
        if shown < calls:
            problems.append(f"{calls} report.save_figure calls but only {shown} figures displayed inline")
        if problems:
            raise AssertionError("\n".join(problems))

    def reportinfo(self):
        return self.path, 0, f"{self.parent.name}::figures shown inline"


def pytest_addoption(parser):
    parser.addoption("--shuffle", metavar="SEED", type=int, default=None,
                     help="run the tests in an order drawn with this seed (each notebook's cells stay in order)")


def shuffled(items: list, seed: int, is_cell) -> list:
    """``items`` in a seeded random order, each notebook's cells (``is_cell``) one block in their own order."""
    blocks: list[list] = []
    for item in items:
        if is_cell(item) and blocks and is_cell(blocks[-1][0]) and blocks[-1][0].parent is item.parent:
            blocks[-1].append(item)
        else:
            blocks.append([item])
    random.Random(seed).shuffle(blocks)
    return [item for block in blocks for item in block]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: no notebook items either
        IPyNbCell = ()
    seed = config.getoption("--shuffle")
    if seed is not None:
        items[:] = shuffled(items, seed, lambda item: isinstance(item, IPyNbCell))
    if not IPyNbCell:
        return
    out = []
    for i, item in enumerate(items):
        out.append(item)
        last = i + 1 == len(items) or items[i + 1].parent is not item.parent
        if isinstance(item, IPyNbCell) and last:
            cells = [x for x in items if isinstance(x, IPyNbCell) and x.parent is item.parent]
            out.append(NotebookDisplays.from_parent(item.parent, name="figures shown inline", cells=cells))
    items[:] = out
