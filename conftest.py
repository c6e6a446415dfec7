"""Checks of what the notebooks display, on the run `make test` already does under nbval.

`make test` executes build/smoke/*.ipynb cell by cell under nbval. After each notebook's last cell,
one more test item reads the outputs nbval collected from that notebook's kernel (no second
execution) and checks that a reader sees what the notebook saved: every cell that saves a figure
displays it inline as a PNG, and no progress bar spills onto stderr as text (tqdm renders as a
widget in a kernel).

``pytest --shuffle SEED`` runs the tests in a seeded random order (files in a random order, the tests of
each file in a random order; a notebook's cells stay together and in order, as a kernel needs them): the suite must pass in any order, and this is how to check.

``make test`` runs on every core with pytest-xdist (``-n auto --dist loadscope``): each notebook and each
test module (a few split by parameter, :func:`work_unit`) is one unit of work on one worker, and the
units holding a ``slow`` test are handed out first.
"""

from __future__ import annotations

import functools
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


@functools.cache
def _cell_types() -> tuple[type, ...]:
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: no notebook items either
        return ()
    return IPyNbCell, NotebookDisplays


def _is_cell(item) -> bool:
    return isinstance(item, _cell_types())


def shuffled(items: list, seed: int, is_cell) -> list:
    """``items`` in a seeded random order: the files (test modules, notebooks) in a random order, and
    the tests of each file in a random order within it; a notebook's cells (``is_cell``) stay one
    block in their own order. (As pytest-randomly orders: a module's fixtures are built once, not at
    every switch between interleaved modules, and a state one file leaves behind still meets every
    other file's tests in some order.)"""
    rng = random.Random(seed)
    files: dict[str, list[list]] = {}
    for item in items:
        blocks = files.setdefault(item.nodeid.split("::")[0], [])
        if is_cell(item) and blocks and is_cell(blocks[-1][0]) and blocks[-1][0].parent is item.parent:
            blocks[-1].append(item)
        else:
            blocks.append([item])
    order = list(files.values())
    rng.shuffle(order)
    for blocks in order:
        rng.shuffle(blocks)
    return [item for blocks in order for block in blocks for item in block]


def with_displays(items: list, is_cell) -> list:
    """``items`` with a :class:`NotebookDisplays` item after each notebook's last cell."""
    out = []
    for i, item in enumerate(items):
        out.append(item)
        last = i + 1 == len(items) or items[i + 1].parent is not item.parent
        if is_cell(item) and last:
            cells = [x for x in items if is_cell(x) and x.parent is item.parent]
            out.append(NotebookDisplays.from_parent(item.parent, name="figures shown inline", cells=cells))
    return out


#: modules whose costly module fixture is parametrized: one unit of work per parameter, not per module.
SPLIT_BY_PARAMETER = ("tests/reproduction/test_torchray_pointing.py", "tests/reproduction/test_paper_pipeline.py")


def work_unit(nodeid: str) -> str:
    """The unit of work ``make test`` sends to one worker (pytest-xdist, ``--dist loadscope``): a
    notebook (its kernel runs the cells in order) or a test module (its module fixtures are built
    once), or, in :data:`SPLIT_BY_PARAMETER`, a module's tests that share one parameter.

    From the node id alone, because pytest-xdist's controller schedules by node ids and never sees
    the items (and its own ``xdist_group`` mark does not regroup node ids under pytest 9.2)."""
    module, _, rest = nodeid.partition("::")
    if module in SPLIT_BY_PARAMETER and rest.endswith("]") and "[" in rest:
        return f"{module}[{rest[rest.index('[') + 1:-1]}]"
    return module


def heavy_first(items: list) -> list:
    """Stable order with the work units that hold a ``slow`` test first: the scheduler hands units
    out in collection order (``--no-loadscope-reorder``), and a long unit started last is the run's tail."""
    slow = {work_unit(item.nodeid) for item in items if item.get_closest_marker("slow")}
    return sorted(items, key=lambda item: work_unit(item.nodeid) not in slow)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # a hook of pytest-xdist, when installed
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with :func:`work_unit` as the scope."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnits(config, log)


class _Order:
    """Each notebook's display check after its cells, and the heavy units first, before pytest's own
    reordering by fixture parameters (a conftest has one function per hook; the shuffle is the other)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session, config, items):
        items[:] = heavy_first(with_displays(items, _is_cell))


def pytest_configure(config):
    config.pluginmanager.register(_Order(), "revisal-order")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    seed = config.getoption("--shuffle")
    if seed is not None:
        items[:] = shuffled(items, seed, _is_cell)
