"""``pytest --shuffle SEED`` (the root conftest.py): a seeded order that keeps each notebook's cells together."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).resolve().parent.parent / "conftest.py")
root_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(root_conftest)


def _items():
    a, b = SimpleNamespace(name="a.ipynb"), SimpleNamespace(name="b.ipynb")
    tests = [SimpleNamespace(name=f"test_{i}", parent=None, cell=False) for i in range(12)]
    cells = [SimpleNamespace(name=f"{nb.name}::{i}", parent=nb, cell=True) for nb in (a, b) for i in range(4)]
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
