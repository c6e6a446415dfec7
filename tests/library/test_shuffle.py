"""``pytest --shuffle SEED`` (the root conftest.py): a seeded order that keeps each notebook's cells together."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).resolve().parents[2] / "conftest.py")
root_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(root_conftest)


def _items():
    a, b = SimpleNamespace(name="a.ipynb"), SimpleNamespace(name="b.ipynb")
    tests = [SimpleNamespace(name=f"test_{i}", nodeid=f"tests/test_{i % 3}.py::t{i}", parent=None, cell=False)
             for i in range(12)]
    cells = [SimpleNamespace(name=f"{nb.name}::{i}", nodeid=f"build/{nb.name}::Cell {i}", parent=nb, cell=True)
             for nb in (a, b) for i in range(4)]
    return tests[:6] + cells[:4] + tests[6:] + cells[4:]


def test_same_seed_same_order_other_seed_other_order_nothing_lost():
    items = _items()
    first = root_conftest.shuffled(items, 3, lambda x: x.cell)
    assert [x.name for x in first] == [x.name for x in root_conftest.shuffled(items, 3, lambda x: x.cell)]
    assert sorted(x.name for x in first) == sorted(x.name for x in items)
    orders = {tuple(x.name for x in root_conftest.shuffled(items, seed, lambda x: x.cell)) for seed in range(5)}
    assert len(orders) == 5


def test_a_notebooks_cells_stay_together_and_in_order():
    for seed in range(20):
        order = [x.name for x in root_conftest.shuffled(_items(), seed, lambda x: x.cell)]
        for nb in ("a.ipynb", "b.ipynb"):
            at = [i for i, name in enumerate(order) if name.startswith(nb)]
            assert at == list(range(at[0], at[0] + 4))
            assert [order[i] for i in at] == [f"{nb}::{i}" for i in range(4)]


def test_files_stay_together_and_both_levels_are_drawn():
    """Each file's tests run one after another (its module fixtures are built once); across seeds
    the files change order, and so do the tests within a file."""
    file_orders, inner_orders = set(), set()
    for seed in range(20):
        order = root_conftest.shuffled(_items(), seed, lambda x: x.cell)
        files = [x.nodeid.split("::")[0] for x in order]
        runs = [f for i, f in enumerate(files) if i == 0 or files[i - 1] != f]
        assert len(runs) == len(set(runs)) == 5
        file_orders.add(tuple(runs))
        inner_orders.add(tuple(x.name for x in order if x.nodeid.startswith("tests/test_0.py")))
    assert len(file_orders) > 1 and len(inner_orders) > 1


def test_work_units_are_notebooks_modules_or_a_split_modules_parameter():
    """``make test``'s units of work (pytest-xdist): a module's tests share a worker, and so do a
    notebook's cells; a module in SPLIT_BY_PARAMETER is one unit per parameter."""
    unit = root_conftest.work_unit
    assert unit("tests/test_formulas.py::test_a[vgg16-normgrad]") == "tests/test_formulas.py"
    assert unit("build/smoke/02_layer_combination.ipynb::Cell 3") == "build/smoke/02_layer_combination.ipynb"
    split = root_conftest.SPLIT_BY_PARAMETER[0]
    assert unit(f"{split}::test_x[vgg16]") == unit(f"{split}::test_y[vgg16]") == f"{split}[vgg16]"
    assert unit(f"{split}::test_x[resnet50]") != unit(f"{split}::test_x[vgg16]")
    assert unit(f"{split}::test_plain") == split


def test_heavy_units_come_first_and_keep_their_order():
    def item(nodeid, slow=False):
        return SimpleNamespace(nodeid=nodeid, get_closest_marker=lambda name: slow if name == "slow" else None)

    items = [item("tests/a.py::t1"), item("tests/b.py::t1"), item("tests/b.py::t2", slow=True), item("tests/a.py::t2"),
             item("tests/c.py::t1", slow=True)]
    order = [x.nodeid for x in root_conftest.heavy_first(items)]
    assert order == ["tests/b.py::t1", "tests/b.py::t2", "tests/c.py::t1", "tests/a.py::t1", "tests/a.py::t2"]
