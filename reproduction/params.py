"""Each notebook's parameters: declared once, routed from a profile's config, checked before any work.

A notebook's ``parameters`` cell (papermill's tag) is the single place its parameter names and
defaults live; :func:`declared` reads them from it. A profile's config (``configs/<profile>.yaml``)
holds shared keys at its top level, passed to every notebook that declares them, and one optional
section per notebook, named after its file (``02_layer_combination:``), for keys only that notebook
declares. For a notebook, later sources win: its defaults, the shared keys, its section, then
overrides (``--set key=value``; the Makefile sets ``device`` and ``figures_dir`` this way). A key no
notebook declares, a section key its notebook does not declare, or a section naming no notebook is
an error, so a misspelt key fails instead of being ignored::

    python -m reproduction.params configs/mini.yaml notebooks/*.ipynb \\
        --set device=cpu --set figures_dir=figures -o build/params/mini

reads the config and each ``--set`` value strictly (:mod:`.config_yaml`: a syntax error names the
file, line and key; a repeated key, or a key set twice, is refused), checks the keys and every
notebook's values (each study's ``Parameters``, :mod:`reproduction.studies`, names the check of
every parameter, :mod:`.parameter_checks` runs it: models, methods, layers, classes, photos, counts,
datasets, data folders, the fields of nested training configs), reports every problem at once, and only then writes
``build/params/mini/<notebook>.yaml`` for papermill's ``-f`` (a file is rewritten only when its
content changes, so ``make`` re-runs only the notebooks whose parameters changed). In the notebook,
the first code cell gathers and checks the same values before anything is computed or written::

    params = experiments.check_parameters("02", globals())
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from reproduction import checks
from reproduction.config_yaml import load_yaml
from reproduction.parameter_checks import resolve
from reproduction.storage import PACKAGE_PARENT, project_path, project_root
from reproduction.studies import studies
from revisal.files import atomic_write

NOTEBOOK_DIR = "notebooks"


# --- the notebooks and what they declare ----------------------------------------------------------------
def notebooks() -> list[Path]:
    """Every numbered notebook of the checkout (:func:`reproduction.storage.project_root`), in order.

    Raises:
        ValueError: neither the working directory nor the ``revisal`` package is in a checkout
            (a folder with ``pyproject.toml`` and ``notebooks/``), or its notebooks folder has none.
    """
    root = project_root()
    if root is None:
        raise ValueError(f"notebooks: no revisal checkout here: neither the working directory {Path.cwd()} nor the "
                         f"revisal package ({PACKAGE_PARENT / 'revisal'}) is inside a folder holding pyproject.toml "
                         "and notebooks/; run from the checkout, or import revisal from one (pip install -e .)")
    found = sorted((root / NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ValueError(f"notebooks: {root / NOTEBOOK_DIR} holds no numbered notebook (NN_name.ipynb)")
    return found


def notebook_path(notebook: str | Path) -> Path:
    """A notebook from its number (``"02"``), its stem (``"02_layer_combination"``) or its path."""
    path = Path(notebook)
    if path.suffix == ".ipynb":
        for candidate in (project_path(path), project_path(NOTEBOOK_DIR) / path.name):
            if candidate.is_file():
                return candidate
        raise ValueError(f"notebook: {path} does not exist")
    found = [p for p in notebooks() if p.stem == str(notebook) or p.stem.split("_")[0] == str(notebook)]
    if len(found) != 1:
        raise ValueError(f"notebook: no notebook {notebook!r}; expected one of {[p.stem for p in notebooks()]}")
    return found[0]


def declared(notebook: str | Path) -> dict[str, Any]:
    """The notebook's parameters and their defaults, read from its ``parameters``-tagged cell."""
    path = notebook_path(notebook)
    return dict(_declared(str(path), path.stat().st_mtime_ns))


@lru_cache(maxsize=None)
def _declared(path: str, mtime: int) -> tuple[tuple[str, Any], ...]:
    """papermill's own reading of the parameters cell (what it will inject against), each default
    evaluated as a Python literal."""
    from papermill.inspection import inspect_notebook

    _parameters_source(Path(path))  # exactly one parameters cell
    out = []
    for name, found in inspect_notebook(path).items():
        try:
            out.append((name, ast.literal_eval(found["default"])))
        except (ValueError, SyntaxError):
            raise ValueError(f"{path}: the parameters cell may only assign literals to names "
                             f"({name} = {found['default']})") from None
    return tuple(out)


# --- configs → one notebook's values ----------------------------------------------------------------
def _parameters_source(path: Path) -> str:
    """The source of ``path``'s one code cell tagged ``parameters``."""
    cells = [c for c in json.loads(path.read_text())["cells"]
             if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path}: expected one code cell tagged 'parameters', found {len(cells)}")
    return "".join(cells[0]["source"])


def comments(notebook: str | Path) -> dict[str, str]:
    """Each parameter's comment in the notebook's ``parameters`` cell, as a reader reads it: the comment
    on its assignment's last line, then the comment-only lines under it (a comment carried over
    several lines), joined by spaces; ``""`` for a parameter without one."""
    import io
    import tokenize

    source = _parameters_source(notebook_path(notebook))
    lines = source.splitlines()
    on_line = {tok.start[0]: tok.string.lstrip("#").strip()
               for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    out = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        text, line = [on_line.get(node.lineno, "")], node.end_lineno + 1
        while line in on_line and lines[line - 1].lstrip().startswith("#"):
            text.append(on_line[line])
            line += 1
        out[node.targets[0].id] = " ".join(t for t in text if t)
    return out


def load_config(config: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    data = load_yaml(project_path(config).read_text(), str(config)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config: {config} must hold a mapping of parameters, got {type(data).__name__}")
    return data


def route(config: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
          among: Sequence[str | Path] | None = None) -> dict[str, dict[str, Any]]:
    """Every notebook's values from a config (see the module docstring), keyed by notebook stem.

    Raises:
        ValueError: listing every key that no notebook declares, every section key its notebook
            does not declare, and every section that names no notebook.
    """
    out, problems = _route(config, overrides, among)
    if problems:
        raise ValueError(f"config: {len(problems)} unknown key{'s' * (len(problems) > 1)}:\n"
                         + "\n".join(f"  - {p}" for p in problems))
    return out


def _route(config, overrides, among) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """:func:`route`'s values and its problems (unknown keys), without raising. Keys are checked
    against every notebook; values are returned for the notebooks ``among`` (default: all)."""
    config, overrides = load_config(config), dict(overrides or {})
    names = {p.stem: declared(p) for p in notebooks()}
    everyone = sorted({k for d in names.values() for k in d})
    problems = []
    shared = {k: v for k, v in config.items() if k not in names}
    for where, keys in (("config", shared), ("--set", overrides)):
        for key in keys:
            if key[:2].isdigit():
                problems.append(f"{key}: no notebook is named so{_near(key, names)} (sections are notebook stems)")
            elif key not in everyone:
                problems.append(f"{key}: no notebook declares this parameter ({where}){_near(key, everyone)}")
    sections = {}
    for stem, declares in names.items():
        section = config.get(stem) or {}
        if not isinstance(section, dict):
            problems.append(f"{stem}: expected a section of parameters, got {section!r}")
            section = {}
        problems += [f"{stem}.{key}: {stem} declares no such parameter{_near(key, declares)}"
                     for key in section if key not in declares]
        sections[stem] = section
    wanted = [notebook_path(n).stem for n in among] if among is not None else list(names)
    out = {stem: {k: v for source in (shared, sections[stem], overrides) for k, v in source.items()
                  if k in names[stem]} for stem in wanted}
    return out, problems


def _near(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
    return f"; did you mean {close}?" if close else ""


def problems(notebook: str | Path, values: Mapping[str, Any]) -> list[str]:
    """Every problem with a notebook's values (its declared names, all of them given)."""
    path = notebook_path(notebook)
    names = declared(path)
    found = checks.Problems()
    missing = [n for n in names if n not in values]
    if missing:
        found.messages.append(f"{missing}: not set (run the parameters cell first)")
    study = studies().get(path.stem[:2])
    if study is None:
        found.messages.append(f"{path.stem}: no study module declares its parameters (reproduction/studies/)")
        return found.messages
    declared_checks = study.checks()
    for name in names:
        if name not in values:
            continue
        if name not in declared_checks:
            found.messages.append(f"{name}: {study.parameters.__module__}.Parameters has no field for it")
            continue
        found.check(resolve(declared_checks[name]), values, name)
    found.messages += [f"{name}: a field of {study.parameters.__module__}.Parameters that the parameters cell "
                       "does not declare" for name in declared_checks if name not in names]
    return list(dict.fromkeys(found.messages))


def check_parameters(notebook: str | Path, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters gathered from ``namespace`` (its ``globals()``), in the order its
    parameters cell declares them, once every value passed its study's checks.

    Raises:
        ValueError: listing every problem; raised before the notebook computes or writes anything.
    """
    path = notebook_path(notebook)
    values = {name: namespace[name] for name in declared(path) if name in namespace}
    found = checks.Problems()
    found.messages = problems(path, values)
    found.raise_all(f"{path.stem} parameters")
    return values


# --- command line ----------------------------------------------------------------------------------
def _assignment(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as YAML, as a config's value (repeated keys refused)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, load_yaml(value, f"--set {key}")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _overrides(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """The ``--set`` pairs as a mapping; a key set twice is refused (the last would silently win)."""
    twice = sorted({k for k, _ in pairs if sum(k == other for other, _ in pairs) > 1})
    if twice:
        raise ValueError(f"--set: {twice} given more than once; set each key once")
    return dict(pairs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reproduction.params", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a profile's config, e.g. configs/mini.yaml")
    parser.add_argument("notebooks", nargs="*", help="notebooks to write parameters for (default: all)")
    parser.add_argument("-s", "--set", dest="overrides", action="append", type=_assignment, default=[],
                        metavar="KEY=VALUE", help="override a key (YAML value) in every notebook that declares it")
    parser.add_argument("-o", "--out", help="folder for <notebook>.yaml files (or one .yaml file for one notebook); "
                                            "without it, only check")
    args = parser.parse_args(argv)
    try:
        selected = [notebook_path(n) for n in args.notebooks] or notebooks()
        routed, found = _route(args.config, _overrides(args.overrides), selected)
        found += [f"{path.stem}: {m}" for path in selected
                  for m in problems(path, {**declared(path), **routed[path.stem]})]
        if found:
            raise ValueError(f"{args.config}: {len(found)} problem{'s' * (len(found) > 1)}, nothing was run:\n"
                             + "\n".join(f"  - {m}" for m in found))
    except (OSError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if args.out is None:
        print(f"{args.config}: parameters of {len(selected)} notebook(s) are valid")
        return
    out = project_path(args.out)
    single = out.suffix in (".yaml", ".yml")
    if single and len(selected) != 1:
        parser.error("--out: a .yaml file takes exactly one notebook; give a folder for several")
    for path in selected:
        target = out if single else out / f"{path.stem}.yaml"
        text = yaml.safe_dump(routed[path.stem], sort_keys=False, allow_unicode=True)
        if not target.is_file() or target.read_text() != text:  # unchanged files keep their time stamp
            atomic_write(target, text)


if __name__ == "__main__":
    main(sys.argv[1:])
