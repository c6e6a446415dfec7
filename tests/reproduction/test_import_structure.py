"""The library and the reproduction apart: revisal imports nothing from the reproduction and stays
thin; no module imports another that imports it back, and each imports on its own.

The graph is read from the source (every ``import`` statement, including those inside functions:
a lazy import is how a cycle hides), so it sees cycles that happen not to fail at import time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import reproduction
import revisal

ROOT = Path(revisal.__file__).resolve().parent
WING = Path(reproduction.__file__).resolve().parent
#: The bound on the library's size (lines of Python, docstrings and blanks included): 5,000 when the house
#: was split (issue 21 left it at 4,990), raised for transformers and channels-last networks (issue 22:
#: revisal/layouts.py and the explain command's layouts, ≈ 250 lines of new function, no growth elsewhere).
LIBRARY_LINES = 5300

#: Cycles that another piece of work removes, as sets of modules.
KNOWN_CYCLES: list[frozenset[str]] = []  # issue 12's collect() removed the last (engine <-> meta)


def module_names(root: Path = ROOT, package: str = "revisal") -> dict[str, Path]:
    """Every module of the package: dotted name → file (a package is its ``__init__.py``)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join([package, *parts])] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source (top level or in functions)."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` uses the submodule (pkg runs first as its parent, as for any
            # import); `from mod import function` uses mod
            subs = [f"{module}.{alias.name}" for alias in node.names]
            targets = subs if all(s in known for s in subs) else [module, *subs]
        else:
            continue
        for target in targets:
            # `import a.b.c` imports a.b.c (its parents are run first, but they are not what is used)
            if target in known and target != name:
                out.add(target)
    return out


def import_graph(root: Path | None = None, package: str | None = None) -> dict[str, set[str]]:
    """Module → the modules it imports, over ``package`` (default: the library and the reproduction)."""
    parts = [(root, package)] if root is not None else [(ROOT, "revisal"), (WING, "reproduction")]
    names = {k: v for r, p in parts for k, v in module_names(r, p).items()}
    return {name: imports_of(name, path, set(names)) for name, path in names.items()}


def test_the_library_imports_nothing_from_the_reproduction():
    """``import revisal`` users get the library only: no revisal module imports a reproduction one
    (the reproduction's models reach the zoo through the ``revisal.models`` entry points)."""
    graph = import_graph()
    leaks = sorted((name, sorted(i for i in imports if i.startswith("reproduction")))
                   for name, imports in graph.items() if name.startswith("revisal") and
                   any(i.startswith("reproduction") for i in imports))
    assert not leaks, f"library modules importing the reproduction: {leaks}"


def test_the_library_is_thin():
    lines = {path: len(path.read_text().splitlines()) for path in ROOT.rglob("*.py")}
    assert sum(lines.values()) <= LIBRARY_LINES, (
        f"revisal/ has {sum(lines.values())} lines (bound {LIBRARY_LINES}); the largest: "
        f"{sorted(lines.items(), key=lambda kv: -kv[1])[:5]}")


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions(tmp_path):
    """The checker itself: a cycle closed by a lazy import inside a function is found, and
    ``from pkg import sub`` counts as importing the submodule (not its package)."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("import os\nfrom .sub import leaf\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("from ..b import f\nfrom .. import c\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.sub.leaf"}
    assert graph["pkg.sub.leaf"] == {"pkg.b", "pkg.c"}
    assert sorted(map(sorted, cycles(graph))) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub.leaf"]]


def test_no_module_imports_another_that_imports_it_back():
    found = cycles(import_graph())
    unexpected = [sorted(c) for c in found if c not in KNOWN_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"


def test_known_cycles_are_still_there():
    """An allow-listed cycle that has gone must leave the list, so the list never hides a new one."""
    found = cycles(import_graph())
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"remove from KNOWN_CYCLES: {gone}"


REPORTING = {"reproduction.report", "revisal.plotting", "reproduction.charts", "reproduction.verdicts", "reproduction.readme",
             "reproduction.site"}  # the readme and the site render the others' outputs


def test_figure_writers_are_leaves():
    """Models, data, caches and the engine get file helpers from revisal.files; nothing in the
    library imports the figure, table and verdict writers (the notebooks and the command lines, the
    ``__main__`` modules and the front ends, do), which may use each other."""
    graph = import_graph()
    users = sorted(name for name, imports in graph.items()
                   if imports & REPORTING and name not in REPORTING and not name.endswith(".__main__"))
    assert not users, f"{users} import the figure writers"


_IMPORT_EACH_ALONE = """
import importlib, sys, traceback
failed = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("revisal", "reproduction")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
for name, error in failed.items():
    print(f"--- import {name} failed:\\n{error}")
sys.exit(1 if failed else 0)
"""


def test_each_module_imports_alone():
    """Each module, imported first in an interpreter holding no other revisal module (one fresh
    subprocess; revisal's modules are dropped from ``sys.modules`` before each import, third-party
    packages stay loaded), imports without error."""
    names = sorted({*module_names(), *module_names(WING, "reproduction")})
    run = subprocess.run([sys.executable, "-c", _IMPORT_EACH_ALONE, *names], capture_output=True,
                         text=True, cwd=ROOT.parent, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]


def test_the_reproductions_public_names_all_resolve_lazily():
    """``reproduction`` imports its runners on first use (its command lines start faster); every name
    of ``__all__`` is one it knows, and resolves to the object of its module."""
    import importlib

    assert sorted(reproduction.__all__) == sorted(reproduction._EXPORTS)
    for name, module in reproduction._EXPORTS.items():
        assert getattr(reproduction, name) is getattr(importlib.import_module(f"reproduction.{module}"), name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        reproduction.nothing  # noqa: B018
